"""The training configuration (plain data, checked by Hydra against this dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uio2_robot.contracts import check_mode
from uio2_robot.seeding import EVAL_SEED_BASE
from uio2_robot.train.augment import check_augment

TERMS = ("s_action", "r_image", "x_text", "r_text", "s_text")
ATTENTION_PROJECTIONS = ("wqkv", "wq", "wkv", "wo")  # fused self-attn qkv, cross q and kv, out
MLP_PROJECTIONS = ("w_in", "w_out")  # SwiGLU's fused gate+up, and down
LORA_TARGETS = ATTENTION_PROJECTIONS + MLP_PROJECTIONS
"""The projections LoRA may wrap (``TrainConfig.lora_targets``); the default wraps all of them
(docs/finetuning.md: attention alone did not move closed-loop success)."""
LORA_LR = 2e-3
"""A LoRA fine-tune's peak learning rate unless set: its B factors start at zero and the update is
low-rank, so the full fine-tune's 3e-4 barely moves it in a few hundred steps (issue #25)."""
ASSIGNMENTS = ("all", "split")


@dataclass
class MixtureConfig:
    """Weights and corruption settings of the mixture of denoisers (plain data for Hydra).

    A weight of 0 skips the term (no forward pass). Defaults train the policy objective with a
    light [R] image term, which regularises the image encoder that is trained from scratch.
    """

    s_action: float = 1.0
    r_image: float = 0.25
    x_text: float = 0.0
    r_text: float = 0.0
    s_text: float = 0.0
    patch_mask_ratio: float = 0.5  # [R] image: fraction of obs patches masked per view
    x_noise_rate: float = 0.5  # [X]: fraction of text tokens corrupted (UL2: 0.5)
    x_mean_span: float = 8.0  # [X]: mean corrupted span length (short prompts: UL2 uses 32+)
    r_text_noise_rate: float = 0.15  # [R] text: T5's rate
    r_text_mean_span: float = 3.0
    pack: bool = False  # pack examples into shared rows (same loss, less padding computed)
    pack_capacity: int = 0  # encoder tokens per packed row; 0 = the model's encoder length S
    # "all": every active term runs on the whole batch (one forward pass per term) and the
    # total is sum(weight * term). "split": UIO2's sampling, each example is assigned to one
    # term with probability ~ weight (one forward pass over the batch in all), and the total
    # is the mean over examples, so the weights act as proportions only.
    assignment: str = "all"
    label_smoothing: float = 0.0
    # HL-Gauss (Imani & White 2018; Farebrother et al. 2024): the action term's target for a
    # value bin is a Gaussian of this width (in bins) integrated over the bins, instead of a
    # one-hot. A prediction one bin off then costs little, so coordinates are learnt coarse to
    # fine rather than as 256 unrelated classes. 0 = plain one-hot cross-entropy.
    action_bin_sigma: float = 0.0
    action_n_bins: int = 0  # bins the action tokenizer uses; 0 = every value bin of the vocab
    # Pointing: a cross-entropy over the observation patches for "which patch holds the
    # demonstrated pick / place point", added to the action term with this weight. A policy
    # that decodes coordinates from pixels must first learn *where* things are; from scratch,
    # through the decoder's cross-attention alone, that stalls at chance for thousands of steps
    # (a blob-localisation toy did not move in 600 steps; with pointing it did in 150). 0 = off.
    point_weight: float = 0.0
    # Scene pointing: the observation patch of the demonstrated pick point scores the first
    # prompt scene's patches (dot product of encoder states), and the scene patch of the place
    # point must win: in a goal scene (rearrange) that is the picked object at its goal, in a
    # layout scene (scene_understanding) the container. It supervises the binding "picked object
    # -> its spot in the goal image", which the action loss reaches only through the decoder
    # (v10 places the right object at another object's goal). Needs point_weight > 0 (the same
    # targets); rows without a scene or without both points in view 0 add nothing. 0 = off.
    scene_point_weight: float = 0.0

    def __post_init__(self) -> None:
        for term in TERMS:
            w = getattr(self, term)
            if not (isinstance(w, int | float) and np.isfinite(w) and w >= 0):
                raise ValueError(
                    f"MixtureConfig.{term} weight must be a finite float >= 0, got {w!r}"
                )
        if not any(getattr(self, t) > 0 for t in TERMS):
            raise ValueError(f"MixtureConfig needs at least one positive weight among {TERMS}")
        if not 0 < self.patch_mask_ratio < 1:
            raise ValueError(f"patch_mask_ratio must be in (0, 1), got {self.patch_mask_ratio}")
        for name in ("x_noise_rate", "r_text_noise_rate"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(
                    f"MixtureConfig.{name} must be in (0, 1), got {getattr(self, name)}"
                )
        for name in ("x_mean_span", "r_text_mean_span"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"MixtureConfig.{name} must be >= 1, got {getattr(self, name)}")
        if isinstance(self.pack_capacity, bool) or not (
            isinstance(self.pack_capacity, int) and self.pack_capacity >= 0
        ):
            raise ValueError(f"pack_capacity must be an int >= 0, got {self.pack_capacity!r}")
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(
                f"MixtureConfig.assignment must be one of {ASSIGNMENTS}, got {self.assignment!r}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not (np.isfinite(self.point_weight) and self.point_weight >= 0):
            raise ValueError(f"point_weight must be a finite float >= 0, got {self.point_weight}")
        if not (np.isfinite(self.scene_point_weight) and self.scene_point_weight >= 0):
            raise ValueError(
                f"scene_point_weight must be a finite float >= 0, got {self.scene_point_weight}"
            )
        if self.scene_point_weight > 0 and not self.point_weight > 0:
            raise ValueError(
                "scene_point_weight > 0 needs point_weight > 0 (it reuses the pointing targets)"
            )
        if self.point_weight > 0 and self.pack:
            raise ValueError("the pointing objective (point_weight > 0) does not support pack")
        if not (np.isfinite(self.action_bin_sigma) and self.action_bin_sigma >= 0):
            raise ValueError(f"action_bin_sigma must be >= 0 bins, got {self.action_bin_sigma}")
        if isinstance(self.action_n_bins, bool) or not (
            isinstance(self.action_n_bins, int) and self.action_n_bins >= 0
        ):
            raise ValueError(f"action_n_bins must be an int >= 0, got {self.action_n_bins!r}")


@dataclass
class TrainConfig:
    """`uio2-robot train`: fine-tune or train a UIO2 policy on trajectory stores."""

    stores: list[str] = field(default_factory=list)
    weights: list[float] | None = None  # mixing weight per store
    # task -> weight of its frames inside each store, e.g. {rearrange: 2.0}; empty: by frames
    task_weights: dict[str, float] = field(default_factory=dict)
    # Rehearsal against forgetting (train/replay.py): these stores join the run with
    # replay_share of the sampling weight; [parent] = the stores the init_from checkpoint records
    replay_from: list[str] = field(default_factory=list)
    replay_share: float = 0.2
    out: str = "runs/uio2"
    model: str = "small"  # preset: tiny | small | base | large | xl | xxl
    # add keys with +model_overrides.KEY=VALUE, e.g. +model_overrides.max_history=0
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # a checkpoint folder to fine-tune from, or "default" (the shipped policy). The fine-tune
    # inherits its training recipe and its inference section (train/lineage.py) except the keys
    # set on the command line.
    init_from: str | None = None
    # With init_from: normalise proprio with the new stores' statistics instead of the
    # checkpoint's (e.g. a primitive-mode policy, whose arm rests between steps, fine-tuned on
    # delta-mode data where the arm moves).
    refit_proprio_stats: bool = False
    finetune: str = "full"  # full | frozen_encoder | lora
    lora_rank: int = 16
    lora_alpha: float = 32.0
    # the projections LoRA wraps: attention (wqkv, wq, wkv, wo) and MLP (w_in, w_out); only their
    # low-rank factors train
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    # camera views the policy sees (RGB keys of the store); None = the suite's front/top if
    # stored, else every RGB key (a gymnasium env's rendered frames are stored as "render")
    cameras: list[str] | None = None
    # the 1-D observation key the policy reads as proprio; None = "proprio", else the store's
    # one 1-D key (a gymnasium env's array observation is stored as "obs")
    proprio_key: str | None = None
    # Crop the top view to the workspace before resizing (the suite's square top view is half
    # floor); the crop is stored in the processor, so rollout and serving apply it too.
    crop_workspace: bool = False
    # primitive | delta on a suite store; a store of any other env trains its own action space
    # (names and bounds from its schema) under the mode name "gym"
    action_mode: str = "primitive"
    action_horizon: int = 1  # actions per decoder target (chunk length)
    n_bins: int = 1000
    action_bins: str = "uniform"  # uniform (the store's action bounds) | quantile (1st-99th pct)
    steps: int = 2000
    # Wall-clock budget in seconds (0 = none): the run stops after the step that crosses it and
    # saves, as an interrupted run would (resume continues it). For leased machines, whose time
    # is capped; size `steps` from a measured rate so the LR schedule still completes.
    time_limit_s: float = 0.0
    batch_size: int = 32
    grad_accum: int = 1
    optimizer: str = "adamw"  # adamw | adafactor
    lr: float = 3e-4  # peak; a LoRA fine-tune that does not set it uses 2e-3 (LORA_LR)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    # Moving average of the weights (train/ema.py), e.g. 0.99: the `policy` checkpoint and
    # in-training evaluation use the average, `last` keeps the raw weights. 0 = off (on
    # same_texture 0.99 gained nothing on fresh seeds: docs/finetuning.md).
    ema_decay: float = 0.0
    num_workers: int = 0
    val_fraction: float = 0.05
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast where a GPU is present
    log_every: int = 20
    val_every: int = 200
    save_every: int = 500
    eval_every: int = (
        0  # closed-loop evaluation period in steps; 0 = only at the end if eval_episodes
    )
    eval_episodes: int = 0
    eval_tasks: list[str] = field(default_factory=lambda: ["visual_manipulation"])
    eval_levels: list[str] = field(default_factory=lambda: ["L1"])
    eval_seed: int = EVAL_SEED_BASE
    resume: bool = True
    half_weights: bool = False  # save float16 weights (the shipped policy: half the size)
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    # Colour augmentation (train/augment.py): every image of a sample turned by one random hue
    # angle in [-augment_hue, augment_hue] turns (0.5: any hue), red<->green swapped with
    # probability augment_swap. For tasks that match looks ("same texture as ..."); off for
    # prompts that name colours.
    augment_hue: float = 0.0
    augment_swap: float = 0.0
    # Mirror augmentation (train/mirror.py): each sample reflected across the workspace's
    # centre line (y -> -y: images flipped, action labels and pointing targets moved) with this
    # probability. Primitive mode on the suite's top view only; off for prompts that name sides.
    # (On same_texture from 400 demonstrations 0.5 gained nothing: docs/finetuning.md.)
    augment_mirror: float = 0.0
    # How the checkpoint is meant to be run, written to its config's "inference" section and read
    # by rollout, export and serve: guide_place (scene-guided placement), action_mode. A
    # fine-tune starts from its parent's section; set a key to change it (inference.KEY=VALUE).
    inference: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_inference(self.inference)
        check_augment(self.augment_hue, self.augment_swap, self.augment_mirror)
        check_ema_decay(self.ema_decay)
        if not 0.0 < self.replay_share < 1.0:
            raise ValueError(f"replay_share must be in (0, 1), got {self.replay_share}")


def check_ema_decay(decay: float) -> None:
    """Raise a ValueError unless ``decay`` is 0 (off) or in (0, 1) (``TrainConfig.ema_decay``)."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema_decay must be 0 (off) or in (0, 1), e.g. 0.99; got {decay}")


INFERENCE_KEYS: dict[str, tuple[type, ...]] = {"guide_place": (bool,), "action_mode": (str,)}
"""The keys of a checkpoint's ``inference`` section and their types (readers:
``uio2_robot.runtime.guidance.recommended_guidance``, ``deploy.metadata.served_action_mode``)."""


def check_inference(inference: dict[str, Any]) -> None:
    """Raise a ValueError naming the known keys for an unknown or mistyped inference setting
    (a misspelt key would otherwise be written to the checkpoint and never read)."""
    for key, value in inference.items():
        if key not in INFERENCE_KEYS:
            raise ValueError(
                f"unknown inference setting {key!r}; the known ones are {sorted(INFERENCE_KEYS)}"
            )
        if not isinstance(value, INFERENCE_KEYS[key]):
            kinds = " or ".join(t.__name__ for t in INFERENCE_KEYS[key])
            raise ValueError(f"inference.{key} must be a {kinds}, got {value!r}")
    if "action_mode" in inference:
        check_mode(inference["action_mode"])
