"""The shipped default policy: what `uio2-robot rollout` runs with no arguments."""

from __future__ import annotations

import numpy as np

from uio2_robot.envs import make_env
from uio2_robot.envs.spaces import PRIMITIVE_HIGH, PRIMITIVE_LOW
from uio2_robot.policies.factory import DEFAULT_POLICY_DIR, make_policy
from uio2_robot.seeding import EVAL_SEED_BASE


def test_shipped_policy_loads_and_acts_in_bounds_with_its_workspace_crop() -> None:
    assert (DEFAULT_POLICY_DIR / "model.safetensors").stat().st_size < 40 * 2**20
    policy = make_policy("default", threads=1)
    processor = policy.processor
    assert processor.camera_keys == ("top",) and "top" in processor.crops
    env = make_env("visual_manipulation", "L1", image_size=128)
    obs, info = env.reset(seed=EVAL_SEED_BASE + 7)
    policy.reset(info["prompt"], env.action_space)
    first = policy.act(obs)
    assert (
        first.shape == (6,) and np.all(first >= PRIMITIVE_LOW) and np.all(first <= PRIMITIVE_HIGH)
    )
    # greedy decoding is deterministic: the same observation gives the same action
    policy.reset(info["prompt"], env.action_space)
    np.testing.assert_array_equal(policy.act(obs), first)
    env.close()


def test_shipped_policy_reads_its_place_from_the_goal_scene() -> None:
    """The shipped config recommends scene-guided placement; on a rearrange step the guided
    action keeps the pick and puts the place in (or beside) the goal-scene patch the picked
    patch matches best. guide_place=false turns it off."""
    import torch

    from uio2_robot.train.batching import encoder_inputs_from_numpy

    guided = make_policy("default")
    plain = make_policy("default", guide_place=False)
    assert guided.guide_place is True and plain.guide_place is False
    env = make_env("rearrange", "L1", image_size=128, cameras=("front", "top"))
    obs, info = env.reset(seed=EVAL_SEED_BASE + 3)
    for policy in (guided, plain):
        policy.reset(info["prompt"], env.action_space)
    action, unguided = guided.act(obs), plain.act(obs)
    np.testing.assert_allclose(action[:3], unguided[:3])
    processor, model = guided.processor, guided.model
    grid = model.cfg.grid_hw
    pick, place = processor.point_targets(action, "primitive", grid)
    inputs = encoder_inputs_from_numpy(guided.encoder_arrays(obs), guided.device)
    with torch.no_grad():
        scores = model.scene_point_logits(model.encode(inputs), torch.tensor([int(pick)]))[0]
    goal = int(scores.argmax())
    cols = grid[1]
    assert abs(place // cols - goal // cols) <= 1 and abs(place % cols - goal % cols) <= 1
    env.close()
