"""OnnxPolicy: the torch UIO2Policy's behaviour from a bundle alone, without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from uio2_robot.envs.spaces import action_space
from uio2_robot.export.bundle import export_bundle
from uio2_robot.export.parity import synthetic_episodes
from uio2_robot.export.random_checkpoint import make_random_checkpoint
from uio2_robot.policies.base import Policy
from uio2_robot.policies.factory import make_policy
from uio2_robot.policies.onnx_policy import OnnxPolicy


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny random checkpoint with 2-step action chunks, and its fp32 bundle."""
    root = tmp_path_factory.mktemp("onnx_policy")
    ckpt = make_random_checkpoint(root / "ckpt", "tiny", seed=1, action_horizon=2)
    export_bundle(ckpt, root / "bundle")
    return ckpt, root / "bundle"


@pytest.mark.parametrize(
    ("options", "mode"),
    [
        ({}, "primitive"),
        ({"execute_steps": 2}, "primitive"),
        ({"temporal_ensemble": True}, "primitive"),
        ({"temporal_ensemble": True}, "delta"),
    ],
)
def test_same_actions_as_torch_policy(exported, options: dict, mode: str) -> None:
    from uio2_robot.policies.uio2 import UIO2Policy

    ckpt, bundle = exported
    onnx_policy = OnnxPolicy(bundle, threads=1, **options)
    torch_policy = UIO2Policy.from_checkpoint(ckpt, **options)
    assert isinstance(onnx_policy, Policy)
    space = action_space(mode)
    for episode in synthetic_episodes(onnx_policy.processor, 2, steps=4, seed=2, action_mode=mode):
        onnx_policy.reset(episode.prompt, space)
        torch_policy.reset(episode.prompt, space)
        for obs in episode.observations:
            a_onnx, a_torch = onnx_policy.act(obs), torch_policy.act(obs)
            assert a_onnx.shape == space.shape and a_onnx.dtype == np.float32
            assert np.all(a_onnx >= space.low) and np.all(a_onnx <= space.high)
            np.testing.assert_array_equal(a_onnx, a_torch)
        np.testing.assert_array_equal(
            onnx_policy.act_chunk(obs), torch_policy.act_chunk(obs)
        )  # (H, D) chunk
        assert onnx_policy.act_chunk(obs).shape == (2, space.shape[0])


def test_contract_errors(exported) -> None:
    _, bundle = exported
    policy = OnnxPolicy(bundle, threads=1)
    episode = synthetic_episodes(policy.processor, 1, steps=1, seed=0)[0]
    with pytest.raises(RuntimeError, match="before reset"):
        policy.act(episode.observations[0])
    from gymnasium import spaces

    with pytest.raises(ValueError, match=r"action space of shape \(3,\) matches none"):
        policy.reset(episode.prompt, spaces.Box(-1, 1, (3,), np.float32))
    policy.reset(episode.prompt, action_space("primitive"))
    obs = dict(episode.observations[0])
    with pytest.raises(ValueError, match="no camera image 'top'"):
        policy.act({k: v for k, v in obs.items() if k != "top"})
    with pytest.raises(ValueError, match="must have dtype uint8"):
        policy.act({**obs, "front": obs["front"].astype(np.float32)})
    with pytest.raises(ValueError, match=r"must be a \(6,\) numeric array"):
        policy.act({**obs, "proprio": np.zeros(5)})


def test_factory_builds_it(exported) -> None:
    _, bundle = exported
    policy = make_policy("onnx", bundle=str(bundle), threads=1, providers=["cpu"])
    assert isinstance(policy, OnnxPolicy)
    assert policy.providers == ["CPUExecutionProvider"]
    assert policy.runner.encoder.get_session_options().intra_op_num_threads == 1


NO_TORCH_SCRIPT = """
import json, sys
import numpy as np
from uio2_robot.envs.spaces import action_space
from uio2_robot.policies.onnx_policy import OnnxPolicy

policy = OnnxPolicy(sys.argv[1], threads=1)
rng = np.random.default_rng(0)
prompt = ["put ", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8), " in "]
policy.reset(prompt, action_space("primitive"))
actions = []
for _ in range(4):
    obs = {k: rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for k in ("front", "top")}
    obs["proprio"] = rng.normal(size=6).astype(np.float32)
    actions.append(policy.act(obs).tolist())
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(json.dumps({"actions": actions, "torch_modules": loaded}))
"""


def test_runtime_never_imports_torch(exported) -> None:
    _, bundle = exported
    out = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch_modules"] == []
    assert len(result["actions"]) == 4 and all(len(a) == 6 for a in result["actions"])
