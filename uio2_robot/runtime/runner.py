"""onnxruntime sessions over a deploy bundle: encode once, then greedy constrained decoding.

This is the network half of the ONNX policy (``uio2_robot.policies.onnx_policy`` adds prompts,
history and action chunks). It imports numpy, onnxruntime and the torch-free parts of the
package only, so a robot workstation runs it without torch installed.

One control step is one encoder call (prompt + observation + history -> cross-attention K/V;
only observation + history against the cached prompt for a prefix model) and one
``decoder_greedy`` call that decodes every action token, the argmax under the allowed-ids mask
inside the graph, exactly as ``UIO2Model.generate`` does in torch, so both pick the same token
whenever their logits agree; it computes only the action bins' logits. Decodes it cannot serve
(longer than it unrolls, allowed ids outside the action bins, unconstrained, or
``fused_decoding = False``) loop over ``decoder_step`` instead, one call per token with the KV
cache fed back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from uio2_robot.runtime.manifest import (
    DECODER_OUTPUTS,
    ENCODER_OUTPUTS,
    GREEDY_OUTPUTS,
    PROMPT_OUTPUTS,
    SCENE_STATE_OUTPUTS,
    Bundle,
    BundleError,
    TensorSpec,
    has_prompt_scenes,
    load_bundle,
)

GUIDE_INPUTS = ("pick_patch", "place_rows")
"""decoder_guided's inputs beyond decoder_greedy's: the scene-guidance tables."""

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
"""Preferred execution providers, fastest first; the available ones are used in this order."""
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}


def choose_providers(requested: Sequence[str] | None = None) -> list[str]:
    """The execution providers to ask for: ``requested`` (full names or the aliases
    tensorrt/trt/cuda/cpu) if given, else every available one of TensorRT, CUDA, CPU in that
    order. A provider that this onnxruntime build lacks is an error, not a silent CPU fallback.
    """
    available = ort.get_available_providers()
    if not requested:
        return [p for p in PROVIDER_ORDER if p in available]
    names = [PROVIDER_ALIASES.get(str(p).lower(), str(p)) for p in requested]
    missing = [p for p in names if p not in available]
    if missing:
        hint = ""
        if any(p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in missing):
            hint = (
                "; GPU providers need the onnxruntime-gpu wheel (`pip install -e .[gpu]` in an "
                "environment without onnxruntime, see docs/deploy_gpu.md)"
            )
        raise ValueError(
            f"execution providers {missing} are not available in this onnxruntime "
            f"({ort.__version__}); available: {available}{hint}"
        )
    return names


def session_options(threads: int = 0) -> ort.SessionOptions:
    """Full graph optimisation, sequential execution, ``threads`` intra-op threads (0 = ORT's
    default, one per physical core). One inter-op thread: the graphs are chains of ops."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0 = onnxruntime default), got {threads!r}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: shape-merge notices are noise on a robot console
    return opts


def _provider_options(providers: list[str], bundle: Bundle) -> list[dict[str, str]]:
    """TensorRT gets an engine cache (engines take minutes to build) and fp16 for fp16 bundles."""
    out: list[dict[str, str]] = []
    for p in providers:
        if p == "TensorrtExecutionProvider":
            cache = (
                Path(
                    os.environ.get("UIO2_TRT_CACHE", Path.home() / ".cache" / "uio2_robot" / "trt")
                )
                / bundle.model_hash[:16]
            )
            cache.mkdir(parents=True, exist_ok=True)
            out.append(
                {
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(cache),
                    "trt_fp16_enable": str(bundle.variant == "fp16"),
                }
            )
        else:
            out.append({})
    return out


def check_feed(graph: str, specs: Sequence[TensorSpec], feed: Mapping[str, object]) -> None:
    """Raise a ValueError naming the first input whose presence, type, dtype or shape is off.

    Dynamic axes (named in the spec, e.g. ``batch``) must take one size across all inputs.
    """
    want = [s.name for s in specs]
    missing = [n for n in want if n not in feed]
    extra = sorted(set(feed) - set(want))
    if missing or extra:
        raise ValueError(f"{graph} inputs: missing {missing}, unexpected {extra}; expected {want}")
    bound: dict[str, int] = {}
    for spec in specs:
        arr = feed[spec.name]
        shape_text = "(" + ", ".join(str(d) for d in spec.shape) + ")"
        if not isinstance(arr, np.ndarray):
            raise ValueError(
                f"{graph} input {spec.name!r} must be a numpy array {spec.dtype} {shape_text}, "
                f"got {type(arr).__name__}"
            )
        if arr.dtype != np.dtype(spec.dtype):
            raise ValueError(
                f"{graph} input {spec.name!r} has dtype {arr.dtype}, expected {spec.dtype} "
                f"(shape {shape_text})"
            )
        ok = arr.ndim == len(spec.shape) and all(
            # a named (dynamic) axis binds to its first size; later inputs must repeat it
            bound.setdefault(dim, size) == size if isinstance(dim, str) else size == dim
            for size, dim in zip(arr.shape, spec.shape, strict=True)
        )
        if not ok:
            got = ", ".join(f"{k}={v}" for k, v in bound.items())
            raise ValueError(
                f"{graph} input {spec.name!r} has shape {tuple(arr.shape)}, expected {shape_text}"
                + (f" with {got}" if got else "")
            )


class BundleRunner:
    """The onnxruntime sessions of a bundle, with checked inputs and greedy decoding."""

    def __init__(
        self,
        bundle: str | Path | Bundle,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        warmup: bool = True,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.requested_providers = choose_providers(providers)
        opts = session_options(threads)
        provider_opts = _provider_options(self.requested_providers, self.bundle)
        self.sessions: dict[str, ort.InferenceSession] = {}
        for graph in self.bundle.graphs:
            path = self.bundle.graph_path(graph)
            try:
                self.sessions[graph] = ort.InferenceSession(
                    str(path),
                    opts,
                    providers=self.requested_providers,
                    provider_options=provider_opts,
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise BundleError(f"onnxruntime cannot load {path}: {exc}") from None
            self._check_session(graph)
        self.encoder = self.sessions["encoder"]
        self.decoder = self.sessions["decoder_step"]
        self.encoder_inputs = self.bundle.inputs("encoder")
        self.decoder_inputs = self.bundle.inputs("decoder_step")
        self.prompt_inputs: tuple[TensorSpec, ...] = ()
        self.step_inputs: tuple[TensorSpec, ...] = ()
        if self.has_prompt_cache:
            self.prompt_inputs = self.bundle.inputs("prompt_encoder")
            self.step_inputs = self.bundle.inputs("step_encoder")
        cfg = self.bundle.manifest["model_config"]
        self.vocab_size = int(cfg["vocab_size"])
        self.max_dec_len = int(cfg["max_dec_len"])
        self.bos_id = int(self.bundle.manifest["decoding"]["bos_id"])
        cache = next(s for s in self.decoder_inputs if s.name == "self_k")
        self._cache_dtype = np.dtype(cache.dtype)
        self._cache_dims = (cfg["n_dec_layers"], cfg["n_heads"], cfg["head_dim"])
        gpu = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        self._device_type = "cuda" if self.providers and self.providers[0] in gpu else "cpu"
        self.use_io_binding = self._device_type != "cpu"  # see _run_bound
        greedy = self.bundle.manifest["greedy_decoder"]
        self.greedy_tokens = int(greedy["n_tokens"])  # tokens decoder_greedy decodes per call
        self.greedy_ids = (int(greedy["ids"][0]), int(greedy["ids"][1]))  # the ids it can emit
        self.fused_decoding = True  # False: always loop over decoder_step (tests, debugging)
        if warmup:
            self.warmup()

    @property
    def device_type(self) -> str:
        """Where the sessions keep tensors between calls: "cuda" under CUDA or TensorRT."""
        return self._device_type

    @property
    def has_prompt_cache(self) -> bool:
        """True for a prefix-encoding bundle: the prompt can be encoded once per episode
        (``encode_prompt``) and each step encoded against it (``encode_step``)."""
        return "prompt_encoder" in self.sessions

    @property
    def providers(self) -> list[str]:
        """Providers the sessions actually run on (``get_providers``, not what is available)."""
        return list(self.encoder.get_providers())

    def _check_session(self, graph: str) -> None:
        """The loaded graph must declare exactly the manifest's inputs and outputs."""
        session = self.sessions[graph]
        for kind, specs, actual in (
            ("inputs", self.bundle.inputs(graph), session.get_inputs()),
            ("outputs", self.bundle.outputs(graph), session.get_outputs()),
        ):
            got = [(a.name, _ORT_TYPES.get(a.type, a.type), len(a.shape)) for a in actual]
            want = [(s.name, s.dtype, len(s.shape)) for s in specs]
            if got != want:
                raise BundleError(
                    f"{self.bundle.graph_path(graph)}: graph {kind} {got} differ from the "
                    f"manifest's {want}"
                )

    # ------------------------------------------------------------------ network calls
    def encode(self, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Batched EncoderInputs arrays (``Processor.collate``) -> (cross_k, cross_v, enc_mask).

        Inputs are fed by the names the graph declares, so a batch dict may carry other keys
        (targets, or the processor's empty scene arrays when the model has no prompt scenes and
        so no scene inputs); each is checked against the manifest so a wrong shape or dtype
        fails here with its name, not deep inside onnxruntime.
        """
        feed = {s.name: arrays[s.name] for s in self.encoder_inputs if s.name in arrays}
        check_feed("encoder", self.encoder_inputs, feed)
        outs = self.encoder.run(list(ENCODER_OUTPUTS), feed)
        return tuple(outs)

    @property
    def has_scene_states(self) -> bool:
        """True for a prefix bundle of a model with prompt scenes: its prompt and step graphs
        also export the scene and observation-patch states scene-guided placement reads."""
        return self.has_prompt_cache and has_prompt_scenes(self.bundle.manifest["model_config"])

    def encode_prompt_states(
        self, arrays: Mapping[str, np.ndarray]
    ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """``encode_prompt``'s cache and, from the same run, the first prompt scene's final
        encoder states (B, Np, D) (``scene_states``; garbage where the prompt has no scene)."""
        if not self.has_scene_states:
            raise ValueError(
                f"{self.bundle.root} exports no scene states: scene-guided placement needs a "
                "prefix-encoding model with prompt scenes"
            )
        outs = self._run_prompt(arrays, (*PROMPT_OUTPUTS, SCENE_STATE_OUTPUTS["prompt_encoder"]))
        return outs[:-1], outs[-1]

    def encode_prompt(self, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """The prompt inputs of batched encoder arrays -> the prompt cache (``PROMPT_OUTPUTS``:
        per-layer keys, values, mask, decoder cross K/V). Prefix bundles only."""
        return self._run_prompt(arrays, PROMPT_OUTPUTS)

    def _run_prompt(
        self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> tuple[np.ndarray, ...]:
        if not self.has_prompt_cache:
            raise ValueError(
                f"{self.bundle.root} has no prompt_encoder graph: its model was not trained with "
                "prompt_prefix, so the prompt cannot be encoded on its own; use encode()"
            )
        feed = {s.name: arrays[s.name] for s in self.prompt_inputs if s.name in arrays}
        check_feed("prompt_encoder", self.prompt_inputs, feed)
        return tuple(self.sessions["prompt_encoder"].run(list(outputs), feed))

    def encode_step(
        self, arrays: Mapping[str, np.ndarray], prompt: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, ...]:
        """The step inputs of batched encoder arrays + ``encode_prompt``'s cache ->
        (cross_k, cross_v, enc_mask), as ``encode`` gives for the whole sequence."""
        feed = self._step_feed(arrays, prompt)
        return tuple(self.sessions["step_encoder"].run(list(ENCODER_OUTPUTS), feed))

    def _step_feed(
        self, arrays: Mapping[str, np.ndarray], prompt: Sequence[np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The step encoder's checked feed: the step inputs of ``arrays`` + the prompt cache."""
        if not self.has_prompt_cache:
            raise ValueError(f"{self.bundle.root} has no step_encoder graph; use encode()")
        if len(prompt) != len(PROMPT_OUTPUTS):
            raise ValueError(
                f"prompt cache must be the {len(PROMPT_OUTPUTS)} arrays {PROMPT_OUTPUTS} from "
                f"encode_prompt, got {len(prompt)}"
            )
        feed = {s.name: arrays[s.name] for s in self.step_inputs if s.name in arrays}
        feed.update(zip(PROMPT_OUTPUTS, prompt, strict=True))
        check_feed("step_encoder", self.step_inputs, feed)
        return feed

    def empty_cache(self, batch_size: int) -> np.ndarray:
        """A zero-length self-attention cache (n_dec_layers, B, H, 0, Dh) for the first token."""
        n_layers, heads, head_dim = self._cache_dims
        return np.zeros((n_layers, batch_size, heads, 0, head_dim), dtype=self._cache_dtype)

    def decode_step(
        self,
        token: np.ndarray,  # (B, 1) int64
        position: np.ndarray,  # (B,) int64
        self_k: np.ndarray,  # (n_dec, B, H, Lc, Dh)
        self_v: np.ndarray,
        cross_k: np.ndarray,  # (n_dec, B, H, S, Dh)
        cross_v: np.ndarray,
        enc_mask: np.ndarray,  # (B, S) bool
        check: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoder token: (logits (B, V), self_k, self_v grown to Lc + 1)."""
        feed = {
            "token": token,
            "position": position,
            "self_k": self_k,
            "self_v": self_v,
            "cross_k": cross_k,
            "cross_v": cross_v,
            "enc_mask": enc_mask,
        }
        if check:
            check_feed("decoder_step", self.decoder_inputs, feed)
        logits, k, v = self.decoder.run(list(DECODER_OUTPUTS), feed)
        return logits, k, v

    def allowed_mask(self, allowed: np.ndarray | Sequence[int] | None) -> np.ndarray | None:
        """Allowed ids (1-D ints) or a (V,) bool mask -> (V,) bool mask; None stays None."""
        if allowed is None:
            return None
        arr = np.asarray(allowed)
        if arr.dtype == bool:
            if arr.shape != (self.vocab_size,):
                raise ValueError(
                    f"allowed mask must have shape ({self.vocab_size},), got {arr.shape}"
                )
            mask = arr
        else:
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(
                    f"allowed ids must be a 1-D integer array, got {arr.dtype} {arr.shape}"
                )
            if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
                raise ValueError(f"allowed ids must lie in [0, {self.vocab_size})")
            mask = np.zeros(self.vocab_size, dtype=bool)
            mask[arr] = True
        if not mask.any():
            raise ValueError("allowed permits no token")
        return mask

    def generate(
        self,
        arrays: Mapping[str, np.ndarray],
        n_tokens: int,
        allowed: np.ndarray | Sequence[int] | None = None,
        return_logits: bool = False,
        prompt: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Greedy decoding of ``n_tokens`` after BOS: tokens (B, n) int64.

        ``allowed``: ids (or a (V,) bool mask) the decoder may emit; the rest get -inf logits.
        ``return_logits`` also returns the raw (unmasked) logits (B, n, V) of every step; when
        the greedy graph decoded them, only the logits of its ids (the action bins) were computed
        and the others read -inf.
        ``prompt``: this episode's ``encode_prompt`` cache; only the step is then encoded.
        """
        self._check_n_tokens(n_tokens)
        mask = self.allowed_mask(allowed)
        cross, b = self.encode_cross(arrays, prompt)
        return self.decode(cross, b, n_tokens, mask, return_logits)

    def _check_n_tokens(self, n_tokens: int) -> None:
        if not 1 <= n_tokens <= self.max_dec_len:
            raise ValueError(
                f"n_tokens must be in [1, max_dec_len={self.max_dec_len}], got {n_tokens}"
            )

    def encode_cross(
        self,
        arrays: Mapping[str, np.ndarray],
        prompt: Sequence[np.ndarray] | None = None,
        obs_states: bool = False,
    ) -> tuple[list[Any], int]:
        """What the decoder reads (cross_k, cross_v, enc_mask: on a GPU left on the device) and
        the batch size. ``obs_states`` (step encoder of a scene bundle only) appends view 0's
        observation-patch states (B, Np, D) as a host array."""
        # On a GPU the encoder's outputs and the growing self-attention cache stay on the device
        # (IOBinding); only the token, position and logits cross to the host each step.
        if prompt is not None:
            feed = self._step_feed(arrays, prompt)
            outputs: tuple[str, ...] = ENCODER_OUTPUTS
            if obs_states:
                if not self.has_scene_states:
                    raise ValueError(f"{self.bundle.root} exports no observation states")
                outputs = (*outputs, SCENE_STATE_OUTPUTS["step_encoder"])
            cross = self._run_bound("step_encoder", feed, outputs, host=outputs[3:])
        else:
            if obs_states:
                raise ValueError("observation states come from the step encoder: pass prompt")
            feed = {s.name: arrays[s.name] for s in self.encoder_inputs if s.name in arrays}
            check_feed("encoder", self.encoder_inputs, feed)
            cross = self._run_bound("encoder", feed, ENCODER_OUTPUTS)
        return cross, int(feed[next(iter(feed))].shape[0])  # every input's axis 0 is the batch

    def decode(
        self,
        cross: Sequence[Any],
        b: int,
        n_tokens: int,
        mask: np.ndarray | None,
        return_logits: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Greedy decoding from ``encode_cross``'s outputs. ``mask``: None, a (V,) bool mask
        for every token (``allowed_mask``), or one row per token (n_tokens, V), which always
        runs the step loop (the fused graph takes one mask)."""
        self._check_n_tokens(n_tokens)
        cross = list(cross[: len(ENCODER_OUTPUTS)])
        if mask is not None and mask.ndim == 2:
            self._check_rows(mask, n_tokens)
            return self._decode_loop(cross, b, n_tokens, mask, return_logits)
        if self._can_fuse(n_tokens, mask):
            assert mask is not None
            greedy_feed = {**dict(zip(ENCODER_OUTPUTS, cross, strict=True)), "allowed": mask}
            tokens, logits = self._run_bound(
                "decoder_greedy", greedy_feed, GREEDY_OUTPUTS, host=GREEDY_OUTPUTS
            )
            # greedy decoding is causal: the first n of the graph's tokens are the n asked for
            tokens = tokens[:, :n_tokens]
            if not return_logits:
                return tokens
            lo, hi = self.greedy_ids  # only these logits were computed; the rest read -inf
            full = np.full((b, n_tokens, self.vocab_size), -np.inf, dtype=logits.dtype)
            full[:, :, lo:hi] = logits[:, :n_tokens]
            return tokens, full
        return self._decode_loop(cross, b, n_tokens, mask, return_logits)

    @property
    def has_guided_decoder(self) -> bool:
        """True when the bundle carries ``decoder_guided`` (scene-guided placement in one call)."""
        return "decoder_guided" in self.sessions

    def decode_guided(
        self,
        cross: Sequence[Any],
        b: int,
        n_tokens: int,
        mask: np.ndarray,
        pick_patch: np.ndarray,
        place_rows: np.ndarray,
    ) -> np.ndarray:
        """Greedy decoding with scene-guided placement from its tables
        (``uio2_robot.runtime.guidance``: ``pick_patch_table`` (K, K) int64 and this step's
        ``step_place_rows`` (B, Np + 1, 2, K) bool, K = the greedy ids' count): one
        ``decoder_guided`` call, the graph exported from ``UIO2Model.greedy_decode``, which the
        torch policy runs itself: the one executor of the rule."""
        lo, hi = self.greedy_ids
        k = hi - lo
        if pick_patch.shape != (k, k) or pick_patch.dtype != np.int64:
            raise ValueError(
                f"pick_patch must be int64 ({k}, {k}), got {pick_patch.dtype} {pick_patch.shape}"
            )
        if place_rows.ndim != 4 or place_rows.shape[0] != b or place_rows.shape[2:] != (2, k):
            raise ValueError(
                f"place_rows must be bool ({b}, R, 2, {k}), got {place_rows.dtype} {place_rows.shape}"
            )
        if place_rows.dtype != bool:
            raise ValueError(f"place_rows must be bool, got {place_rows.dtype}")
        if pick_patch.min() < 0 or pick_patch.max() >= place_rows.shape[1]:
            raise ValueError(
                f"pick_patch entries must index place_rows' {place_rows.shape[1]} rows"
            )
        self._check_n_tokens(n_tokens)
        if not self.has_guided_decoder:
            raise ValueError(
                f"{self.bundle.root} has no decoder_guided graph: scene-guided placement runs "
                "in it; re-export the bundle from a checkpoint with prompt scenes"
            )
        lo_mask, hi_mask = mask[:lo].any(), mask[hi:].any()
        if n_tokens > self.greedy_tokens or lo_mask or hi_mask:
            raise ValueError(
                f"guided decoding runs decoder_guided: at most {self.greedy_tokens} tokens "
                f"within the ids {lo}..{hi - 1}, got {n_tokens} tokens and a wider mask"
                if lo_mask or hi_mask
                else f"guided decoding runs decoder_guided: at most {self.greedy_tokens} tokens, "
                f"got {n_tokens}"
            )
        feed = {
            **dict(zip(ENCODER_OUTPUTS, cross[: len(ENCODER_OUTPUTS)], strict=True)),
            "allowed": mask,
            "pick_patch": pick_patch,
            "place_rows": place_rows,
        }
        guide_specs = [s for s in self.bundle.inputs("decoder_guided") if s.name in GUIDE_INPUTS]
        check_feed("decoder_guided", guide_specs, {n: feed[n] for n in GUIDE_INPUTS})
        tokens = self._run_bound("decoder_guided", feed, GREEDY_OUTPUTS, host=GREEDY_OUTPUTS)[0]
        return tokens[:, :n_tokens]

    def _check_rows(self, rows: np.ndarray, n_tokens: int) -> None:
        if rows.shape != (n_tokens, self.vocab_size) or rows.dtype != bool:
            raise ValueError(
                f"per-token allowed mask must be bool ({n_tokens}, {self.vocab_size}), got "
                f"{rows.dtype} {rows.shape}"
            )
        if not rows.any(axis=1).all():
            raise ValueError("per-token allowed mask permits no token in some row")

    def _can_fuse(self, n_tokens: int, mask: np.ndarray | None) -> bool:
        """decoder_greedy can serve this decode: no longer than it unrolls, and constrained to
        the ids whose logits it computes (the action bins)."""
        if not self.fused_decoding or n_tokens > self.greedy_tokens or mask is None:
            return False
        lo, hi = self.greedy_ids
        return not (mask[:lo].any() or mask[hi:].any())

    def _decode_loop(
        self,
        cross: Sequence[Any],
        b: int,
        n_tokens: int,
        mask: np.ndarray | None,
        return_logits: bool,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Greedy decoding with one ``decoder_step`` call per token, the cache fed back."""
        self_k: np.ndarray | ort.OrtValue = self.empty_cache(b)
        self_v: np.ndarray | ort.OrtValue = self_k
        token = np.full((b, 1), self.bos_id, dtype=np.int64)
        tokens = np.empty((b, n_tokens), dtype=np.int64)
        all_logits = [] if return_logits else None
        for i in range(n_tokens):
            step_feed = {
                "token": token,
                "position": np.full((b,), i, dtype=np.int64),
                "self_k": self_k,
                "self_v": self_v,
                **dict(zip(ENCODER_OUTPUTS, cross, strict=True)),
            }
            out = self._run_bound("decoder_step", step_feed, DECODER_OUTPUTS, host=("logits",))
            logits, self_k, self_v = out[0], out[1], out[2]
            if all_logits is not None:
                all_logits.append(logits)
            if mask is not None:
                logits = np.where(mask if mask.ndim == 1 else mask[i], logits, -np.inf)
            tokens[:, i] = logits.argmax(-1)
            token = tokens[:, i : i + 1]
        if all_logits is not None:
            return tokens, np.stack(all_logits, axis=1)
        return tokens

    def _run_bound(
        self,
        graph: str,
        feed: Mapping[str, np.ndarray | ort.OrtValue],
        outputs: Sequence[str],
        host: Sequence[str] = (),
    ) -> list[Any]:
        """Run ``graph``; outputs named in ``host`` come back as numpy arrays.

        On a GPU this goes through IOBinding: numpy inputs are bound from host memory, OrtValues
        where they already are, and the other outputs stay on the device as OrtValues (no copy
        between the graphs of one control step). On the CPU there is nothing to save and plain
        ``run`` is faster (measured ~0.4 ms less per control step than binding), so every output
        is a numpy array.
        """
        session = self.sessions[graph]
        if not self.use_io_binding:
            return session.run(list(outputs), dict(feed))
        binding = session.io_binding()
        for name, value in feed.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in outputs:
            binding.bind_output(name, "cpu" if name in host else self.device_type, 0)
        session.run_with_iobinding(binding)
        return [
            v.numpy() if n in host else v
            for n, v in zip(outputs, binding.get_outputs(), strict=True)
        ]

    def warmup(self, n_tokens: int | None = None) -> None:
        """Run one dummy step so the first real control step does not pay for lazy
        initialisation (memory arenas, kernel selection, TensorRT engines)."""
        feed = {}
        for spec in self.encoder_inputs:
            shape = tuple(1 if isinstance(d, str) else d for d in spec.shape)
            if spec.dtype == "bool":
                feed[spec.name] = np.ones(shape, dtype=bool)
            else:
                feed[spec.name] = np.zeros(shape, dtype=spec.dtype)
        modes = self.bundle.manifest["decoding"]["action_modes"].values()
        n = min(n_tokens or max(int(m["n_tokens"]) for m in modes), self.max_dec_len)
        lo, hi = self.greedy_ids
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[lo:hi] = True
        cross, b = self.encode_cross(feed)
        self.decode(cross, b, n, None)  # the step loop
        self.decode(cross, b, n, mask)  # the fused greedy graph where it serves
        if self.has_prompt_cache:
            self.generate(feed, n, mask, prompt=self.encode_prompt(feed))
        if self.has_guided_decoder:  # tables that guide nothing: only the graph's first run
            spec = next(s for s in self.bundle.inputs("decoder_guided") if s.name == "place_rows")
            pick_patch = np.zeros((hi - lo, hi - lo), dtype=np.int64)
            place_rows = np.ones((1, int(spec.shape[1]), 2, hi - lo), dtype=bool)
            self.decode_guided(cross, b, min(n, self.greedy_tokens), mask, pick_patch, place_rows)
