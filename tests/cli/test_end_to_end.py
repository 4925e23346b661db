"""The whole user path through the console script: collect -> train -> resume -> rollout."""

from __future__ import annotations

import json

import pytest

from uio2_robot.cli import main
from uio2_robot.trajectories.store import EpisodeStore

pytestmark = pytest.mark.slow


def test_collect_train_resume_rollout(tmp_path, capsys):
    store = tmp_path / "demo.zarr"
    run = tmp_path / "run"
    assert (
        main(
            [
                "collect",
                "tasks=[visual_manipulation]",
                "levels=[L1]",
                "episodes=6",
                "workers=0",
                "image_size=64",
                f"out={store}",
                "progress=false",
            ]
        )
        == 0
    )
    with EpisodeStore.open(store) as s:
        assert s.n_episodes == 6
    common = [
        "train",
        f"stores=[{store}]",
        f"out={run}",
        "model=tiny",
        "+model_overrides.max_prompt_tokens=96",
        "+model_overrides.max_prompt_images=4",
        "batch_size=4",
        "val_fraction=0.0",
        "progress=false",
        "threads=1",
    ]
    assert main([*common, "steps=2"]) == 0
    assert main([*common, "steps=4"]) == 0  # resumes from checkpoints/last at step 2
    config = json.loads((run / "checkpoints" / "last" / "config.json").read_text())
    assert config["step"] == 4
    capsys.readouterr()
    out = tmp_path / "eval"
    assert (
        main(
            [
                "rollout",
                f"checkpoint={run}/checkpoints/policy",
                "tasks=[visual_manipulation]",
                "levels=[L1]",
                "episodes=2",
                "env.image_size=64",
                f"out={out}",
                "videos=1",
                "progress=false",
            ]
        )
        == 0
    )
    report = json.loads((out / "eval_info.json").read_text())
    cell = report["results"][0]
    assert (cell["task"], cell["level"], cell["episodes"]) == ("visual_manipulation", "L1", 2)
    assert 0 <= cell["successes"] <= 2
    assert (out / "success.png").is_file() and list((out / "videos").glob("*.mp4"))
    assert "visual_manipulation" in capsys.readouterr().out


def test_rollout_rejects_training_seeds(tmp_path, capsys):
    """Evaluating a checkpoint on the seeds it was trained on is refused."""
    store = tmp_path / "demo.zarr"
    run = tmp_path / "run"
    assert (
        main(
            [
                "collect",
                "tasks=[rotate]",
                "levels=[L1]",
                "episodes=2",
                "workers=0",
                "image_size=64",
                f"out={store}",
                "progress=false",
                "seed=0",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                f"stores=[{store}]",
                f"out={run}",
                "model=tiny",
                "+model_overrides.max_prompt_tokens=96",
                "steps=1",
                "batch_size=2",
                "val_fraction=0.0",
                "progress=false",
                "threads=1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    code = main(
        [
            "rollout",
            f"checkpoint={run}/checkpoints/policy",
            "tasks=[rotate]",
            "levels=[L1]",
            "episodes=2",
            "seed=0",
            "out=null",
            "progress=false",
        ]
    )
    assert code == 2
    assert "overlap the training seeds" in capsys.readouterr().err
