"""Any gymnasium env end to end, on one gymnasium itself ships (InvertedPendulum-v5, MuJoCo):
record a heuristic controller with rendered frames, train a tiny policy from scratch on the
store (cameras, proprio and action space read from its schema), and evaluate the checkpoint in
closed loop with ``uio2-robot rollout env=gym:ID``. Asserts the path and its outputs, not a
success rate."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from uio2_robot.cli import main
from uio2_robot.tokenize.processor import Processor
from uio2_robot.trajectories import EpisodeStore, record_episodes

ENV_ID = "InvertedPendulum-v5"
SIZE = {"width": 32, "height": 32}


def balance(obs: np.ndarray, info: dict) -> list[float]:
    """A PD controller on cart and pole; it pushes past the [-3, 3] force bounds when the pole
    leans, so the recording holds actions the bins must clip (and train must say so)."""
    return [float(0.5 * obs[0] + 30.0 * obs[1] + 0.5 * obs[2] + 4.0 * obs[3])]


def test_record_train_and_rollout_a_gymnasium_env(tmp_path: Path, capsys) -> None:
    store_path = tmp_path / "pendulum.zarr"
    env = gym.make(ENV_ID, render_mode="rgb_array", max_episode_steps=12, **SIZE)
    try:
        summary = record_episodes(env, balance, 4, store_path, task="balance", render=True)
    finally:
        env.close()
    assert summary["stored"] == 4 and summary["frames"] == 48
    store = EpisodeStore.open(store_path)
    assert store.schema.keys["render"].shape == (32, 32, 3)
    assert store.schema.keys["obs"].shape == (4,) and store.schema.action_low == (-3.0,)
    clipped = int((np.abs(store.read_key("action")) > 3.0).sum())
    assert clipped > 0, "the heuristic should exceed the bounds somewhere"

    run = tmp_path / "run"
    with pytest.warns(UserWarning, match=rf"{clipped}/48 frames .* a0 {clipped}/48"):
        rc = main(
            [
                "train",
                f"stores=[{store_path}]",
                f"out={run}",
                "model=tiny",
                "steps=3",
                "batch_size=4",
                "n_bins=64",
                "val_fraction=0",
                "warmup_steps=1",
                "save_every=3",
                "log_every=1",
                "progress=false",
                "mixture.r_image=0",
            ]
        )
    assert rc == 0
    processor = Processor.load(run / "checkpoints" / "policy" / "processor.json")
    assert processor.camera_keys == ("render",) and processor.proprio_key == "obs"
    assert processor.proprio_dim == 4 and processor.action_modes == ("gym",)
    tok = processor.action_tokenizer("gym")
    assert tok.names == ("a0",) and (tok.low[0], tok.high[0]) == (-3.0, 3.0)
    config = json.loads((run / "checkpoints" / "policy" / "config.json").read_text())
    assert config["model"]["proprio_dim"] == 4 and config["model"]["n_views"] == 1
    assert config["train_seeds"] == {"balance/": [0, 1, 2, 3]}
    capsys.readouterr()

    out = tmp_path / "eval"
    rc = main(
        [
            "rollout",
            f"env=gym:{ENV_ID}",
            f"checkpoint={run}/checkpoints/policy",
            "tasks=[balance]",
            "episodes=2",
            "env.max_episode_steps=6",
            "env.kwargs={width: 32, height: 32}",
            f"out={out}",
            "videos=1",
            "progress=false",
        ]
    )
    assert rc == 0
    table = capsys.readouterr().out
    assert "balance" in table
    report = json.loads((out / "eval_info.json").read_text())
    assert report["policy"] == "uio2" and report["action_mode"] == "gym"
    (cell,) = report["results"]
    assert cell["task"] == "balance" and cell["episodes"] == 2
    assert 0.0 <= cell["ci95_low"] <= cell["success_rate"] <= cell["ci95_high"] <= 1.0
    assert [e["task"] for e in report["episodes"]] == ["balance", "balance"]
    assert all(1 <= e["steps"] <= 6 for e in report["episodes"])
    assert len(list((out / "videos").glob("*.mp4"))) == 1


def test_rollout_gym_errors_name_what_was_expected(tmp_path: Path, capsys) -> None:
    assert main(["rollout", "env=gym:NoSuchEnv-v0", "policy=random", "out=null"]) == 2
    assert "NoSuchEnv" in capsys.readouterr().err
    assert main(["rollout", "env=gym:", "policy=random"]) == 2
    assert "needs a registered gymnasium env id" in capsys.readouterr().err
    args = ["rollout", f"env=gym:{ENV_ID}", "policy=random", "tasks=[a,b]"]
    assert main(args) == 2
    assert "at most one task name" in capsys.readouterr().err
