"""Collect demonstrations from the suite with a policy, in parallel worker processes.

Workers (spawn-context processes) each build their own env and policy and return complete
episodes; the calling process is the ONE writer, so there is never a concurrent write. It
appends them in batches (``FLUSH_EPISODES``; one write per chunk), flushed before it returns or
raises, so an interrupted run keeps every finished episode.

Determinism: the seed of episode i of (task, level) is derived from (seed, task, level, i) only,
and episodes are appended in job order (task, then level, then i), whatever the worker count:
the same arguments give the same store content in the same order. Action modes share seeds, so
the same scene can be collected in both modes.

Resume: episodes whose (task, level, action_mode, seed) is already stored are skipped, so
re-running an interrupted call completes it. With ``only_success`` the failed seeds are not
stored, so a resumed run retries them (with the same, deterministic, outcome).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import random
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from uio2_robot.trajectories.episode import Episode
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.schema import StoreSchema
from uio2_robot.trajectories.store import EpisodeStore

# Finished episodes are written in batches: one append per episode re-compresses the store's
# partly filled last chunk every time and capped collection at ~30 episodes/s whatever the
# worker count (measured on a 16-core machine). A batch is written when it holds this many
# episodes or this many seconds have passed, and always before collect returns or raises.
FLUSH_EPISODES = 32
FLUSH_S = 5.0

EnvFactory = Callable[..., Any]  # (task, level, action_mode=, image_size=) -> gymnasium.Env
PolicyFactory = Callable[..., Any]  # (name, **kwargs) -> Policy


def warn_if_base_overlaps(seed: int, episodes: int) -> None:
    """Warn when ``seed`` shares episodes with a nearby base. Seeds are ``base + offset(task,
    level) + index``, so base 21's episode i is base 0's episode i + 21: a new base gives new
    layouts only ``MAX_EPISODES_PER_PAIR`` (100,000) or more away from every base used before.
    (Sessions 6-7 collected "new" data with bases 7, 13 and 21 and got base 0's layouts again.)"""
    from uio2_robot.seeding import MAX_EPISODES_PER_PAIR

    step = MAX_EPISODES_PER_PAIR
    if seed % step:
        nearest = seed - seed % step
        warnings.warn(
            f"collection seed base {seed} is not a multiple of {step}: its episodes 0..{episodes - 1} "
            f"are episodes {seed % step}..{seed % step + episodes - 1} of base {nearest}. For new "
            f"layouts use a multiple of {step} that no earlier collection used (e.g. "
            f"seed={nearest + step}).",
            RuntimeWarning,
            stacklevel=3,
        )


def episode_seed(seed: int, task: str, level: str, index: int) -> int:
    """The env seed of episode ``index`` of (task, level): `uio2_robot.seeding.episode_seed`,
    the one derivation rollouts use too, so the trainer can prove evaluation never reuses a
    training episode. Collection bases must stay below the evaluation range."""
    from uio2_robot.seeding import EVAL_SEED_BASE, SEED_SPAN
    from uio2_robot.seeding import episode_seed as derive

    if seed > EVAL_SEED_BASE - SEED_SPAN:
        raise StoreError(
            f"collection seed base {seed} reaches into the evaluation range (bases >= "
            f"{EVAL_SEED_BASE}); use a base <= {EVAL_SEED_BASE - SEED_SPAN}"
        )
    try:
        return derive(seed, task, level, index)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


@dataclass(frozen=True)
class Job:
    task: str
    level: str
    index: int
    seed: int


@dataclass
class JobResult:
    job: Job
    episode: Episode | None
    action_space: tuple[tuple[str, ...], np.ndarray, np.ndarray] | None
    error: str | None


def collect(
    tasks: Sequence[str],
    levels: Sequence[str],
    episodes: int,
    workers: int,
    out: str | os.PathLike[str],
    seed: int = 0,
    policy: str = "oracle",
    action_mode: str = "primitive",
    only_success: bool = False,
    image_size: int = 128,
    progress: bool = True,
    *,
    max_steps: int | None = None,
    levels_by_task: Mapping[str, Sequence[str]] | None = None,
    policy_kwargs: dict[str, Any] | None = None,
    make_env_fn: EnvFactory | None = None,
    make_policy_fn: PolicyFactory,
) -> dict[str, Any]:
    """Run ``policy`` on ``episodes`` seeds of every (task, level) and append them to ``out``.

    ``workers=0`` runs in this process (debugging); ``workers>=1`` starts that many spawn-context
    processes. ``make_env_fn`` defaults to ``uio2_robot.envs.make_env``; ``make_policy_fn`` builds
    the policy by name (the CLI passes ``uio2_robot.policies.factory.make_policy``: the store
    layer never imports policies, which may themselves read stores). Both must be importable
    top-level callables (they are sent to the workers by reference).

    ``levels_by_task`` narrows ``levels`` per task, for suites where not every task has every
    level (the CLI passes `uio2_robot.envs.levels.resolve_levels`'s answer: VIMA's
    sweep_without_exceeding has no L3); a task not in it runs every level in ``levels``.

    Returns a summary: attempted, stored, skipped (already stored), discarded (failures with
    ``only_success``), errors (task, level, seed, message), success_rate, per_task, frames, seconds;
    and the policy that acted.
    """
    if not tasks or not levels:
        raise StoreError(f"tasks={list(tasks)} and levels={list(levels)} must both be non-empty")
    if episodes < 0 or workers < 0:
        raise StoreError(f"episodes={episodes} and workers={workers} must be >= 0")
    warn_if_base_overlaps(seed, episodes)
    os.environ.setdefault("MUJOCO_GL", "egl")  # inherited by the workers before mujoco loads
    t0 = time.perf_counter()

    store: EpisodeStore | None = None
    if os.path.exists(os.path.join(out, "zarr.json")):
        store = EpisodeStore.open(out, mode="a")  # resume; holds the single-writer lock
    elif os.path.isdir(out) and os.listdir(out):
        raise StoreError(
            f"{out} exists and is not a trajectory store; expected a new or store path"
        )
    done: set[tuple[str, str, str, int]] = set()
    if store is not None:
        done = {(m["task"], m["level"], m["action_mode"], m["seed"]) for m in store.all_meta()}
    jobs, skipped = [], 0
    for task in tasks:
        for level in (levels_by_task or {}).get(task, levels):
            for i in range(episodes):
                job = Job(task, level, i, episode_seed(seed, task, level, i))
                if (task, level, action_mode, job.seed) in done:
                    skipped += 1
                else:
                    jobs.append(job)

    init_args = (
        make_env_fn,
        make_policy_fn,
        policy,
        policy_kwargs or {},
        action_mode,
        image_size,
        max_steps,
    )
    per_task: dict[str, dict[str, int]] = {}
    errors: list[dict[str, Any]] = []
    stored = discarded = successes = frames = 0
    pending: list[tuple[Job, Episode]] = []  # finished episodes not yet in the store
    first_space: Any = None  # (names, low, high) of the env's action space, for a new store
    last_flush = time.perf_counter()

    def flush() -> None:
        """Write the pending episodes in one transaction (one compression of each chunk)."""
        nonlocal store, stored, frames, last_flush
        last_flush = time.perf_counter()
        if not pending:
            return
        if store is None:
            names, low, high = first_space
            store = EpisodeStore.open_or_create(
                out, StoreSchema.from_episode(pending[0][1], names, low, high)
            )
        batch = list(pending)
        pending.clear()
        try:
            store.append_episodes([ep for _, ep in batch])
        except StoreError:  # find the culprit; the episodes before it are kept
            for job, ep in batch:
                try:
                    store.append_episode(ep)
                except StoreError as e:
                    raise StoreError(
                        f"cannot append {job.task}/{job.level} seed {job.seed} to {out}: {e}"
                    ) from e
                stored, frames = stored + 1, frames + ep.length
            return
        stored += len(batch)
        frames += sum(ep.length for _, ep in batch)

    from tqdm.auto import tqdm  # the `sim` extra: importing this module needs only numpy + zarr

    bar = tqdm(total=len(jobs), desc=f"collect {policy}", disable=not progress)
    try:
        for res in _results(jobs, workers, init_args):
            bar.update(1)
            job = res.job
            tally = per_task.setdefault(f"{job.task}/{job.level}", {"attempted": 0, "successes": 0})
            tally["attempted"] += 1
            if res.error is not None or res.episode is None:
                errors.append(
                    {"task": job.task, "level": job.level, "seed": job.seed, "error": res.error}
                )
                continue
            ep = res.episode
            successes += ep.success
            tally["successes"] += int(ep.success)
            if only_success and not ep.success:
                discarded += 1
            else:
                first_space = first_space or res.action_space
                pending.append((job, ep))
                if len(pending) >= FLUSH_EPISODES or time.perf_counter() - last_flush > FLUSH_S:
                    flush()
            ran = stored + len(pending) + discarded
            bar.set_postfix(success=f"{successes}/{ran}", errors=len(errors))
        flush()
        if store is not None and stored:
            store.stats()  # recompute and cache the normalisation statistics
    finally:
        bar.close()
        try:
            flush()  # an interrupted run keeps every episode that finished
        finally:
            if store is not None:
                store.close()
    if errors:
        warnings.warn(
            f"collect: {len(errors)} of {len(jobs)} episodes raised; first: {errors[0]}",
            RuntimeWarning,
            stacklevel=2,
        )
    ran = stored + discarded
    seconds = time.perf_counter() - t0
    return {
        "store": str(out),
        "policy": policy,
        "attempted": len(jobs),
        "stored": stored,
        "skipped": skipped,
        "discarded": discarded,
        "errors": errors,
        "success_rate": successes / ran if ran else float("nan"),
        "per_task": per_task,
        "frames": frames,
        "seconds": seconds,
        "episodes_per_s": len(jobs) / seconds if seconds > 0 else float("nan"),
    }


def _results(jobs: list[Job], workers: int, init_args: tuple[Any, ...]) -> Iterator[JobResult]:
    """Results in job order. At most ``4 * workers`` jobs are in flight, so finished episodes
    waiting for a slow earlier one cannot pile up in memory."""
    if not jobs:
        return
    if workers == 0:
        _init_worker(*init_args)
        try:
            for job in jobs:
                yield _checked(_run_job(job))
        finally:
            _close_worker()
        return
    # ProcessPoolExecutor, not multiprocessing.Pool: a worker that dies while starting (import
    # error, bad main module) raises BrokenProcessPool instead of being respawned forever.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=init_args,
    ) as pool:
        pending: deque[Future[JobResult]] = deque()
        todo = iter(jobs)
        try:
            for job in itertools.islice(todo, 4 * workers):
                pending.append(pool.submit(_run_job, job))
            while pending:
                result = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(_run_job, nxt))
                yield _checked(result)
        except BrokenProcessPool as e:
            raise RuntimeError(
                "collect: a worker process died (it could not start, or crashed in native "
                "code); run with workers=0 to see the error in this process"
            ) from e
        finally:
            for fut in pending:
                fut.cancel()


def _checked(result: JobResult) -> JobResult:
    """A worker that could not build its policy fails every job the same way: stop at once."""
    if result.error is not None and result.error.startswith(SETUP_ERROR):
        raise StoreError(f"collect: {result.error}")
    return result


# ---------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


SETUP_ERROR = "worker setup failed"


def _init_worker(
    make_env_fn: EnvFactory | None,
    make_policy_fn: PolicyFactory,
    policy: str,
    policy_kwargs: dict[str, Any],
    action_mode: str,
    image_size: int,
    max_steps: int | None,
) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    _WORKER.clear()
    try:
        if make_env_fn is None:
            from uio2_robot.envs import make_env as make_env_fn
        policy_obj = make_policy_fn(policy, **policy_kwargs)
    except Exception as e:  # reported by every job: an initializer that raises breaks the pool
        _WORKER["setup_error"] = f"{SETUP_ERROR}: {type(e).__name__}: {e}"
        return
    _WORKER.update(
        make_env=make_env_fn,
        policy=policy_obj,
        policy_name=policy,
        action_mode=action_mode,
        image_size=image_size,
        max_steps=max_steps,
        env_key=None,
        env=None,
    )
    if "torch" in sys.modules:  # a learned policy: one thread per worker, the workers are parallel
        sys.modules["torch"].set_num_threads(1)


def _close_worker() -> None:
    if _WORKER.get("env") is not None:
        _WORKER["env"].close()
    _WORKER.clear()


def _env_for(task: str, level: str) -> Any:
    """Keep one env per worker; jobs arrive grouped by (task, level), so rebuilds are rare."""
    if _WORKER["env_key"] != (task, level):
        if _WORKER["env"] is not None:
            _WORKER["env"].close()
        _WORKER["env"] = _WORKER["make_env"](
            task, level, action_mode=_WORKER["action_mode"], image_size=_WORKER["image_size"]
        )
        _WORKER["env_key"] = (task, level)
    return _WORKER["env"]


def _seed_global_rngs(seed: int) -> None:
    # Stochastic policies draw from global RNGs; reseeding per episode keeps results independent
    # of which worker ran which episode before.
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def _run_job(job: Job) -> JobResult:
    from uio2_robot.trajectories.rollout import record_episode  # gymnasium: the `sim` extra

    if "setup_error" in _WORKER:
        return JobResult(job, None, None, _WORKER["setup_error"])
    try:
        env = _env_for(job.task, job.level)
        pol = _WORKER["policy"]
        _seed_global_rngs(job.seed)
        mode = _WORKER["action_mode"]
        meta = {
            "task": job.task,
            "level": job.level,
            "action_mode": mode,
            "control_hz": getattr(env.unwrapped, "control_hz", None),
            "policy": _WORKER["policy_name"],
            "index": job.index,
        }
        episode = record_episode(
            env,
            lambda obs, info: pol.act(obs),
            seed=job.seed,
            meta=meta,
            on_reset=lambda obs, info: pol.reset(
                list(info.get("prompt", [])), env.action_space, env=env.unwrapped
            ),
            max_steps=_WORKER["max_steps"],
        )
        return JobResult(job, episode, _bounds(env, mode), None)
    except Exception as e:  # reported per episode; one broken seed must not stop a long run
        return JobResult(job, None, None, f"{type(e).__name__}: {e}")


def _bounds(env: Any, mode: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    from uio2_robot.trajectories.record import action_space_bounds  # gymnasium: the `sim` extra

    try:
        from uio2_robot.envs.spaces import action_names

        names: tuple[str, ...] | None = action_names(mode)
    except (ImportError, ValueError):
        names = None
    n = int(np.prod(env.action_space.shape)) if env.action_space.shape else 1
    if names is not None and len(names) != n:
        names = None
    return action_space_bounds(env.action_space, names)
