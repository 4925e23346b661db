"""The training loop behind `uio2-robot train`.

One deterministic schedule: the batch of step ``s`` is drawn from an RNG seeded by
``(seed, s, rank)`` and the objectives' corruption RNG likewise, so a run resumed from a
checkpoint continues exactly as if it had never stopped. The same code runs on one CPU, one GPU
(bf16 autocast) or several GPUs under ``torchrun`` (DDP; each rank draws its own batches).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from uio2_robot.contracts import ACTION_MODES
from uio2_robot.model.config import ModelConfig, get_config
from uio2_robot.model.uio2 import UIO2Model
from uio2_robot.tokenize.actions import ActionTokenizer
from uio2_robot.tokenize.processor import Processor
from uio2_robot.train.augment import augment_colours
from uio2_robot.train.batching import check_processor_matches_model
from uio2_robot.train.checkpoint import (
    load_checkpoint,
    load_train_state,
    save_checkpoint,
)
from uio2_robot.train.config import MixtureConfig, TrainConfig
from uio2_robot.train.ema import WeightAverage
from uio2_robot.train.lineage import inherit, resumed_parent_matches
from uio2_robot.train.lora import apply_lora, merged_state_dict
from uio2_robot.train.mirror import Mirror
from uio2_robot.train.objectives import compute_losses
from uio2_robot.train.replay import with_replay
from uio2_robot.train.store_spec import STORE_ACTION_MODE, StoreSpec, store_spec, warn_clipped
from uio2_robot.train.transform import TrainingTransform, collate_arrays
from uio2_robot.trajectories.dataset import WindowDataset
from uio2_robot.trajectories.episode import ACTION_KEY
from uio2_robot.trajectories.integrity import require_sound
from uio2_robot.trajectories.store import EpisodeStore
from uio2_robot.trajectories.tools import compute_stats

FINETUNE_MODES = ("full", "frozen_encoder", "lora")


class LossModule(torch.nn.Module):
    """``forward`` = the mixture-of-denoisers losses of a batch.

    DDP synchronises gradients only for computation run through the wrapped module's
    ``forward``; the objectives call ``embed``/``encode``/``decode`` directly, so the model is
    wrapped in this module and DDP wraps it.
    """

    def __init__(self, model: UIO2Model, mixture: MixtureConfig, vocab: Any) -> None:
        super().__init__()
        self.model = model
        self.mixture = mixture
        self.vocab = vocab

    def forward(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, torch.Tensor]:
        return compute_losses(self.model, batch, self.mixture, generator, self.vocab)


class StepBatchSampler(Sampler[list[int]]):
    """Yields the index batches of micro-steps ``start .. total-1``; batch k depends only on
    (seed, k, rank), which is what makes resume exact. Stores (and tasks) are mixed by the
    dataset's weights.
    """

    def __init__(
        self,
        dataset: WindowDataset,
        batch_size: int,
        start: int,
        total: int,
        seed: int,
        rank: int = 0,
    ) -> None:
        self.dataset = dataset
        self.batch_size, self.start, self.total = batch_size, start, total
        self.seed, self.rank = seed, rank

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start, self.total):
            rng = np.random.default_rng([self.seed, k, self.rank])
            yield self.dataset.draw(rng, self.batch_size).tolist()


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up then cosine decay to ``min_ratio`` of the peak learning rate."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_processor(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    stores: list[EpisodeStore],
    spec: StoreSpec | None = None,
) -> Processor:
    """The processor for a fresh run: cameras, proprio and action space from the store's schema
    (``spec``), the data's proprio stats, and uniform bins over the action bounds (or the data's
    quantiles). A suite store keeps the suite's two action modes (``Processor.for_suite``);
    any other store gets its own action space as the one mode ``STORE_ACTION_MODE``."""
    spec = spec or store_spec(stores[0], cfg.cameras, cfg.proprio_key)
    cameras = spec.cameras
    fields: dict[str, Any] = {
        "image_size": model_cfg.image_hw,
        "prompt_image_size": (model_cfg.prompt_image_size, model_cfg.prompt_image_size),
        "camera_keys": cameras,
        "proprio_key": spec.proprio_key,
        "max_prompt_tokens": model_cfg.max_prompt_tokens,
        "max_prompt_images": model_cfg.max_prompt_images,
        "max_history": model_cfg.max_history,
        "action_horizon": cfg.action_horizon,
        # both set frame_size (the stored frames' size): merged, not passed twice
        **(workspace_crop(stores[0], cameras) if cfg.crop_workspace else {}),
        **(scene_fields(stores[0], cameras) if model_cfg.max_prompt_scenes else {}),
        "max_prompt_scenes": model_cfg.max_prompt_scenes,
    }
    if spec.suite_mode is not None:
        mode = cfg.action_mode
        processor = Processor.for_suite(
            n_bins=cfg.n_bins,
            proprio_mean=np.zeros(spec.proprio_dim),
            proprio_std=np.ones(spec.proprio_dim),
            **fields,
        )
    else:
        mode = STORE_ACTION_MODE
        processor = Processor.for_actions(
            mode,
            spec.action_names,
            spec.action_low,
            spec.action_high,
            n_bins=cfg.n_bins,
            proprio_dim=spec.proprio_dim,
            **fields,
        )
    # the stores' own statistics (cached in each store, pooled over several): one computation
    stats = compute_stats(stores, [spec.proprio_key, ACTION_KEY])
    proprio = stats[spec.proprio_key]
    processor = processor.with_proprio_stats(proprio.mean, proprio.std)
    if cfg.action_bins == "quantile":
        base = processor.action_tokenizer(mode)
        wrap = {
            n: (lo, hi)
            for n, lo, hi, w in zip(base.names, base.low, base.high, base.wrap, strict=True)
            if w
        }
        action = stats[ACTION_KEY]
        fitted = ActionTokenizer.from_percentiles(
            action.p01, action.p99, base.names, processor.vocab, cfg.n_bins, wrap_bounds=wrap
        )
        tokenizers = {**processor.action_tokenizers, mode: fitted}
        processor = dataclasses.replace(processor, action_tokenizers=tokenizers)
    elif cfg.action_bins != "uniform":
        raise ValueError(f"action_bins must be 'uniform' or 'quantile', got {cfg.action_bins!r}")
    return processor


def workspace_crop(store: EpisodeStore, cameras: tuple[str, ...]) -> dict[str, Any]:
    """Processor fields that crop the stored top view to the workspace (``crop_workspace``)."""
    from uio2_robot.envs.render import top_view_point_map, top_view_workspace_box

    if "top" not in cameras:
        raise ValueError(f"crop_workspace crops the 'top' view, but the cameras are {cameras}")
    h, w = store.schema.keys["top"].shape[:2]
    return {
        "crops": {"top": top_view_workspace_box(h, w)},
        "frame_size": (h, w),
        "point_maps": {"top": top_view_point_map()},
    }


def scene_fields(store: EpisodeStore, cameras: tuple[str, ...]) -> dict[str, Any]:
    """Processor fields that mark prompt images of the stored top view's size as scenes."""
    if cameras[0] != "top":
        raise ValueError(
            f"prompt scenes are top-view frames and must be view 0, but the cameras are {cameras}"
        )
    return {"scene_camera": "top", "frame_size": tuple(store.schema.keys["top"].shape[:2])}


def resolve_action_mode(wanted: str, processor: Processor) -> str:
    """The processor's action mode to train: ``wanted`` if it has it, else its only mode (a
    store's own action space, ``STORE_ACTION_MODE``)."""
    if wanted in processor.action_modes:
        return wanted
    if len(processor.action_modes) == 1:
        return processor.action_modes[0]
    raise ValueError(
        f"action_mode {wanted!r} is not one of the processor's modes {processor.action_modes}"
    )


def train_seeds(
    stores: list[EpisodeStore], inherited: dict[str, list[int]] | None = None
) -> dict[str, list[int]]:
    """Seeds of every stored episode per ``task/level``, plus the ``inherited`` seeds of the
    checkpoint a run starts from: evaluation refuses to reuse any seed a policy's lineage saw."""
    seeds: dict[str, set[int]] = {k: set(v) for k, v in (inherited or {}).items()}
    for store in stores:
        for meta in store.all_meta():
            if meta.get("seed") is not None:
                seeds.setdefault(f"{meta['task']}/{meta['level']}", set()).add(int(meta["seed"]))
    return {k: sorted(v) for k, v in sorted(seeds.items())}


class Trainer:
    """Owns the model, optimizer, data and bookkeeping of one training run."""

    def __init__(self, cfg: TrainConfig, explicit: Collection[str] | None = None) -> None:
        """``explicit``: the dotted config keys the user set (the CLI's overrides); with
        ``init_from`` every other recipe key comes from the parent (`train.lineage.inherit`;
        None = the keys that differ from TrainConfig's defaults)."""
        self.lineage = inherit(cfg, explicit) if cfg.init_from else None
        if self.lineage is not None:
            cfg = self.lineage.cfg
        if cfg.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {cfg.finetune!r}")
        if not cfg.stores:
            raise ValueError(
                "train needs stores=[PATH, ...] (trajectory stores from `uio2-robot collect`)"
            )
        if cfg.replay_from:
            cfg = with_replay(cfg, self.lineage.parent["path"] if self.lineage else None)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.device = self._device()
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.stores = [EpisodeStore.open(p, mode="r") for p in cfg.stores]
        for store in self.stores:  # every chunk decompressed and every checksum compared once
            require_sound(store, deep=True)

        resume_dir = self.out / "checkpoints" / "last"
        self.step = 0
        train_state = None
        saved: dict[str, Any] = {}
        if cfg.resume and resume_dir.is_dir():
            weights, saved, proc = load_checkpoint(resume_dir)
            if self.lineage is not None:
                resumed_parent_matches(saved, self.lineage)
            self.model_cfg = ModelConfig.from_dict(saved["model"])
            self.processor = Processor.from_dict(proc)
            train_state = load_train_state(resume_dir)
        elif self.lineage is not None:
            weights, saved, proc = load_checkpoint(self.lineage.parent["path"])
            # overrides that keep the weights' shapes (e.g. prompt_prefix) fine-tune as they are;
            # one that changes a shape fails at load_state_dict below, naming the tensor
            self.model_cfg = ModelConfig.from_dict({**saved["model"], **cfg.model_overrides})
            self.processor = Processor.from_dict(proc)
            if self.model_cfg.max_prompt_scenes != self.processor.max_prompt_scenes:
                # scene slots added (or removed) by model_overrides: no new weights, the scenes
                # reuse the observation patch embedding and the prompt-image index embedding
                self.processor = dataclasses.replace(
                    self.processor, max_prompt_scenes=self.model_cfg.max_prompt_scenes
                )
            if cfg.refit_proprio_stats:
                key = self.processor.proprio_key
                proprio = compute_stats(self.stores, [key])[key]
                self.processor = self.processor.with_proprio_stats(proprio.mean, proprio.std)
        else:
            weights = None
            self.processor = None  # type: ignore[assignment]
            spec = store_spec(self.stores[0], cfg.cameras, cfg.proprio_key)
            from uio2_robot.tokenize.vocab import Vocabulary

            vocab = Vocabulary(text_size=256)
            self.model_cfg = get_config(
                cfg.model,
                vocab_size=vocab.size,
                image_marker_id=vocab.image_marker_id(0),
                n_views=len(spec.cameras),
                proprio_dim=spec.proprio_dim,
                **({"point_heads": 2} if cfg.mixture.point_weight > 0 else {}),
                **dict(cfg.model_overrides),
            )
            self.processor = build_processor(cfg, self.model_cfg, self.stores, spec)
        mode = resolve_action_mode(cfg.action_mode, self.processor)
        if mode != cfg.action_mode:  # a store's own action space: saved under its mode's name
            cfg = self.cfg = dataclasses.replace(cfg, action_mode=mode)
        if cfg.eval_episodes and mode not in ACTION_MODES:
            raise ValueError(
                "eval_episodes runs the suite, whose action modes are "
                f"{ACTION_MODES}; evaluate a policy of another env with "
                "`uio2-robot rollout env=gym:ID checkpoint=...`"
            )
        if self.rank == 0:  # stored actions the bins cannot represent: say how many
            warn_clipped(self.stores, self.processor.action_tokenizer(mode))
        self.seeds = train_seeds(self.stores, saved.get("train_seeds"))
        check_processor_matches_model(self.processor, self.model_cfg)
        self.mirror = (  # refuses a geometry the reflection would not fit, before any work
            Mirror.for_processor(self.processor, mode, self.model_cfg.grid_hw)
            if cfg.augment_mirror
            else None
        )

        self.model = UIO2Model(self.model_cfg)
        lora_resume = cfg.finetune == "lora" and train_state is not None
        if weights is not None and not lora_resume:
            self.model.load_state_dict(weights)  # plain weights (fresh fine-tune or full resume)
        self._setup_finetune()
        if weights is not None and lora_resume:
            self.model.load_state_dict(weights)  # the LoRA-wrapped state saved in `last`
        self.model.to(self.device)
        self.optimizer = self._optimizer(decay_groups(self.model, cfg.weight_decay))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio),
        )
        self.ema = WeightAverage(self.model, cfg.ema_decay) if cfg.ema_decay else None
        if train_state is not None:
            try:
                self.optimizer.load_state_dict(train_state["optimizer"])
            except ValueError as exc:
                raise ValueError(
                    f"{cfg.out}: the saved optimizer state does not fit this run's parameter "
                    f"groups ({exc}); it was written before weight decay left norms and "
                    "embeddings alone. Start a new run from its weights with init_from="
                    f"{cfg.out}/checkpoints/policy"
                ) from None
            self.scheduler.load_state_dict(train_state["scheduler"])
            self.step = int(train_state["step"])
            if self.ema is not None:
                if "ema" not in train_state:
                    raise ValueError(
                        f"{cfg.out}: ema_decay={cfg.ema_decay}, but the run being resumed kept "
                        "no weight average; resume it with ema_decay=0, or start a new run"
                    )
                self.ema.load_state_dict(train_state["ema"])
            torch.set_rng_state(train_state["torch_rng"])
        self.mixture = dataclasses.replace(  # replace() re-runs the checks
            cfg.mixture, action_n_bins=self.processor.action_tokenizer(cfg.action_mode).n_bins
        )
        self.loss_module: torch.nn.Module = LossModule(
            self.model, self.mixture, self.processor.vocab
        )
        if self.world > 1:
            self.loss_module = torch.nn.parallel.DistributedDataParallel(
                self.loss_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        keys = [*self.processor.camera_keys, self.processor.proprio_key]
        pointing = cfg.mixture.point_weight > 0
        if pointing and (not self.processor.point_maps or self.model_cfg.point_heads < 2):
            raise ValueError(
                "mixture.point_weight > 0 needs a processor with point_maps (crop_workspace=true) "
                f"and a model with 2 pointing heads (has {self.model_cfg.point_heads})"
            )
        scene_camera = self.processor.scene_key if self.processor.max_prompt_scenes else None
        if cfg.mixture.scene_point_weight > 0 and scene_camera not in self.processor.point_maps:
            raise ValueError(
                "mixture.scene_point_weight > 0 needs prompt scenes (max_prompt_scenes > 0) from a "
                f"camera with a point map; scenes: {scene_camera}, point maps: "
                f"{sorted(self.processor.point_maps)}"
            )
        transform = TrainingTransform(
            self.processor, cfg.action_mode, self.model_cfg.grid_hw if pointing else None
        )
        history = self.model_cfg.max_history + 1
        self.train_set = WindowDataset(
            cfg.stores,
            weights=cfg.weights,
            n_obs_history=history,
            action_chunk=cfg.action_horizon,
            keys=keys,
            split="train",
            val_fraction=cfg.val_fraction,
            split_seed=0,
            transform=transform,
            task_weights=dict(cfg.task_weights or {}) or None,
        )
        self.val_set = None
        if cfg.val_fraction > 0:
            self.val_set = WindowDataset(
                cfg.stores,
                n_obs_history=history,
                action_chunk=cfg.action_horizon,
                keys=keys,
                split="val",
                val_fraction=cfg.val_fraction,
                split_seed=0,
                transform=transform,
            )
        self.writer = None
        if self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"))

    # ------------------------------------------------------------------ setup helpers
    def _device(self) -> torch.device:
        want = self.cfg.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want == "cuda":
            local = int(os.environ.get("LOCAL_RANK", 0))
            if self.world > 1 and not torch.distributed.is_initialized():
                torch.distributed.init_process_group("nccl")
            torch.cuda.set_device(local)
            return torch.device("cuda", local)
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("gloo")
        return torch.device(want)

    def _setup_finetune(self) -> None:
        cfg = self.cfg
        if cfg.finetune == "frozen_encoder":
            trunk = ("encoder_layers", "encoder_norm", "embedder", "resampler")
            for name, p in self.model.named_parameters():
                if name.startswith(trunk):
                    p.requires_grad_(False)
        elif cfg.finetune == "lora":
            apply_lora(self.model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets)

    def _optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        cfg = self.cfg
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))
        if cfg.optimizer == "adafactor":
            return torch.optim.Adafactor(groups, lr=cfg.lr)
        raise ValueError(f"optimizer must be 'adamw' or 'adafactor', got {cfg.optimizer!r}")

    def _loader(self, dataset: WindowDataset, start: int, total: int, seed: int) -> DataLoader:
        sampler = StepBatchSampler(dataset, self.cfg.batch_size, start, total, seed, self.rank)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=self.cfg.num_workers,
            collate_fn=collate_arrays,
            persistent_workers=False,
        )

    # ------------------------------------------------------------------ the loop
    def train(self, until: int | None = None) -> dict[str, Any]:
        """Run until ``cfg.steps`` (or stop early at step ``until``, saving, as an interrupted run
        would); returns the final metrics. Checkpoints land in ``out/checkpoints``."""
        from tqdm import tqdm

        cfg = self.cfg
        accum = max(1, cfg.grad_accum)
        loader = iter(self._loader(self.train_set, self.step * accum, cfg.steps * accum, cfg.seed))
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not cfg.progress or self.rank != 0,
            desc="train",
        )
        autocast = self.device.type == "cuda" and cfg.amp
        metrics: dict[str, float] = {}
        started = time.perf_counter()
        samples = 0
        self.model.train()
        stop = cfg.steps if until is None else min(until, cfg.steps)
        while self.step < stop:
            self.optimizer.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            for micro in range(accum):
                batch = next(loader)
                draw = cfg.seed * 1_000_003 + self.step * accum + micro
                generator = torch.Generator().manual_seed(draw)
                rng = np.random.default_rng([draw, self.rank])  # identity when both are 0
                batch = augment_colours(batch, cfg.augment_hue, cfg.augment_swap, rng)
                if self.mirror is not None:
                    batch = self.mirror(batch, cfg.augment_mirror, rng)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
                    losses = self.loss_module(batch, generator)
                (losses["loss"] / accum).backward()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / accum
                samples += len(batch["tokens"]) * self.world
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], cfg.grad_clip
            )
            if not torch.isfinite(grad_norm):
                raise FloatingPointError(
                    f"non-finite gradient norm at step {self.step} (losses {sums}); lower lr or check data"
                )
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.step += 1
            metrics = {**sums, "grad_norm": float(grad_norm), "lr": self.scheduler.get_last_lr()[0]}
            if cfg.time_limit_s and self._out_of_time(started):
                stop = self.step  # out of wall-clock budget: save below and end like an interrupt
            bar.update(1)
            bar.set_postfix(
                loss=f"{sums['loss']:.3f}", acc=f"{sums.get('s_action_accuracy', 0):.2f}"
            )
            if self.writer is not None and (
                self.step % cfg.log_every == 0 or self.step == cfg.steps
            ):
                elapsed = time.perf_counter() - started
                metrics["samples_per_s"] = samples / max(elapsed, 1e-9)
                for k, v in metrics.items():
                    self.writer.add_scalar(f"train/{k}", v, self.step)
            if self.val_set is not None and cfg.val_every and self.step % cfg.val_every == 0:
                metrics.update(self.validate())
            if self.rank == 0 and (self.step % cfg.save_every == 0 or self.step == stop):
                self.save()
            if cfg.eval_episodes and cfg.eval_every and self.step % cfg.eval_every == 0:
                metrics.update(self.evaluate())
        bar.close()
        if (
            cfg.eval_episodes
            and (not cfg.eval_every or cfg.steps % cfg.eval_every)
            and self.rank == 0
        ):
            metrics.update(self.evaluate())
        metrics["wall_seconds"] = time.perf_counter() - started
        metrics["samples_per_s"] = samples / max(metrics["wall_seconds"], 1e-9)
        if self.rank == 0:
            (self.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if self.writer is not None:
            self.writer.close()
        return metrics

    def _out_of_time(self, started: float) -> bool:
        """Whether the wall-clock budget is spent; under DDP every rank gets rank 0's answer, so
        all stop after the same step (one rank leaving early would hang the others)."""
        over = time.perf_counter() - started >= self.cfg.time_limit_s
        if self.world > 1:
            flag = torch.tensor([float(over)], device=self.device)
            torch.distributed.broadcast(flag, src=0)
            over = bool(flag.item())
        return over

    @torch.no_grad()
    def validate(self, batches: int = 8) -> dict[str, float]:
        """Mean losses on the validation episodes (fixed batches, so the curve is comparable)."""
        assert self.val_set is not None
        self.model.eval()
        sums: dict[str, float] = {}
        loader = self._loader(self.val_set, 0, batches, seed=12345)
        for i, batch in enumerate(loader):
            generator = torch.Generator().manual_seed(i)
            losses = compute_losses(
                self.model, batch, self.mixture, generator, self.processor.vocab
            )
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v) / batches
        self.model.train()
        out = {f"val_{k}": v for k, v in sums.items()}
        if self.writer is not None:
            for k, v in out.items():
                self.writer.add_scalar(f"val/{k[4:]}", v, self.step)
        return out

    def evaluate(self) -> dict[str, float]:
        """Closed-loop success on held-out seeds (never a training seed; checked)."""
        from uio2_robot.envs import levels_for, make_env
        from uio2_robot.eval.rollout import evaluate
        from uio2_robot.policies.uio2 import UIO2Policy

        cfg = self.cfg
        levels = {t: [lv for lv in cfg.eval_levels if lv in levels_for(t)] for t in cfg.eval_tasks}
        levels = {t: lv for t, lv in levels.items() if lv}
        with self._averaged():  # what the policy checkpoint will hold
            policy = UIO2Policy(
                self._plain_model(), self.processor, device=str(self.device), train_seeds=self.seeds
            )
            policy.check_eval_seeds(cfg.eval_seed, levels, cfg.eval_episodes)
            report = evaluate(
                policy,
                lambda t, lv: make_env(
                    t, lv, action_mode=cfg.action_mode, image_size=_env_image_size(self.processor)
                ),
                list(levels),
                levels,
                cfg.eval_episodes,
                cfg.eval_seed,
                policy_name=f"step{self.step}",
                action_mode=cfg.action_mode,
                out_dir=self.out / "eval" / f"step{self.step:07d}",
                n_videos=1,
                progress=False,
            )
        self.model.train()
        out: dict[str, float] = {}
        for cell in report.cells:
            out[f"success/{cell.task}/{cell.level}"] = cell.success_rate
            if self.writer is not None:
                self.writer.add_scalar(
                    f"success/{cell.task}/{cell.level}", cell.success_rate, self.step
                )
        return out

    def _averaged(self) -> AbstractContextManager[Any]:
        """The model's weights swapped for their moving average while inside (ema_decay > 0)."""
        return self.ema.applied(self.model) if self.ema is not None else nullcontext()

    def _policy_weights(self) -> dict[str, torch.Tensor]:
        """The plain weights the ``policy`` checkpoint holds: LoRA merged, averaged if on."""
        if self.cfg.finetune == "lora":
            with self._averaged():  # merging makes new tensors of every averaged weight
                return merged_state_dict(self.model)
        if self.ema is None:
            return self.model.state_dict()
        with self.ema.applied(self.model):  # copies: the raw weights come back on exit
            return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _plain_model(self) -> UIO2Model:
        """The model with LoRA merged (a fresh copy) or the model itself."""
        if self.cfg.finetune != "lora":
            return self.model
        plain = UIO2Model(self.model_cfg).to(self.device)
        plain.load_state_dict(merged_state_dict(self.model))
        return plain

    def save(self) -> Path:
        """Write ``checkpoints/last`` (with optimizer state, for resume) and ``checkpoints/policy``
        (plain merged weights, averaged when ``ema_decay`` > 0: what `rollout checkpoint=` and
        `export` take)."""
        config = {
            "model": self.model_cfg.to_dict(),
            "train": _jsonable(dataclasses.asdict(self.cfg)),
            "step": self.step,
            "train_seeds": self.seeds,
        }
        inference = self.lineage.inference if self.lineage is not None else self.cfg.inference
        if inference:  # how the checkpoint is meant to be run (rollout, export and serve read it)
            config["inference"] = dict(inference)
        if self.lineage is not None:
            config["parent"] = self.lineage.parent
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "torch_rng": torch.get_rng_state(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        ckpt = self.out / "checkpoints"
        proc = self.processor.to_dict()
        # `last` resumes: the raw (for LoRA, unmerged) weights the optimizer state belongs to
        save_checkpoint(ckpt / "last", self.model.state_dict(), config, proc, state, half=False)
        save_checkpoint(
            ckpt / "policy", self._policy_weights(), config, proc, half=self.cfg.half_weights
        )
        return ckpt / "policy"


def _env_image_size(processor: Processor) -> int:
    """Render at 2x the model's input size (the processor downsizes with area interpolation)."""
    return int(max(processor.image_size) * 2)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def train(cfg: TrainConfig, explicit: Collection[str] | None = None) -> dict[str, Any]:
    """Train (or resume, or fine-tune) per ``cfg``; return the final metrics. ``explicit``: the
    keys the user set, which a fine-tune keeps over its parent's recipe (:class:`Trainer`)."""
    return Trainer(cfg, explicit).train()


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in two optimizer groups: projection weights decay, the rest not.

    Weight decay pulls weights towards zero, which is a prior for projection matrices but not
    for norm gains (their neutral value is 1), biases, embedding tables and learned queries (a
    rare token or latent would be shrunk just for being rare) or attention temperatures; as in
    minGPT, only the weights of Linear and Conv layers decay.
    """
    projections = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
    decayed = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, projections) and isinstance(getattr(m, "weight", None), torch.Tensor)
    }
    decay, keep = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if id(p) in decayed else keep).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]
