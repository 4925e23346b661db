"""A fine-tune continues the run it starts from: recipe and inference inherited unless set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uio2_robot.cli import main
from uio2_robot.export.cache import checkpoint_digest
from uio2_robot.policies.factory import DEFAULT_POLICY_DIR
from uio2_robot.train.checkpoint import load_checkpoint
from uio2_robot.train.config import LORA_LR, MixtureConfig, TrainConfig
from uio2_robot.train.lineage import changes_table, inherit, override_keys, parent_dir
from uio2_robot.train.loop import Trainer

PARENT_MIXTURE = MixtureConfig(r_image=0.1, label_smoothing=0.1, action_bin_sigma=0.5)


def _run(store: str, out: Path, **kw) -> TrainConfig:
    base = dict(
        stores=[store],
        out=str(out),
        model="tiny",
        steps=1,
        batch_size=4,
        warmup_steps=1,
        val_fraction=0.0,
        progress=False,
        threads=1,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def parent(store_path, tmp_path_factory) -> str:
    """A one-step run with a recipe unlike the defaults and an inference section."""
    out = tmp_path_factory.mktemp("parent")
    cfg = _run(
        store_path,
        out,
        n_bins=64,
        cameras=["top"],
        weight_decay=0.05,
        mixture=PARENT_MIXTURE,
        inference={"guide_place": True, "action_mode": "primitive"},
    )
    Trainer(cfg).train()
    return str(out / "checkpoints" / "policy")


RUN_KEYS_SET = {"stores", "out", "init_from", "model", "steps", "batch_size", "warmup_steps"}
RUN_KEYS_SET |= {"val_fraction", "progress", "threads"}


def test_fine_tune_inherits_recipe_and_inference_and_records_its_parent(
    store_path, parent, tmp_path
):
    cfg = _run(store_path, tmp_path / "ft", init_from=parent, lr=1e-4)
    trainer = Trainer(cfg, explicit=RUN_KEYS_SET | {"lr"})
    resolved = trainer.cfg
    assert resolved.mixture == PARENT_MIXTURE  # not the dataclass defaults (r_image 0.25, ...)
    assert (resolved.n_bins, resolved.cameras, resolved.weight_decay) == (64, ["top"], 0.05)
    assert resolved.lr == 1e-4  # the run's own key, never inherited
    trainer.train()
    _, config, _ = load_checkpoint(tmp_path / "ft" / "checkpoints" / "policy")
    assert config["inference"] == {"guide_place": True, "action_mode": "primitive"}
    assert config["train"]["mixture"]["label_smoothing"] == 0.1
    assert config["parent"]["path"] == str(Path(parent).resolve())
    assert config["parent"]["digest"] == checkpoint_digest(parent)
    assert config["parent"]["step"] == 1
    # a grandchild inherits the same recipe through the child
    grand = Trainer(
        _run(store_path, tmp_path / "g", init_from=str(tmp_path / "ft/checkpoints/policy")),
        explicit=RUN_KEYS_SET,
    )
    assert grand.cfg.mixture == PARENT_MIXTURE and grand.lineage.inference["guide_place"] is True


def test_a_key_set_by_the_user_wins_even_at_its_default_value(store_path, parent, tmp_path):
    cfg = _run(
        store_path,
        tmp_path / "ft",
        init_from=parent,
        mixture=MixtureConfig(r_image=0.25),  # the dataclass default, set on purpose
        inference={"guide_place": False},
    )
    lineage = inherit(cfg, RUN_KEYS_SET | {"mixture.r_image", "inference.guide_place"})
    assert lineage.cfg.mixture.r_image == 0.25
    assert lineage.cfg.mixture.label_smoothing == 0.1  # the rest of the mixture: the parent's
    assert lineage.inference == {"guide_place": False, "action_mode": "primitive"}
    rows = {c.key: (c.parent, c.value) for c in lineage.changes}
    assert rows["mixture.r_image"] == (0.1, 0.25)
    assert rows["inference.guide_place"] == (True, False)
    assert "mixture.label_smoothing" not in rows and "out" not in rows  # unchanged / bookkeeping
    table = changes_table(lineage)
    assert "mixture.r_image" in table and "0.1" in table and "0.25" in table


def test_without_explicit_keys_the_non_default_values_count_as_set(store_path, parent, tmp_path):
    cfg = _run(store_path, tmp_path / "ft", init_from=parent, mixture=MixtureConfig(r_image=0.3))
    lineage = inherit(cfg, None)
    assert lineage.cfg.mixture.r_image == 0.3
    assert lineage.cfg.mixture.action_bin_sigma == 0.5  # left at its default: inherited


def test_changing_what_the_parent_processor_fixes_is_an_error(store_path, parent, tmp_path):
    cfg = _run(store_path, tmp_path / "ft", init_from=parent, n_bins=1000)
    with pytest.raises(ValueError, match="n_bins=1000.*n_bins=64"):
        inherit(cfg, RUN_KEYS_SET | {"n_bins"})
    assert inherit(cfg, RUN_KEYS_SET).cfg.n_bins == 64  # not set: inherited, no error


def test_changing_the_action_mode_moves_the_recommended_one(store_path, parent, tmp_path):
    cfg = _run(store_path, tmp_path / "ft", init_from=parent, action_mode="delta")
    assert inherit(cfg, RUN_KEYS_SET | {"action_mode"}).inference["action_mode"] == "delta"


def test_resuming_after_the_parent_changed_is_refused(store_path, parent, tmp_path):
    Trainer(_run(store_path, tmp_path / "ft", init_from=parent, steps=2), RUN_KEYS_SET).train(
        until=1
    )
    cfg_path = tmp_path / "ft" / "checkpoints" / "last" / "config.json"
    saved = json.loads(cfg_path.read_text())
    saved["parent"]["digest"] = "0" * 64
    cfg_path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="parent with digest 000000000000"):
        Trainer(_run(store_path, tmp_path / "ft", init_from=parent, steps=2), RUN_KEYS_SET)


def test_init_from_default_is_the_shipped_policy_and_its_recipe(store_path, tmp_path):
    assert parent_dir("default") == DEFAULT_POLICY_DIR
    lineage = inherit(TrainConfig(stores=[store_path], init_from="default"), {"stores"})
    shipped = json.loads((DEFAULT_POLICY_DIR / "config.json").read_text())
    mixture = shipped["train"]["mixture"]
    for key in ("r_image", "action_bin_sigma", "point_weight", "scene_point_weight"):
        assert getattr(lineage.cfg.mixture, key) == mixture[key], key
    for key in ("n_bins", "cameras", "crop_workspace", "action_horizon", "action_bins"):
        assert getattr(lineage.cfg, key) == shipped["train"][key], key
    assert lineage.inference == shipped["inference"]
    assert lineage.cfg.stores == [store_path]  # the parent's stores are its own
    assert lineage.parent["path"] == str(DEFAULT_POLICY_DIR.resolve())


def test_a_missing_parent_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="'default' for the shipped policy"):
        parent_dir(str(tmp_path / "nope"))


def test_override_keys_reads_hydra_overrides():
    keys = override_keys(["lr=1e-4", "+model_overrides.max_history=0", "~weights", "a.b=[1,2]"])
    assert keys == {"lr", "model_overrides.max_history", "weights", "a.b"}


def test_unknown_inference_key_is_an_error():
    with pytest.raises(ValueError, match="unknown inference setting 'guide'.*guide_place"):
        TrainConfig(inference={"guide": True})
    with pytest.raises(ValueError, match="inference.guide_place must be a bool"):
        TrainConfig(inference={"guide_place": "yes"})


def test_cli_prints_the_changes_and_keeps_the_users_keys(store_path, parent, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "train",
            f"init_from={parent}",
            f"stores=[{store_path}]",
            f"out={out}",
            "steps=1",
            "batch_size=4",
            "warmup_steps=1",
            "val_fraction=0",
            "progress=false",
            "threads=1",
            "mixture.r_image=0.25",
            "inference.guide_place=false",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "changed from the parent" in printed
    assert "mixture.r_image" in printed and "inference.guide_place" in printed
    _, config, _ = load_checkpoint(out / "checkpoints" / "policy")
    assert config["train"]["mixture"]["r_image"] == 0.25
    assert config["train"]["mixture"]["label_smoothing"] == 0.1  # inherited, not the default 0
    assert config["inference"]["guide_place"] is False


def test_lora_targets_choose_the_wrapped_projections(store_path, parent, tmp_path):
    cfg = _run(
        store_path, tmp_path / "ft", init_from=parent, finetune="lora", lora_targets=["w_in"]
    )
    trainer = Trainer(cfg, RUN_KEYS_SET | {"finetune", "lora_targets"})
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and {n.rsplit(".", 2)[-2] for n in trainable} == {"w_in"}
    with pytest.raises(ValueError, match="lora_targets must be a non-empty subset"):
        Trainer(
            _run(
                store_path, tmp_path / "x", init_from=parent, finetune="lora", lora_targets=["mlp"]
            )
        )


def test_lora_takes_its_own_learning_rate_unless_one_is_set(store_path, parent, tmp_path):
    cfg = _run(store_path, tmp_path / "ft", init_from=parent, finetune="lora", lr=3e-4)
    assert inherit(cfg, RUN_KEYS_SET | {"finetune"}).cfg.lr == LORA_LR
    assert inherit(cfg, RUN_KEYS_SET | {"finetune", "lr"}).cfg.lr == 3e-4
    assert inherit(_run(store_path, tmp_path / "f", init_from=parent), RUN_KEYS_SET).cfg.lr == 3e-4
