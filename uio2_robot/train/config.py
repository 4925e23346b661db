"""The training configuration (plain data, checked by Hydra against this dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MixtureWeights:
    """Mirror of `uio2_robot.train.objectives.MixtureConfig` for Hydra (weights and settings)."""

    s_action: float = 1.0
    r_image: float = 0.25
    x_text: float = 0.0
    r_text: float = 0.0
    s_text: float = 0.0
    patch_mask_ratio: float = 0.5
    x_noise_rate: float = 0.5
    x_mean_span: float = 8.0
    r_text_noise_rate: float = 0.15
    r_text_mean_span: float = 3.0
    pack: bool = False
    pack_capacity: int = 0
    label_smoothing: float = 0.0
    action_bin_sigma: float = 0.0  # HL-Gauss width in bins for action targets; 0 = one-hot
    point_weight: float = 0.0  # pointing objective (needs crop_workspace or point maps); 0 = off
    scene_point_weight: float = (
        0.0  # picked patch -> place point in the goal scene (needs point_weight)
    )
    assignment: str = "all"  # all: every term on the whole batch; split: one term per example


@dataclass
class TrainConfig:
    """`uio2-robot train`: fine-tune or train a UIO2 policy on trajectory stores."""

    stores: list[str] = field(default_factory=list)
    weights: list[float] | None = None
    task_weights: dict[str, float] | None = None
    out: str = "runs/uio2"
    model: str = "small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # a checkpoint folder to fine-tune from
    # With init_from: normalise proprio with the new stores' statistics instead of the
    # checkpoint's (e.g. a primitive-mode policy, whose arm rests between steps, fine-tuned on
    # delta-mode data where the arm moves).
    refit_proprio_stats: bool = False
    finetune: str = "full"  # full | frozen_encoder | lora
    lora_rank: int = 8
    lora_alpha: float = 16.0
    cameras: list[str] | None = None  # camera views the policy sees; None = every view stored
    # Crop the top view to the workspace before resizing (the suite's square top view is half
    # floor); the crop is stored in the processor, so rollout and serving apply it too.
    crop_workspace: bool = False
    action_mode: str = "primitive"
    action_horizon: int = 1
    n_bins: int = 1000
    action_bins: str = "uniform"  # uniform (suite bounds) | quantile (data's 1st-99th pct)
    steps: int = 2000
    # Wall-clock budget in seconds (0 = none): the run stops after the step that crosses it and
    # saves, as an interrupted run would (resume continues it). For leased machines, whose time
    # is capped; size `steps` from a measured rate so the LR schedule still completes.
    time_limit_s: float = 0.0
    batch_size: int = 32
    grad_accum: int = 1
    optimizer: str = "adamw"  # adamw | adafactor
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
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
    eval_seed: int = 1_000_000_000_000
    resume: bool = True
    half_weights: bool = False  # save float16 weights (the shipped policy: half the size)
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    progress: bool = True
    mixture: MixtureWeights = field(default_factory=MixtureWeights)
