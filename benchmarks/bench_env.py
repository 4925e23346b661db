"""Rendered env steps per second of the tabletop suite, split into physics and rendering.

Measures, in one process and with the same seeds:
- delta mode (one control period per step) and primitive mode (one whole pick-and-place per step),
  both views rendered at ``--size``;
- the same env with rendering skipped (physics + task checks only) to split the cost;
- delta mode on the UR5e arm twin (``embodiment="arm"``), the same oracle's actions;
- a gymnasium SyncVectorEnv and AsyncVectorEnv of ``--num-envs`` delta-mode envs (random actions).

Ratios are printed against a baseline measured in this same run (the machine is shared and noisy;
absolute numbers drift, ratios much less): the oracle-driven rows against single-env delta mode,
the vector rows against one env stepping the same random delta actions.

    MUJOCO_GL=egl python benchmarks/bench_env.py --size 128 --steps 600
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402

from uio2_robot.envs import Oracle, make_env, make_vector_env  # noqa: E402


def _oracle_actions(
    task: str, mode: str, size: int, n: int, seed: int, embodiment: str = "floating"
) -> list[tuple[int, np.ndarray]]:
    """(episode seed, action) pairs an oracle takes for ``n`` steps: replayed identically below."""
    env = make_env(task, "L1", mode, image_size=size, embodiment=embodiment)
    out: list[tuple[int, np.ndarray]] = []
    s = seed
    obs, _ = env.reset(seed=s)
    oracle = Oracle()
    oracle.reset(env)
    while len(out) < n:
        a = oracle.act(obs)
        out.append((s, a))
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            s += 1
            obs, _ = env.reset(seed=s)
            oracle.reset(env)
    env.close()
    return out


def _replay(env, plan: list[tuple[int, np.ndarray]], render: bool) -> tuple[float, float]:
    """Seconds spent in step() (and in rendering inside it) replaying ``plan``; resets excluded."""
    u = env.unwrapped
    current = None
    t_step = t_render = 0.0
    done = True
    for s, a in plan:
        if s != current or done:
            env.reset(seed=s)
            current = s
        if render:
            t0 = time.perf_counter()
            _, _, term, trunc, _ = env.step(a)
            t_step += time.perf_counter() - t0
            t1 = time.perf_counter()
            u.views.observe()  # a second render, timed alone, to split the cost
            t_render += time.perf_counter() - t1
        else:
            real = u.views.observe
            u.views.observe = lambda: {}  # physics + checks only
            try:
                t0 = time.perf_counter()
                _, _, term, trunc, _ = env.step(a)
                t_step += time.perf_counter() - t0
            finally:
                u.views.observe = real
        done = term or trunc
    return t_step, t_render


def bench_single(
    task: str, mode: str, size: int, steps: int, embodiment: str = "floating"
) -> dict[str, float]:
    """Steps/s with rendering, without, and the render share of a step."""
    plan = _oracle_actions(task, mode, size, steps, seed=0, embodiment=embodiment)
    env = make_env(task, "L1", mode, image_size=size, embodiment=embodiment)
    env.reset(seed=0)
    env.step(plan[0][1])  # warm the renderer
    t_full, t_render = _replay(env, plan, render=True)
    t_phys, _ = _replay(env, plan, render=False)
    env.close()
    return {
        "steps_per_s": len(plan) / t_full,
        "physics_only_steps_per_s": len(plan) / t_phys,
        "render_ms": 1000 * t_render / len(plan),
        "physics_ms": 1000 * t_phys / len(plan),
    }


def _random_actions(space_low, space_high, steps: int, num_envs: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (steps, num_envs, len(space_low))
    return rng.uniform(space_low * 0.5, space_high * 0.5, size=shape).astype(np.float32)


def bench_random(kind: str, task: str, size: int, steps: int, num_envs: int) -> float:
    """Env steps/s (summed over sub-envs) under the same random delta actions.

    ``kind`` is "single" (one env, the baseline of this comparison), "sync" or "async". Vector
    envs are built with ``make_vector_env``: this process has rendered already, and a plain forked
    AsyncVectorEnv worker cannot render after that (EGL does not survive fork).
    """
    if kind == "single":
        env = make_env(task, "L1", "delta", image_size=size)
        env.reset(seed=0)
        acts = _random_actions(env.action_space.low, env.action_space.high, steps, 1)[:, 0]
        t0 = time.perf_counter()
        for a in acts:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        dt = time.perf_counter() - t0
        env.close()
        return steps / dt
    venv = make_vector_env(
        task,
        num_envs,
        asynchronous=kind == "async",
        level="L1",
        action_mode="delta",
        image_size=size,
    )
    venv.reset(seed=0)
    space = venv.single_action_space
    acts = _random_actions(space.low, space.high, steps, num_envs)
    venv.step(acts[0])
    t0 = time.perf_counter()
    for a in acts[1:]:
        venv.step(a)
    dt = time.perf_counter() - t0
    venv.close()
    return (steps - 1) * num_envs / dt


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--task", default="visual_manipulation")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=600, help="delta-mode steps per measurement")
    ap.add_argument("--primitive-steps", type=int, default=30)
    ap.add_argument("--num-envs", type=int, default=2)
    args = ap.parse_args()

    print(f"task={args.task} image {args.size}x{args.size}, views front+top, one core per env")
    delta = bench_single(args.task, "delta", args.size, args.steps)
    base = delta["steps_per_s"]
    prim = bench_single(args.task, "primitive", args.size, args.primitive_steps)
    arm = bench_single(args.task, "delta", args.size, args.steps, embodiment="arm")
    print(
        f"{'measurement':38s} {'steps/s':>9s} {'vs delta':>9s} {'physics ms':>11s} {'render ms':>10s}"
    )
    rows = (
        ("delta, single env", delta),
        ("primitive, single env", prim),
        ("delta, UR5e arm, single env", arm),
    )
    for name, r in rows:
        print(
            f"{name:38s} {r['steps_per_s']:9.1f} {r['steps_per_s'] / base:9.2f} "
            f"{r['physics_ms']:11.2f} {r['render_ms']:10.2f}"
        )
        print(
            f"{'  ' + name.removesuffix(', single env') + ' without rendering':38s} "
            f"{r['physics_only_steps_per_s']:9.1f} {r['physics_only_steps_per_s'] / base:9.2f}"
        )
    print("random delta actions (vector envs auto-reset; compared with one env, same actions):")
    single = bench_random("single", args.task, args.size, args.steps, 1)
    print(f"{'  delta, single env':38s} {single:9.1f} {1.0:9.2f}")
    for kind in ("sync", "async"):
        sps = bench_random(kind, args.task, args.size, args.steps // 2, args.num_envs)
        print(
            f"{f'  delta, {kind} vector x{args.num_envs} (summed)':38s} {sps:9.1f} {sps / single:9.2f}"
        )


if __name__ == "__main__":
    main()
