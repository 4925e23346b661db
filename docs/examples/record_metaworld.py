"""Record a Meta-World task with its own scripted policy into a uio2-robot store.

    python docs/examples/record_metaworld.py reach-v3 50 data/mw_reach.zarr [STEPS=80] [ENV_SEED=0]

Meta-World (``pip install metaworld``) registers ``Meta-World/MT1``; each reset picks the goal
from MT1's 50 goal variations, drawn from the ``seed`` the env is made with (the reset seed
does not choose it), so held-out evaluation makes the env with another seed
(docs/gym_envs.md). Frames are rendered at 64 x 64 and stored under "render", the 39-d state
under "obs"; success is Meta-World's ``info["success"]`` at the last step.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import metaworld  # noqa: F401  (registers Meta-World/MT1)
from metaworld.policies import ENV_POLICY_MAP

from uio2_robot.trajectories import record_episodes


def main(task: str, episodes: int, store: str, steps: int = 80, env_seed: int = 0) -> dict:
    env = gym.make(
        "Meta-World/MT1",
        env_name=task,
        seed=env_seed,
        render_mode="rgb_array",
        width=64,
        height=64,
        max_episode_steps=steps,
    )
    expert = ENV_POLICY_MAP[task]()
    try:
        return record_episodes(
            env,
            lambda obs, info: expert.get_action(obs),
            episodes,
            store,
            task=task,  # every MT1 task shares the env id Meta-World/MT1
            render=True,
            progress=True,
        )
    finally:
        env.close()


if __name__ == "__main__":
    task, episodes, store, *rest = sys.argv[1:]
    print(json.dumps(main(task, int(episodes), store, *map(int, rest)), indent=2))
