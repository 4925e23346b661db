"""The training loop on a small synthetic store: it learns, checkpoints, and resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uio2_robot.policies.uio2 import UIO2Policy
from uio2_robot.train.checkpoint import load_checkpoint, load_train_state
from uio2_robot.train.config import LORA_TARGETS, MixtureConfig, TrainConfig
from uio2_robot.train.loop import StepBatchSampler, Trainer, lr_factor
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.store import EpisodeStore


def _cfg(store: str, out, steps: int, **kw) -> TrainConfig:
    return TrainConfig(
        stores=[store],
        out=str(out),
        model="tiny",
        steps=steps,
        batch_size=8,
        lr=3e-3,
        warmup_steps=2,
        val_fraction=0.0,
        save_every=1000,
        log_every=1000,
        progress=False,
        threads=1,
        mixture=MixtureConfig(r_image=0.1),
        **kw,
    )


def _trained(store: str, out, **kw) -> tuple[Trainer, str]:
    """A one-step run and its policy folder: the init of the fine-tuning tests."""
    trainer = Trainer(_cfg(store, out, steps=1, **kw))
    trainer.train()
    return trainer, str(out / "checkpoints" / "policy")


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_training_reduces_loss_and_saves_a_loadable_policy(store_path, tmp_path):
    trainer = Trainer(_cfg(store_path, tmp_path / "run", steps=60))
    metrics = trainer.train()
    # 4 colours -> 4 distinct 6-token actions: chance accuracy is ~0.1%
    assert metrics["s_action_accuracy"] > 0.5
    weights, config, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "policy")
    assert config["train_seeds"]["synthetic/L1"] == list(range(24))
    policy = UIO2Policy.from_checkpoint(tmp_path / "run" / "checkpoints" / "policy")
    assert set(weights) == set(policy.model.state_dict())


MIRROR = {"augment_mirror": 0.5, "cameras": ["top"], "crop_workspace": True}


@pytest.mark.parametrize(
    "augment", [{}, {"augment_hue": 0.5, "augment_swap": 0.5}, {"ema_decay": 0.9}, MIRROR]
)
def test_resume_is_exact(store_path, tmp_path, augment):
    """Also with colour and mirror augmentation (drawn from the step, not from a stream) and
    with a weight average (saved beside the optimizer state)."""
    straight = Trainer(_cfg(store_path, tmp_path / "a", steps=6, **augment))
    straight.train()
    part = Trainer(_cfg(store_path, tmp_path / "b", steps=6, **augment))
    part.train(until=3)  # an interrupted run: checkpoints/last holds step 3
    resumed = Trainer(_cfg(store_path, tmp_path / "b", steps=6, **augment))
    assert resumed.step == 3
    resumed.train()
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    policies = [load_checkpoint(tmp_path / r / "checkpoints" / "policy")[0] for r in "ab"]
    for name, a in policies[0].items():
        torch.testing.assert_close(a, policies[1][name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_the_policy_checkpoint_holds_the_weight_average(store_path, tmp_path, finetune):
    _, init = _trained(store_path, tmp_path / "base")
    trainer = Trainer(
        _cfg(store_path, tmp_path / "ft", steps=4, init_from=init, finetune=finetune, ema_decay=0.5)
    )
    trainer.train()
    policy, _, _ = load_checkpoint(tmp_path / "ft" / "checkpoints" / "policy")
    with trainer.ema.applied(trainer.model):
        plain = {k: v.clone() for k, v in trainer._plain_model().state_dict().items()}
    raw = trainer._plain_model().state_dict()
    changed = [k for k in policy if not torch.equal(policy[k], raw[k])]
    assert changed, "the policy checkpoint holds the raw weights, not their average"
    for name, value in policy.items():
        torch.testing.assert_close(value, plain[name], msg=name)
    assert not any("lora" in k for k in policy)
    assert load_train_state(tmp_path / "ft" / "checkpoints" / "last")["ema"]["updates"] == 4


def test_resuming_with_an_average_the_run_never_kept_is_refused(store_path, tmp_path):
    Trainer(_cfg(store_path, tmp_path / "run", steps=4)).train(until=2)
    with pytest.raises(ValueError, match="kept no weight average"):
        Trainer(_cfg(store_path, tmp_path / "run", steps=4, ema_decay=0.9))


def test_time_limit_stops_early_saves_and_resumes(store_path, tmp_path):
    # a budget every step exceeds: the run ends after its first step, saved like an interrupt
    trainer = Trainer(_cfg(store_path, tmp_path / "run", steps=6, time_limit_s=1e-9))
    trainer.train()
    assert trainer.step == 1
    assert load_train_state(tmp_path / "run" / "checkpoints" / "last")["step"] == 1
    resumed = Trainer(_cfg(store_path, tmp_path / "run", steps=6))
    assert resumed.step == 1
    resumed.train()
    assert resumed.step == 6


def test_lora_finetune_trains_only_adapters_and_exports_plain_weights(store_path, tmp_path):
    base = Trainer(_cfg(store_path, tmp_path / "base", steps=2))
    base.train()
    init = tmp_path / "base" / "checkpoints" / "policy"
    ft = Trainer(_cfg(store_path, tmp_path / "ft", steps=3, init_from=str(init), finetune="lora"))
    trainable = [n for n, p in ft.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    wrapped = {n.rsplit(".", 2)[-2] for n in trainable}
    assert wrapped == set(LORA_TARGETS)  # every attention and MLP projection (the default)
    ft.train()
    weights, _, _ = load_checkpoint(tmp_path / "ft" / "checkpoints" / "policy")
    assert not any("lora" in k for k in weights)
    UIO2Policy.from_checkpoint(tmp_path / "ft" / "checkpoints" / "policy")


def test_bad_config_is_a_clear_error(store_path, tmp_path):
    with pytest.raises(ValueError, match="finetune"):
        Trainer(_cfg(store_path, tmp_path / "x", steps=1, finetune="half"))
    with pytest.raises(ValueError, match="stores"):
        Trainer(TrainConfig(stores=[], out=str(tmp_path / "y")))


def test_task_weights_reach_the_training_batches(store_path, tmp_path):
    """``task_weights`` shape the loop's batches; a task the stores lack is a clear error."""
    trainer = Trainer(_cfg(store_path, tmp_path / "tw", steps=1, task_weights={"synthetic": 2.0}))
    assert trainer.train_set.sample_cdf is not None
    batches = list(StepBatchSampler(trainer.train_set, 8, 0, 3, seed=0))
    assert batches == list(StepBatchSampler(trainer.train_set, 8, 0, 3, seed=0))
    assert all(0 <= i < len(trainer.train_set) for b in batches for i in b)
    with pytest.raises(StoreError, match="synthetic"):
        Trainer(_cfg(store_path, tmp_path / "tw2", steps=1, task_weights={"rotate": 2.0}))


def test_workspace_crop_and_gaussian_bin_targets_train(store_path, tmp_path):
    """crop_workspace stores the top view's crop in the processor; HL-Gauss targets train."""
    from uio2_robot.envs.render import top_view_workspace_box

    cfg = _cfg(store_path, tmp_path / "crop", steps=2, cameras=["top"], crop_workspace=True)
    cfg.mixture = MixtureConfig(r_image=0.0, action_bin_sigma=0.75)
    trainer = Trainer(cfg)
    assert trainer.processor.crops == {"top": top_view_workspace_box(32, 32)}
    assert trainer.processor.frame_size == (32, 32)
    assert trainer.mixture.action_n_bins == trainer.processor.action_tokenizer("primitive").n_bins
    metrics = trainer.train()
    assert np.isfinite(metrics["loss"])
    with pytest.raises(ValueError, match="crop_workspace crops the 'top' view"):
        Trainer(_cfg(store_path, tmp_path / "c2", steps=1, cameras=["front"], crop_workspace=True))


def test_finetune_keeps_the_training_seeds_of_its_lineage(store_path, tmp_path):
    """A fine-tuned policy lists the seeds its init was trained on too: evaluation refuses them."""
    import json

    _, init = _trained(store_path, tmp_path / "base")
    config = tmp_path / "base" / "checkpoints" / "policy" / "config.json"
    data = json.loads(config.read_text())
    data["train_seeds"]["rotate/L1"] = [5, 9]  # as if the init had also seen rotate episodes
    config.write_text(json.dumps(data))
    ft = Trainer(_cfg(store_path, tmp_path / "ft", steps=1, init_from=init))
    assert ft.seeds["rotate/L1"] == [5, 9] and ft.seeds["synthetic/L1"] == list(range(24))
    ft.train()
    _, saved, _ = load_checkpoint(tmp_path / "ft" / "checkpoints" / "policy")
    assert saved["train_seeds"]["rotate/L1"] == [5, 9]


def test_finetune_can_refit_proprio_stats_to_the_new_data(store_path, tmp_path):
    base, init = _trained(store_path, tmp_path / "base")
    shifted = tmp_path / "shifted.zarr"
    src = EpisodeStore.open(store_path)
    out = EpisodeStore.create(shifted, src.schema)
    for i in range(src.n_episodes):
        ep = src.episode(i)
        ep.steps["proprio"] = ep.steps["proprio"] + 5.0
        out.append_episode(ep)
    out.close()
    kept = Trainer(_cfg(str(shifted), tmp_path / "a", steps=1, init_from=init))
    refit = Trainer(
        _cfg(str(shifted), tmp_path / "b", steps=1, init_from=init, refit_proprio_stats=True)
    )
    np.testing.assert_allclose(kept.processor.proprio_mean, base.processor.proprio_mean)
    np.testing.assert_allclose(refit.processor.proprio_mean, base.processor.proprio_mean + 5.0)


def test_mirror_augmentation_trains_and_needs_a_top_view_with_a_point_map(store_path, tmp_path):
    cfg = _cfg(store_path, tmp_path / "m", steps=2, **MIRROR)
    cfg.mixture = MixtureConfig(r_image=0.0, point_weight=1.0)
    trainer = Trainer(cfg)
    assert trainer.mirror is not None and trainer.mirror.grid == trainer.model_cfg.grid_hw
    assert np.isfinite(trainer.train()["loss"])
    with pytest.raises(ValueError, match="cameras without one"):
        Trainer(_cfg(store_path, tmp_path / "m2", steps=1, augment_mirror=0.5, cameras=["top"]))


def test_pointing_objective_trains_and_needs_point_maps(store_path, tmp_path):
    cfg = _cfg(store_path, tmp_path / "pt", steps=2, cameras=["top"], crop_workspace=True)
    cfg.mixture = MixtureConfig(r_image=0.0, point_weight=1.0)
    trainer = Trainer(cfg)
    assert trainer.model_cfg.point_heads == 2 and set(trainer.processor.point_maps) == {"top"}
    metrics = trainer.train()
    assert np.isfinite(metrics["loss"])
    no_maps = _cfg(store_path, tmp_path / "pt2", steps=1, cameras=["top"])
    no_maps.mixture = MixtureConfig(r_image=0.0, point_weight=1.0)
    with pytest.raises(ValueError, match="needs a processor with point_maps"):
        Trainer(no_maps)
    no_scenes = _cfg(store_path, tmp_path / "pt3", steps=1, cameras=["top"], crop_workspace=True)
    no_scenes.mixture = MixtureConfig(r_image=0.0, point_weight=1.0, scene_point_weight=1.0)
    with pytest.raises(ValueError, match="scene_point_weight > 0 needs prompt scenes"):
        Trainer(no_scenes)
    scenes = _cfg(
        store_path,
        tmp_path / "pt4",
        steps=2,
        cameras=["top"],
        crop_workspace=True,
        model_overrides={"max_prompt_scenes": 1},
    )
    scenes.mixture = no_scenes.mixture
    assert np.isfinite(Trainer(scenes).train()["loss"])
    # the probe reads the trained heads back on the store's demonstrations
    from uio2_robot.train.probe import probe_pointing

    ckpt = tmp_path / "pt4" / "checkpoints" / "policy"
    scores = probe_pointing(str(ckpt), store_path, "synthetic", samples=16)
    assert scores["pick"].n == scores["place"].n == 16
    assert scores["scene"] is None  # the synthetic prompts hold no scene
    # with the pointing heads zeroed every patch ties: CE is log(patches), argmax is patch 0
    import shutil

    from safetensors.torch import load_file, save_file

    flat = tmp_path / "flat"
    shutil.copytree(ckpt, flat)
    weights = load_file(flat / "model.safetensors")
    for name in ("point_head.weight", "point_head.bias"):
        weights[name] = torch.zeros_like(weights[name])
    save_file(weights, flat / "model.safetensors")
    flat_scores = probe_pointing(str(flat), store_path, "synthetic", samples=16)
    from uio2_robot.model import ModelConfig

    n_patches = ModelConfig.from_dict(load_checkpoint(ckpt)[1]["model"]).n_patches  # one view
    for name in ("pick", "place"):
        assert flat_scores[name].cross_entropy == pytest.approx(np.log(n_patches), rel=1e-5)
    with pytest.raises(ValueError, match="holds no 'rearrange' episodes"):
        probe_pointing(ckpt, store_path, "rearrange")


def test_finetune_switches_on_prefix_encoding_and_packing_refuses_it(store_path, tmp_path):
    base, init = _trained(store_path, tmp_path / "base")
    ft = Trainer(
        _cfg(
            store_path,
            tmp_path / "ft",
            steps=2,
            init_from=init,
            model_overrides={"prompt_prefix": True},
        )
    )
    assert ft.model_cfg.prompt_prefix and not base.model_cfg.prompt_prefix
    assert np.isfinite(ft.train()["loss"])
    policy = UIO2Policy.from_checkpoint(tmp_path / "ft" / "checkpoints" / "policy")
    assert policy.model.cfg.prompt_prefix
    packed = _cfg(
        store_path,
        tmp_path / "pk",
        steps=1,
        init_from=init,
        model_overrides={"prompt_prefix": True},
    )
    packed.mixture = MixtureConfig(r_image=0.1, pack=True)
    with pytest.raises(ValueError, match="pack=true cannot train a prefix-encoding model"):
        Trainer(packed).train()
    with pytest.raises(RuntimeError, match="size mismatch"):  # shapes cannot change on fine-tune
        Trainer(
            _cfg(
                store_path,
                tmp_path / "sz",
                steps=1,
                init_from=init,
                model_overrides={"d_model": 32},
            )
        )


def test_finetune_adds_prompt_scenes_to_a_checkpoint_without_them(store_path, tmp_path):
    """Scene slots need no new weights: a no-scene checkpoint fine-tunes with them, and the
    processor learns to route frame-sized prompt images (the synthetic prompt has none here)."""
    _, init = _trained(store_path, tmp_path / "base", cameras=["top"], crop_workspace=True)
    ft = Trainer(
        _cfg(
            store_path,
            tmp_path / "ft",
            steps=2,
            init_from=init,
            model_overrides={"max_prompt_scenes": 1},
        )
    )
    assert ft.model_cfg.max_prompt_scenes == 1 and ft.processor.max_prompt_scenes == 1
    assert np.isfinite(ft.train()["loss"])
    policy = UIO2Policy.from_checkpoint(tmp_path / "ft" / "checkpoints" / "policy")
    assert policy.processor.max_prompt_scenes == 1 and policy.processor.frame_size == (32, 32)


def test_weight_decay_leaves_norms_embeddings_and_biases_alone() -> None:
    from uio2_robot.model.config import get_config
    from uio2_robot.model.uio2 import UIO2Model
    from uio2_robot.train.loop import decay_groups

    model = UIO2Model(get_config("tiny"))
    decay, keep = decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in keep["params"]}
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    assert len(decayed) + len(kept) == len(names)
    assert "token_embed.weight" in kept and "encoder_norm.weight" in kept
    assert "resampler.resampler.latents" in kept
    assert any(n.endswith("attn.logit_scale") for n in kept)
    tables = ("_embed", "_embed.weight", "embed.weight")
    assert not any("norm" in n or n.endswith(".bias") or n.endswith(tables) for n in decayed)
    assert "embedder.obs_patch_embed.proj.weight" in decayed  # a projection, not a table
    assert "encoder_layers.0.attn.wqkv.weight" in decayed


def test_the_processor_takes_the_stores_own_statistics(store_path, tmp_path):
    """Proprio normalisation and quantile action bins come from the store's cached statistics
    (EpisodeStore.stats), not from a second computation in the trainer."""
    from uio2_robot.model.config import get_config
    from uio2_robot.train.loop import build_processor

    store = EpisodeStore.open(store_path, mode="r")
    stats = store.stats()
    cfg = _cfg(store_path, tmp_path / "run", steps=1, action_bins="quantile")
    processor = build_processor(cfg, get_config("tiny"), [store])
    np.testing.assert_array_equal(processor.proprio_mean, stats["proprio"].mean)
    np.testing.assert_array_equal(processor.proprio_std, np.maximum(stats["proprio"].std, 1e-3))
    tok = processor.action_tokenizer(cfg.action_mode)
    fit = ~np.array(tok.wrap)  # circular dimensions keep their full turn
    np.testing.assert_array_equal(tok.low[fit], np.asarray(stats["action"].p01)[fit])
    np.testing.assert_array_equal(tok.high[fit], np.asarray(stats["action"].p99)[fit])
