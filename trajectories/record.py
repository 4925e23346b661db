"""Bring your own environment: record any gymnasium env with any expert into a store.

Example::

    import gymnasium as gym
    from uio2_robot.trajectories import record_episodes

    env = gym.make("Pendulum-v1")
    expert = lambda obs, info: [-2.0 * obs[2]]          # (obs, info) -> action
    summary = record_episodes(env, expert, n_episodes=10, store_path="pendulum.zarr")

Dict observations keep their keys (camera arrays (H, W, 3) uint8 become image keys); an array
observation is stored under "obs". The prompt is ``info["prompt"]`` at reset if the env gives
one. Success is ``info["is_success"]`` or ``info["success"]`` (Meta-World's), whichever the env
reports (``success_key=`` picks one). Seeds already stored for the same task are
skipped, so an interrupted run is resumed by running the same call again; name each task
(``task=``) when several tasks share one env id (Meta-World's ``Meta-World/MT1``), or the second
task's seeds read as already recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from tqdm.auto import tqdm

from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.rollout import SuccessFn, record_episode, success_rule
from uio2_robot.trajectories.schema import StoreSchema
from uio2_robot.trajectories.store import EpisodeStore

Expert = Callable[[Any, dict[str, Any]], Any]


def action_space_bounds(
    space: gym.Space, names: Sequence[str] | None = None
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(names, low, high) of a Box or Discrete action space, flattened to one entry per dim."""
    if isinstance(space, spaces.Box):
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        default = tuple(f"a{i}" for i in range(low.size))
    elif isinstance(space, spaces.Discrete):
        low = np.array([space.start], dtype=np.float64)
        high = np.array([space.start + space.n - 1], dtype=np.float64)
        default = ("action",)
    else:
        raise StoreError(
            f"action space {space} is not supported; expected a Box or a Discrete space"
        )
    names = tuple(names) if names is not None else default
    if len(names) != low.size:
        raise StoreError(f"{len(names)} action names given, expected {low.size}")
    return names, low, high


def record_episodes(
    env: gym.Env,
    expert: Expert,
    n_episodes: int,
    store_path: str | os.PathLike[str],
    seeds: Sequence[int] | None = None,
    meta: Mapping[str, Any] | None = None,
    *,
    task: str | None = None,
    success_key: str | None = None,
    action_names: Sequence[str] | None = None,
    max_steps: int | None = None,
    render: bool = False,
    only_success: bool = False,
    success_fn: SuccessFn | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Roll out ``expert(obs, info) -> action`` on ``env`` for ``n_episodes`` seeds and append
    each complete episode to the store at ``store_path`` (created on first use).

    ``seeds`` defaults to ``range(n_episodes)``; ``meta`` (level, action_mode, control_hz, and
    anything else, kept in ``Episode.extra``) is attached to every episode. ``task`` names the
    recording (else ``meta["task"]``, else the env's registered id). Success is the last step's
    ``info[success_key]``, or with no key whichever of ``is_success`` / ``success`` the env
    reports (`uio2_robot.trajectories.rollout.info_success`, the rule evaluation uses too),
    unless ``success_fn(info, terminated, truncated)`` is given.

    Returns ``{"stored", "skipped", "discarded", "success_rate", "frames", "store"}``.
    """
    if n_episodes < 0:
        raise StoreError(f"n_episodes is {n_episodes}, expected >= 0")
    seeds = list(range(n_episodes)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != n_episodes:
        raise StoreError(
            f"{len(seeds)} seeds given for n_episodes={n_episodes}; expected one per episode"
        )
    meta = dict(meta or {})
    if task is not None:
        meta["task"] = str(task)
    elif "task" not in meta:
        meta["task"] = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    if success_fn is not None and success_key is not None:
        raise StoreError("give success_key or success_fn, not both")
    success = success_fn if success_fn is not None else success_rule(success_key)
    names, low, high = action_space_bounds(env.action_space, action_names)

    store: EpisodeStore | None = None
    done: set[int] = set()
    if os.path.exists(os.path.join(store_path, "zarr.json")):
        store = EpisodeStore.open(store_path, mode="a")
        done = {
            m["seed"]
            for m in store.all_meta()
            if m["task"] == meta["task"] and m["seed"] is not None
        }
    stored = skipped = discarded = successes = frames = 0
    try:
        for seed in tqdm(seeds, desc="record", disable=not progress):
            if seed in done:
                skipped += 1
                continue
            episode = record_episode(
                env,
                expert,
                seed=seed,
                meta=meta,
                max_steps=max_steps,
                render=render,
                success_fn=success,
            )
            successes += episode.success
            if only_success and not episode.success:
                discarded += 1
                continue
            if store is None:
                schema = StoreSchema.from_episode(episode, names, low, high)
                store = EpisodeStore.open_or_create(store_path, schema)
            store.append_episode(episode)
            done.add(seed)
            stored += 1
            frames += episode.length
        if store is not None and stored:
            store.stats()  # cache the normalisation statistics with the data
    finally:
        if store is not None:
            store.close()
    ran = stored + discarded
    return {
        "store": str(store_path),
        "stored": stored,
        "skipped": skipped,
        "discarded": discarded,
        "success_rate": successes / ran if ran else float("nan"),
        "frames": frames,
    }
