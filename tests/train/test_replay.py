"""Rehearsal: replay_from mixes older stores into a fine-tune with a fixed share of the batches."""

from __future__ import annotations

import json

import pytest

from uio2_robot.train.config import TrainConfig
from uio2_robot.train.loop import Trainer
from uio2_robot.train.replay import replay_mixture, replay_stores


def test_mixture_gives_replay_its_share_and_keeps_the_runs_own_proportions():
    stores, weights = replay_mixture(["a", "b"], None, [300, 100], ["r1", "r2"], [50, 150], 0.2)
    assert stores == ["a", "b", "r1", "r2"]
    assert weights == pytest.approx([0.6, 0.2, 0.05, 0.15])
    _, weights = replay_mixture(["a", "b"], [1.0, 1.0], [300, 100], ["r"], [7], 0.5)
    assert weights == pytest.approx([0.25, 0.25, 0.5])


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1])
def test_mixture_rejects_a_share_outside_0_1(share):
    with pytest.raises(ValueError, match="replay_share"):
        replay_mixture(["a"], None, [10], ["r"], [10], share)


def test_parent_expands_to_the_parents_recorded_stores_and_missing_ones_are_named(tmp_path):
    real = tmp_path / "old.zarr"
    real.mkdir()
    assert replay_stores(["parent"], {"train": {"stores": [str(real)]}}) == [str(real)]
    with pytest.raises(ValueError, match="needs init_from"):
        replay_stores(["parent"], None)
    with pytest.raises(ValueError, match="no store at"):
        replay_stores(["parent"], {"train": {"stores": ["/elsewhere/oracle.zarr"]}})


def test_fine_tune_with_replay_trains_on_both_and_records_them(store_path, make_store, tmp_path):
    """A parent trained on one store; its fine-tune on a new task replays the parent's store."""
    base = dict(model="tiny", steps=2, batch_size=4, warmup_steps=1, val_fraction=0.0)
    base |= dict(progress=False, threads=1)
    Trainer(TrainConfig(stores=[store_path], out=str(tmp_path / "p"), **base)).train()
    new = make_store(range(100, 112), "newtask")
    ft = TrainConfig(
        stores=[new],
        out=str(tmp_path / "ft"),
        init_from=str(tmp_path / "p/checkpoints/policy"),
        replay_from=["parent"],
        replay_share=0.25,
        **base,
    )
    trainer = Trainer(ft, explicit={"stores", "out", "init_from", "replay_from", "replay_share"})
    assert trainer.cfg.stores == [new, store_path]
    assert trainer.cfg.weights == pytest.approx([0.75, 0.25])
    assert trainer.train_set.weights == pytest.approx([0.75, 0.25])
    trainer.train()
    config = json.loads((tmp_path / "ft/checkpoints/policy/config.json").read_text())
    assert config["train"]["stores"] == [new, store_path]
    # the replayed episodes are training seeds too: evaluation must refuse them
    assert {"newtask/L1", "synthetic/L1"} <= set(config["train_seeds"])
    with pytest.raises(ValueError, match="already in stores"):
        Trainer(TrainConfig(**{**vars(ft), "replay_from": [new]}))
