"""The numpy Processor: everything a policy needs around the network, saved as JSON.

Training, sim rollout, the ONNX runtime and the robot loop must turn the same frame and prompt
into the same arrays and the same tokens back into the same action. The Processor bundles every
piece of state that decides this (vocabulary, text tokenizer, action bins per action mode, image
sizes, camera keys, proprio normalisation, static maxima), is written next to every checkpoint
and deploy bundle, and depends on numpy and OpenCV only (no torch), so the ONNX runtime can load
it in a process without torch.

The arrays it returns are keyed by ``EncoderInputs`` field names, per example without the batch
dimension; :meth:`Processor.collate` stacks examples into a batch, and
``uio2_robot.train.batching.encoder_inputs_from_numpy`` turns a batch into torch tensors.

History convention: ``history`` is the list of past frames, oldest first. The last
``max_history`` of them are kept, *right-aligned*: the most recent past frame is always slot
``T - 1`` and padding (mask False, zeros) fills the oldest slots, so a frame's slot index says
how long ago it was no matter how far into the episode we are.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uio2_robot.tokenize.actions import ActionTokenizer
from uio2_robot.tokenize.images import check_rgb_image, preprocess_image
from uio2_robot.tokenize.prompt import OVERFLOW_MODES, encode_prompt
from uio2_robot.tokenize.text import (
    ByteTokenizer,
    SentencePieceTokenizer,
    TextTokenizer,
    text_tokenizer_from_dict,
)
from uio2_robot.tokenize.vocab import Vocabulary

FORMAT_VERSION = 1
PROMPT_KEYS = (
    "tokens",
    "token_mask",
    "prompt_images",
    "prompt_image_mask",
    "scene_images",
    "scene_image_mask",
    "scene_image_index",
)
OBSERVATION_KEYS = ("obs_images", "history_images", "history_mask", "proprio")


@dataclass
class Processor:
    """Pre- and post-processing around the network; see the module docstring."""

    vocab: Vocabulary
    text_tokenizer: TextTokenizer
    action_tokenizers: dict[str, ActionTokenizer]
    image_size: tuple[int, int] = (64, 64)  # (H, W) of observation images fed to the model
    prompt_image_size: tuple[int, int] = (32, 32)  # (H, W) of prompt images
    camera_keys: tuple[str, ...] = ("front", "top")  # obs dict keys, in view order
    proprio_key: str = "proprio"
    proprio_mean: np.ndarray = field(default_factory=lambda: np.zeros(6))  # (P,)
    proprio_std: np.ndarray = field(default_factory=lambda: np.ones(6))  # (P,)
    max_prompt_tokens: int = 64
    max_prompt_images: int = 4
    max_history: int = 0
    action_horizon: int = 1  # action steps per decoder target (chunk length)
    prompt_overflow: str = "error"
    # Region of interest per camera key, as fractions (top, left, bottom, right) of the frame,
    # cut out before the resize to ``image_size``: a camera that frames more than the workspace
    # gives its pixels to the workspace only (Diffusion Policy and LeRobot crop likewise).
    crops: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    # (H, W) of the camera frames the crops were defined on (the training data's frames); a
    # served policy asks clients for frames of this size. None: frames arrive at ``image_size``.
    frame_size: tuple[int, int] | None = None
    # Per camera key, the affine map (a, b, c, d, e, f) from a table point (x, y) to where it
    # appears in the processed view as fractions: row = a*x + b*y + c, col = d*x + e*y + f.
    # Training uses it to point at demonstrated pick/place locations (the pointing objective).
    point_maps: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # Prompt scenes (ModelConfig.max_prompt_scenes): a prompt image of exactly ``frame_size`` is
    # a frame of ``scene_camera`` (default: the first camera key), e.g. a goal layout. Besides its
    # prompt-image slot, the first ``max_prompt_scenes`` of them are also cropped and resized
    # exactly like that camera's observation, so the model sees them on the observation's grid.
    max_prompt_scenes: int = 0
    scene_camera: str | None = None
    # Quarter turns (counter-clockwise, ``np.rot90``'s k) that bring a camera's frames, before
    # the crop, to the orientation the policy was trained with: a camera mounted turned from
    # the training one (the suite's top camera took VIMA's orientation, 180 deg from the one the
    # shipped policy saw) needs no retraining to be read right. Prompt scenes follow their
    # camera's; ``prompt_turns`` turns every prompt image in its prompt-image slot likewise.
    view_turns: dict[str, int] = field(default_factory=dict)
    prompt_turns: int = 0

    def __post_init__(self) -> None:
        self.image_size = _hw(self.image_size, "image_size")
        self.prompt_image_size = _hw(self.prompt_image_size, "prompt_image_size")
        self.camera_keys = tuple(self.camera_keys)
        if not self.camera_keys or len(set(self.camera_keys)) != len(self.camera_keys):
            raise ValueError(f"camera_keys must be distinct and non-empty, got {self.camera_keys}")
        if not self.action_tokenizers:
            raise ValueError("Processor needs at least one action tokenizer (per action mode)")
        for mode, tok in self.action_tokenizers.items():
            if tok.first_bin_id != self.vocab.first_bin_id or tok.n_bins > self.vocab.n_bins:
                raise ValueError(
                    f"action tokenizer {mode!r} does not map onto this vocabulary's value bins "
                    f"(first id {tok.first_bin_id} vs {self.vocab.first_bin_id}, "
                    f"{tok.n_bins} vs {self.vocab.n_bins} bins)"
                )
        if self.text_tokenizer.size != self.vocab.text_size:
            raise ValueError(
                f"text tokenizer has {self.text_tokenizer.size} ids but the vocabulary's "
                f"text_size is {self.vocab.text_size}"
            )
        mean = np.asarray(self.proprio_mean, dtype=np.float64).reshape(-1)
        std = np.asarray(self.proprio_std, dtype=np.float64).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"proprio_mean {mean.shape} and proprio_std {std.shape} differ")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("proprio_mean must be finite and proprio_std finite and > 0")
        self.proprio_mean, self.proprio_std = mean, std
        for name in (
            "max_prompt_tokens",
            "max_prompt_images",
            "max_history",
            "action_horizon",
            "max_prompt_scenes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"Processor.{name} must be a non-negative int, got {value!r}")
        if self.action_horizon < 1:
            raise ValueError(f"Processor.action_horizon must be >= 1, got {self.action_horizon}")
        if self.max_prompt_images > self.vocab.n_image_markers:
            raise ValueError(
                f"max_prompt_images={self.max_prompt_images} exceeds the vocabulary's "
                f"{self.vocab.n_image_markers} image markers"
            )
        self.crops = self._per_camera("crops", _crop_box)
        self.view_turns = self._per_camera("view_turns", _quarter_turns)
        self.prompt_turns = _quarter_turns("prompt images", self.prompt_turns)
        self.point_maps = self._per_camera("point_maps", _point_map)
        if self.frame_size is not None:
            self.frame_size = _hw(self.frame_size, "frame_size")
        if self.max_prompt_scenes:
            if self.frame_size is None:
                raise ValueError(
                    "Processor.max_prompt_scenes > 0 needs frame_size (a prompt image of that "
                    "size is a scene)"
                )
            if self.max_prompt_scenes > self.max_prompt_images:
                raise ValueError(
                    f"max_prompt_scenes={self.max_prompt_scenes} exceeds max_prompt_images="
                    f"{self.max_prompt_images}: a scene repeats a prompt image"
                )
        if self.scene_camera is not None and self.scene_camera != self.camera_keys[0]:
            # the model tags scene patches with view 0's embedding (it knows no camera names)
            raise ValueError(
                f"Processor.scene_camera {self.scene_camera!r} must be the first of camera_keys "
                f"{self.camera_keys}: prompt scenes are frames of view 0"
            )
        if self.prompt_overflow not in OVERFLOW_MODES:
            raise ValueError(
                f"prompt_overflow must be one of {OVERFLOW_MODES}, got {self.prompt_overflow!r}"
            )

    def _per_camera(self, name: str, parse: Any) -> dict[str, Any]:
        """A camera-keyed field, each value parsed; every key must be one of ``camera_keys``."""
        value = {str(k): parse(k, v) for k, v in dict(getattr(self, name)).items()}
        unknown = sorted(set(value) - set(self.camera_keys))
        if unknown:
            raise ValueError(
                f"Processor.{name} names cameras {unknown} that are not in camera_keys "
                f"{self.camera_keys}"
            )
        return value

    # ---- construction ---------------------------------------------------------------------------
    @classmethod
    def for_suite(
        cls,
        *,
        n_bins: int = 1000,
        sentencepiece_model: str | Path | None = None,
        n_image_markers: int = 8,
        **overrides: Any,
    ) -> Processor:
        """A processor for the MuJoCo suite: both action modes with uniform bins over the
        bounds in ``uio2_robot.contracts``, the byte tokenizer (or a SentencePiece model),
        and proprio stats of zero mean / unit std until :meth:`with_proprio_stats` fits them.
        ``overrides`` set any other field (image sizes, maxima, camera keys ...).
        """
        from uio2_robot import contracts as spaces  # a numpy-only leaf: no envs, no gymnasium

        text = (
            SentencePieceTokenizer(sentencepiece_model) if sentencepiece_model else ByteTokenizer()
        )
        vocab = Vocabulary(text_size=text.size, n_image_markers=n_image_markers)
        tokenizers = {
            mode: ActionTokenizer.for_action_mode(mode, vocab, n_bins=n_bins)
            for mode in spaces.ACTION_MODES
        }
        p = len(spaces.PROPRIO_NAMES)
        kwargs: dict[str, Any] = {
            "camera_keys": spaces.CAMERAS,
            "proprio_mean": np.zeros(p),
            "proprio_std": np.ones(p),
        }
        kwargs.update(overrides)
        return cls(vocab=vocab, text_tokenizer=text, action_tokenizers=tokenizers, **kwargs)

    @classmethod
    def for_actions(
        cls,
        mode: str,
        names: Sequence[str],
        low: Sequence[float] | np.ndarray,
        high: Sequence[float] | np.ndarray,
        *,
        n_bins: int = 1000,
        proprio_dim: int,
        n_image_markers: int = 8,
        **overrides: Any,
    ) -> Processor:
        """A processor for one action space that is not the suite's (a store recorded from any
        gymnasium env): uniform bins over ``low .. high`` per named dimension under the action
        mode ``mode``, the byte tokenizer, and proprio stats of zero mean / unit std over
        ``proprio_dim`` values until :meth:`with_proprio_stats` fits them. ``overrides`` set
        any other field (camera keys, proprio key, image sizes, maxima ...)."""
        text = ByteTokenizer()
        vocab = Vocabulary(text_size=text.size, n_image_markers=n_image_markers)
        tokenizer = ActionTokenizer.uniform(names, low, high, vocab, n_bins=n_bins)
        kwargs: dict[str, Any] = {
            "proprio_mean": np.zeros(proprio_dim),
            "proprio_std": np.ones(proprio_dim),
            **overrides,
        }
        return cls(vocab=vocab, text_tokenizer=text, action_tokenizers={mode: tokenizer}, **kwargs)

    def with_proprio_stats(
        self, mean: np.ndarray, std: np.ndarray, min_std: float = 1e-3
    ) -> Processor:
        """A copy that normalises proprio with ``mean`` and ``std`` (P,) each: the training
        data's statistics, computed once by the store (``EpisodeStore.stats``; several stores:
        ``trajectories.compute_stats``), never refit here.

        ``min_std`` floors the std so a dimension that is constant in the data (e.g. a tool
        flag never switched) does not blow up to huge values when it does change at test time.
        """
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.shape != (self.proprio_dim,) or std.shape != (self.proprio_dim,):
            raise ValueError(
                f"proprio mean and std must be ({self.proprio_dim},) each, got {mean.shape} "
                f"and {std.shape}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError("proprio mean or std contains NaN or Inf")
        return dataclasses.replace(self, proprio_mean=mean, proprio_std=np.maximum(std, min_std))

    # ---- sizes ------------------------------------------------------------------------------------
    @property
    def proprio_dim(self) -> int:
        return int(self.proprio_mean.shape[0])

    @property
    def action_modes(self) -> tuple[str, ...]:
        return tuple(self.action_tokenizers)

    def action_tokenizer(self, mode: str | None = None) -> ActionTokenizer:
        """The tokenizer of an action mode; ``None`` means the first (default) mode."""
        if mode is None:
            return next(iter(self.action_tokenizers.values()))
        if mode not in self.action_tokenizers:
            raise ValueError(f"unknown action mode {mode!r}; expected one of {self.action_modes}")
        return self.action_tokenizers[mode]

    def n_action_tokens(self, mode: str | None = None) -> int:
        """Decoder target length for one example: ``action_horizon * D``."""
        return self.action_horizon * self.action_tokenizer(mode).dim

    def allowed_action_ids(self, mode: str | None = None) -> np.ndarray:
        """(n_bins,) int64 ids constrained decoding may emit for actions."""
        return self.action_tokenizer(mode).token_ids

    def action_id_range(self) -> tuple[int, int]:
        """(lo, hi): the smallest id range holding every action mode's allowed ids; a greedy
        decoder computes only these logits (``UIO2Model.greedy_decode``'s ``ids``)."""
        ids = np.concatenate([self.allowed_action_ids(m) for m in self.action_modes])
        return int(ids.min()), int(ids.max()) + 1

    # ---- encoder inputs ---------------------------------------------------------------------------
    def encode_prompt(
        self,
        segments: Sequence[str | np.ndarray],
        paradigm: str = "S",
        target_modality: str = "action",
    ) -> dict[str, np.ndarray]:
        """Prompt arrays ``tokens (L,)``, ``token_mask (L,)``, ``prompt_images (K,3,Hp,Wp)``,
        ``prompt_image_mask (K,)`` (see :func:`uio2_robot.tokenize.prompt.encode_prompt`), and
        ``scene_images (S,3,H,W)``, ``scene_image_mask (S,)``, ``scene_image_index (S,)``.
        """
        turned = [
            np.ascontiguousarray(np.rot90(seg, self.prompt_turns))
            if isinstance(seg, np.ndarray)
            else seg
            for seg in segments
        ]
        out = encode_prompt(
            turned if self.prompt_turns else segments,
            self.vocab,
            self.text_tokenizer,
            max_tokens=self.max_prompt_tokens,
            max_images=self.max_prompt_images,
            image_size=self.prompt_image_size,
            paradigm=paradigm,
            target_modality=target_modality,
            overflow=self.prompt_overflow,
        )
        return {**out, **self.encode_scenes(segments, int(out["prompt_image_mask"].sum()))}

    @property
    def scene_key(self) -> str:
        """The camera whose frames prompt scenes are."""
        return self.scene_camera or self.camera_keys[0]

    def encode_scenes(
        self, segments: Sequence[str | np.ndarray], n_kept: int | None = None
    ) -> dict[str, np.ndarray]:
        """The prompt-scene arrays of a prompt: ``scene_images (S,3,H,W)`` (the observation
        preprocessing of ``scene_key``), ``scene_image_mask (S,)``, ``scene_image_index (S,)``
        (the slot k of the prompt image each repeats). Only the first ``n_kept`` prompt images
        count (those the prompt kept); scenes past ``max_prompt_scenes`` keep only their slot."""
        s, (h, w) = self.max_prompt_scenes, self.image_size
        images = np.zeros((s, 3, h, w), dtype=np.float32)
        mask = np.zeros((s,), dtype=bool)
        index = np.zeros((s,), dtype=np.int64)
        if s == 0:
            return {"scene_images": images, "scene_image_mask": mask, "scene_image_index": index}
        pictures = [seg for seg in segments if isinstance(seg, np.ndarray)]
        n = 0
        for k, img in enumerate(pictures[:n_kept]):
            if n == s or tuple(img.shape[:2]) != self.frame_size:
                continue
            images[n] = self.encode_view(img, self.scene_key, f"prompt scene {k}")
            mask[n], index[n] = True, k
            n += 1
        return {"scene_images": images, "scene_image_mask": mask, "scene_image_index": index}

    def encode_frame(self, obs: Mapping[str, Any], what: str = "obs") -> np.ndarray:
        """Camera images of one observation -> (V, 3, H, W) float32 in [-1, 1].

        A policy can keep these per step and pass them back as ``history`` entries, so each
        frame is resized once rather than once per step it stays in the history.
        """
        if not isinstance(obs, Mapping):
            raise ValueError(f"{what} must be a dict of arrays, got {type(obs).__name__}")
        views = []
        for key in self.camera_keys:
            if key not in obs:
                raise ValueError(
                    f"{what} has no camera image {key!r}; expected keys {self.camera_keys}, "
                    f"got {sorted(obs)}"
                )
            views.append(self.encode_view(obs[key], key, f"{what}[{key!r}]"))
        return np.stack(views)  # (V, 3, H, W)

    def encode_view(self, image: Any, camera: str, what: str) -> np.ndarray:
        """One frame of ``camera`` -> (3, H, W): its crop, then the resize and scaling. Prompt
        scenes go through here too, so they match that camera's observations exactly."""
        if self.view_turns.get(camera):
            image = np.ascontiguousarray(
                np.rot90(check_rgb_image(image, what), self.view_turns[camera])
            )
        if camera in self.crops:
            image = crop_fraction(check_rgb_image(image, what), self.crops[camera])
        return preprocess_image(image, self.image_size, what=what)

    def encode_observation(
        self,
        obs: Mapping[str, Any],
        history: Sequence[Mapping[str, Any] | np.ndarray] = (),
    ) -> dict[str, np.ndarray]:
        """Observation arrays ``obs_images (V,3,H,W)``, ``history_images (T,V,3,H,W)``,
        ``history_mask (T,)``, ``proprio (P,)``. ``history``: past observations (dicts) or
        their :meth:`encode_frame` outputs, oldest first (right-aligned, see module docstring).
        """
        obs_images = self.encode_frame(obs, "obs")
        proprio = self.normalize_proprio(obs.get(self.proprio_key), f"obs[{self.proprio_key!r}]")
        v, (h, w), t = len(self.camera_keys), self.image_size, self.max_history
        history_images = np.zeros((t, v, 3, h, w), dtype=np.float32)
        history_mask = np.zeros((t,), dtype=bool)
        kept = list(history)[-t:] if t > 0 else []
        offset = t - len(kept)
        for j, past in enumerate(kept):
            what = f"history[{len(history) - len(kept) + j}]"
            if isinstance(past, np.ndarray):
                if past.shape != (v, 3, h, w) or past.dtype != np.float32:
                    raise ValueError(
                        f"{what} as a preprocessed frame must be float32 {(v, 3, h, w)}, got "
                        f"{past.dtype} {past.shape}"
                    )
                frame = past
            else:
                frame = self.encode_frame(past, what)
            history_images[offset + j] = frame
            history_mask[offset + j] = True
        return {
            "obs_images": obs_images,
            "history_images": history_images,
            "history_mask": history_mask,
            "proprio": proprio,
        }

    def normalize_proprio(self, proprio: Any, what: str = "proprio") -> np.ndarray:
        """(P,) raw proprio -> (P,) float32 ``(x - mean) / std``."""
        if proprio is None:
            raise ValueError(f"{what} is missing; expected a ({self.proprio_dim},) float array")
        arr = np.asarray(proprio)
        if arr.shape != (self.proprio_dim,) or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise ValueError(
                f"{what} must be a ({self.proprio_dim},) numeric array, got {arr.dtype} {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} contains NaN or Inf: {arr.tolist()}")
        return ((arr - self.proprio_mean) / self.proprio_std).astype(np.float32)

    def encode_inputs(
        self,
        segments: Sequence[str | np.ndarray],
        obs: Mapping[str, Any],
        history: Sequence[Mapping[str, Any] | np.ndarray] = (),
    ) -> dict[str, np.ndarray]:
        """Prompt + observation arrays of one example: every ``EncoderInputs`` field."""
        return {**self.encode_prompt(segments), **self.encode_observation(obs, history)}

    @staticmethod
    def collate(examples: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Stack per-example dicts into a batch (new leading axis B) with shape checks."""
        if not examples:
            raise ValueError("collate needs at least one example")
        keys = list(examples[0])
        out = {}
        for i, ex in enumerate(examples):
            if set(ex) != set(keys):
                raise ValueError(
                    f"example {i} has keys {sorted(ex)}, expected {sorted(keys)} (as example 0)"
                )
        for key in keys:
            first = np.asarray(examples[0][key])
            for i, ex in enumerate(examples[1:], start=1):
                arr = np.asarray(ex[key])
                if arr.shape != first.shape or arr.dtype != first.dtype:
                    raise ValueError(
                        f"cannot collate {key!r}: example {i} is {arr.dtype} {arr.shape}, "
                        f"example 0 is {first.dtype} {first.shape}"
                    )
            out[key] = np.stack([np.asarray(ex[key]) for ex in examples])
        return out

    # ---- actions ----------------------------------------------------------------------------------
    def action_target_tokens(self, actions: np.ndarray, mode: str | None = None) -> np.ndarray:
        """(H, D) action chunk, or (D,) when ``action_horizon == 1`` -> (H*D,) int64 ids,
        time-major (all dimensions of step 0, then step 1, ...)."""
        tok = self.action_tokenizer(mode)
        arr = np.asarray(actions)
        if arr.ndim == 1:
            arr = arr[None]
        expected = (self.action_horizon, tok.dim)
        if arr.ndim != 2 or arr.shape != expected:
            raise ValueError(
                f"actions must have shape {expected} (action_horizon, {tok.names})"
                + (" or (D,)" if self.action_horizon == 1 else "")
                + f", got {np.asarray(actions).shape}"
            )
        return tok.encode(arr).reshape(-1)

    def decode_actions(self, tokens: np.ndarray, mode: str | None = None) -> np.ndarray:
        """(..., H*D) ids -> (..., H, D) float32 actions (bin centres)."""
        tok = self.action_tokenizer(mode)
        arr = np.asarray(tokens)
        if arr.ndim == 0 or arr.shape[-1] % tok.dim:
            raise ValueError(
                f"action tokens must have a trailing length that is a multiple of {tok.dim} "
                f"({tok.names}), got shape {arr.shape}"
            )
        return tok.decode(arr.reshape(*arr.shape[:-1], -1, tok.dim))

    # ---- text ---------------------------------------------------------------------------------------
    def decode_text(self, ids: np.ndarray | Sequence[int]) -> str:
        """Generated ids -> text: stops at the first EOS and skips non-text ids."""
        out = []
        for t in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if t == self.vocab.eos_id:
                break
            if 0 <= t < self.vocab.text_size:
                out.append(t)
        return self.text_tokenizer.decode(out)

    def point_targets(self, action: np.ndarray, mode: str, grid_hw: tuple[int, int]) -> np.ndarray:
        """The observation patches that hold a primitive action's pick (x0, y0) and place
        (x1, y1) points: (2,) int64 indices into the view-major patch sequence of a
        ``grid_hw`` patch grid per view, -1 where a point falls outside the view (or no camera
        has a point map, or the mode has no points)."""
        out = np.full((2,), -1, dtype=np.int64)
        mapped = [i for i, k in enumerate(self.camera_keys) if k in self.point_maps]
        if mode != "primitive" or not mapped:
            return out
        view = mapped[0]
        a, b, c, d, e, f = self.point_maps[self.camera_keys[view]]
        rows, cols = grid_hw
        act = np.asarray(action, dtype=np.float64).reshape(-1)
        for k, (x, y) in enumerate(((act[0], act[1]), (act[3], act[4]))):
            r, q = a * x + b * y + c, d * x + e * y + f
            if 0.0 <= r < 1.0 and 0.0 <= q < 1.0:
                out[k] = view * rows * cols + int(r * rows) * cols + int(q * cols)
        return out

    # ---- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "vocab": self.vocab.to_dict(),
            "text_tokenizer": self.text_tokenizer.to_dict(),
            "action_tokenizers": {m: t.to_dict() for m, t in self.action_tokenizers.items()},
            "image_size": list(self.image_size),
            "prompt_image_size": list(self.prompt_image_size),
            "camera_keys": list(self.camera_keys),
            "proprio_key": self.proprio_key,
            "proprio_mean": self.proprio_mean.tolist(),
            "proprio_std": self.proprio_std.tolist(),
            "max_prompt_tokens": int(self.max_prompt_tokens),
            "max_prompt_images": int(self.max_prompt_images),
            "max_history": int(self.max_history),
            "action_horizon": int(self.action_horizon),
            "prompt_overflow": self.prompt_overflow,
            "crops": {k: list(v) for k, v in self.crops.items()},
            "frame_size": None if self.frame_size is None else list(self.frame_size),
            "point_maps": {k: list(v) for k, v in self.point_maps.items()},
            "max_prompt_scenes": int(self.max_prompt_scenes),
            "scene_camera": self.scene_camera,
            "view_turns": dict(self.view_turns),
            "prompt_turns": int(self.prompt_turns),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Processor:
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"processor format_version {version!r} is not supported; expected {FORMAT_VERSION}"
            )
        required = set(cls.__dataclass_fields__) | {"format_version"}
        missing = sorted(required - set(d) - _OPTIONAL_KEYS)
        unknown = sorted(set(d) - required)
        if missing or unknown:
            raise ValueError(f"processor dict: missing keys {missing}, unknown keys {unknown}")
        kwargs = {k: v for k, v in d.items() if k != "format_version"}
        kwargs["vocab"] = Vocabulary.from_dict(d["vocab"])
        kwargs["text_tokenizer"] = text_tokenizer_from_dict(d["text_tokenizer"])
        kwargs["action_tokenizers"] = {
            m: ActionTokenizer.from_dict(t) for m, t in d["action_tokenizers"].items()
        }
        kwargs["camera_keys"] = tuple(d["camera_keys"])
        return cls(**kwargs)

    def save(self, path: str | Path) -> Path:
        """Write the processor as JSON (``path`` is the file, e.g. ``.../processor.json``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Processor:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"processor file not found: {path}")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"processor file {path} is not valid JSON: {e}") from e
        return cls.from_dict(d)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Processor):
            return NotImplemented
        return self.to_dict() == other.to_dict()


# Fields added after format version 1 was first written: older files simply lack them.
_OPTIONAL_KEYS = frozenset(
    {"crops", "frame_size", "point_maps", "max_prompt_scenes", "scene_camera", "view_turns"}
    | {"prompt_turns"}
)


def _quarter_turns(camera: str, turns: Any) -> int:
    """A whole number of quarter turns, 0..3 (``Processor.view_turns``, ``prompt_turns``)."""
    if isinstance(turns, bool) or not isinstance(turns, int | np.integer) or not 0 <= turns <= 3:
        raise ValueError(f"Processor quarter turns for {camera!r} must be 0..3, got {turns!r}")
    return int(turns)


def _point_map(camera: str, coeffs: Any) -> tuple[float, ...]:
    """Six finite floats (a, b, c, d, e, f); see ``Processor.point_maps``."""
    try:
        out = tuple(float(v) for v in coeffs)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"Processor.point_maps[{camera!r}] must be 6 floats (a, b, c, d, e, f), got {coeffs!r}"
        ) from e
    if len(out) != 6 or not all(np.isfinite(out)):
        raise ValueError(
            f"Processor.point_maps[{camera!r}] must be 6 finite floats (a, b, c, d, e, f), "
            f"got {coeffs!r}"
        )
    return out


def _crop_box(camera: str, box: Any) -> tuple[float, float, float, float]:
    """A crop as fractions (top, left, bottom, right) with 0 <= top < bottom <= 1, likewise x."""
    try:
        top, left, bottom, right = (float(v) for v in box)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"Processor.crops[{camera!r}] must be 4 fractions (top, left, bottom, right), "
            f"got {box!r}"
        ) from e
    if not (0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0):
        raise ValueError(
            f"Processor.crops[{camera!r}] = {(top, left, bottom, right)} must satisfy "
            "0 <= top < bottom <= 1 and 0 <= left < right <= 1"
        )
    return (top, left, bottom, right)


def crop_fraction(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of an (H, W, C) image inside a fractional (top, left, bottom, right) box."""
    h, w = image.shape[:2]
    top, left, bottom, right = box
    y0, y1 = int(round(top * h)), max(int(round(bottom * h)), int(round(top * h)) + 1)
    x0, x1 = int(round(left * w)), max(int(round(right * w)), int(round(left * w)) + 1)
    return image[y0:y1, x0:x1]


def _hw(value: Any, name: str) -> tuple[int, int]:
    """An image size given as an int (square) or (H, W)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Processor.{name} must be an int or (H, W), got {value!r}") from e
    if h < 1 or w < 1:
        raise ValueError(f"Processor.{name} must be positive, got {(h, w)}")
    return (h, w)


def model_mismatches(processor: Processor, model_cfg: Mapping[str, Any]) -> list[str]:
    """Every size on which ``processor`` and a model config (as a plain dict) disagree.

    A checkpoint's or bundle's processor and model config are saved separately; a mismatch
    (another vocabulary, image size or history length) would otherwise surface as a shape error
    deep in the encoder, or worse, as silently wrong token ids. Works on the config dict so the
    torch-free runtime can run it too. A missing config field raises KeyError.
    """
    pairs = {
        "vocab size": (processor.vocab.size, model_cfg["vocab_size"]),
        "image size": (
            tuple(processor.image_size),
            (model_cfg["image_size"], model_cfg.get("image_width") or model_cfg["image_size"]),
        ),
        "prompt image size": (
            tuple(processor.prompt_image_size),
            (model_cfg["prompt_image_size"], model_cfg["prompt_image_size"]),
        ),
        "max prompt tokens": (processor.max_prompt_tokens, model_cfg["max_prompt_tokens"]),
        "max prompt images": (processor.max_prompt_images, model_cfg["max_prompt_images"]),
        "max history": (processor.max_history, model_cfg["max_history"]),
        "max prompt scenes": (processor.max_prompt_scenes, model_cfg.get("max_prompt_scenes", 0)),
        "camera views": (len(processor.camera_keys), model_cfg["n_views"]),
        "proprio dim": (processor.proprio_dim, model_cfg["proprio_dim"]),
    }
    marker = model_cfg.get("image_marker_id")
    if marker is not None and model_cfg["max_prompt_images"] > 0:
        pairs["first image marker id"] = (processor.vocab.image_marker_id(0), marker)
    bad = [f"{k}: processor {p} vs model {m}" for k, (p, m) in pairs.items() if p != m]
    max_dec_len = int(model_cfg["max_dec_len"])
    longest = max(processor.n_action_tokens(mode) for mode in processor.action_modes)
    if longest > max_dec_len:
        bad.append(f"action tokens per step: processor {longest} > model max_dec_len {max_dec_len}")
    return bad
