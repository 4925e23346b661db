"""Control-loop latency over loopback vs the same policy in-process: p50, p99 and the overhead.

Latency here is the loop's ``loop`` stage: from the moment the loop starts capturing a frame to
the moment the action computed from that frame has been handed to the arm (``driver.send``
returned), for every executed policy action. Both paths run the identical loop, sim driver,
policy session and policy; the only difference is where the policy runs:

- ``in-process``: :class:`LocalPolicyClient` (the policy on a worker thread of this process);
- ``loopback``: ``uio2-robot serve``'s code (``run_serve_command``) in a separate process on
  127.0.0.1, reached through :class:`RemotePolicyClient` (websockets + msgpack).

Rounds alternate the two paths so machine load drifts hit both alike; ratios are computed
within this one run. Policies: ``oracle`` (scripted; served on a sim twin, so this mostly
measures transport), ``uio2`` (a random-weight ``tiny`` torch checkpoint), ``onnx`` (a deploy
bundle: ``--bundle DIR``, or ``--export`` to export the tiny checkpoint first, ~1-2 min).

Usage::

    python benchmarks/bench_loop_latency.py                       # oracle + uio2
    python benchmarks/bench_loop_latency.py --policies oracle,uio2,onnx --export
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import numpy as np  # noqa: E402

from uio2_robot.deploy.cameras import SimCamera  # noqa: E402
from uio2_robot.deploy.client import LocalPolicyClient, RemotePolicyClient  # noqa: E402
from uio2_robot.deploy.commands import build_metadata  # noqa: E402
from uio2_robot.deploy.config import PolicySpec  # noqa: E402
from uio2_robot.deploy.drivers import SimDriver  # noqa: E402
from uio2_robot.deploy.factory import policy_factory  # noqa: E402
from uio2_robot.deploy.loop import ControlLoop, LoopSettings  # noqa: E402
from uio2_robot.seeding import episode_seed  # noqa: E402

TASK, LEVEL, HZ, SIM_SIZE = "visual_manipulation", "L1", 10.0, 64
SPEEDUP = {"oracle": 2.0, "uio2": 1.0, "onnx": 1.0}  # keep the period above inference time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_server(spec: PolicySpec, port: int) -> subprocess.Popen[bytes]:
    """`run_serve_command` for ``spec`` in its own process on 127.0.0.1:``port``."""
    policy = {k: v for k, v in vars(spec).items() if v is not None}
    code = (
        "from omegaconf import OmegaConf\n"
        "from uio2_robot.deploy.commands import run_serve_command\n"
        f"run_serve_command(OmegaConf.create({{'policy': {policy!r}, 'host': '127.0.0.1', "
        f"'port': {port}, 'image_size': {SIM_SIZE}, 'control_hz': {HZ}, "
        "'duration_s': 900.0, 'log_level': 'WARNING', 'action_mode': 'delta', "
        "'runtime': 'torch'}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "MUJOCO_GL": "egl"})
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the {spec.name} server exited with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"the {spec.name} server did not listen on {port} within 120 s")


def run_episodes(
    client: Any, name: str, seeds: list[int], max_steps: int
) -> dict[str, list[float]]:
    """Run the loop over ``seeds``; pooled raw samples per stage (seconds) plus counters."""
    driver = SimDriver(TASK, LEVEL, seeds, image_size=SIM_SIZE, control_hz=HZ)
    cams = [SimCamera("front", driver), SimCamera("top", driver)]
    settings = LoopSettings(
        control_hz=HZ, speedup=SPEEDUP[name], max_steps=max_steps, max_seconds=60
    )
    loop = ControlLoop(driver, cams, client, settings)
    pooled: dict[str, list[float]] = {"holds": [], "policy_steps": [], "overruns": []}
    loop.start(connect_timeout_s=60)
    try:
        for _ in seeds:
            report = loop.run_episode()
            for stage, values in report.samples.samples.items():
                pooled.setdefault(stage, []).extend(values)
            pooled["holds"].append(report.holds)
            pooled["policy_steps"].append(report.policy_steps)
            pooled["overruns"].append(report.overruns)
    finally:
        driver.close()
    return pooled


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q)) if values else float("nan")


def prepare(name: str, workdir: Path, bundle: str | None, export: bool) -> PolicySpec | None:
    if name == "oracle":
        return PolicySpec(name="oracle")
    from uio2_robot.export.random_checkpoint import make_random_checkpoint

    ckpt = workdir / "ckpt"
    if not ckpt.exists():
        make_random_checkpoint(ckpt, "tiny", seed=0, max_prompt_tokens=64)
    if name == "uio2":
        return PolicySpec(name="uio2", checkpoint=str(ckpt))
    if bundle:
        return PolicySpec(name="onnx", bundle=bundle)
    if not export:
        print("skipping onnx: pass --bundle DIR or --export", file=sys.stderr)
        return None
    from uio2_robot.export.bundle import export_bundle

    print("exporting the tiny checkpoint to an ONNX bundle ...", file=sys.stderr)
    export_bundle(ckpt, workdir / "bundle")
    return PolicySpec(name="onnx", bundle=str(workdir / "bundle"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", default="oracle,uio2")
    ap.add_argument("--episodes", type=int, default=3, help="episodes per path per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40, help="max steps per episode")
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--export", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_loop_") as tmp:
        for name in args.policies.split(","):
            spec = prepare(name, Path(tmp), args.bundle, args.export)
            if spec is None:
                continue
            # per-tick latency is a delta-mode figure (primitive mode plans once per motion);
            # runtime torch: a checkpoint is compared as itself, a bundle as onnx
            meta = build_metadata(
                spec,
                cameras=["front", "top"],
                image_size=SIM_SIZE,
                control_hz=HZ,
                action_mode="delta",
            )
            kwargs = {k: v for k, v in vars(spec).items() if k != "name"}
            local = LocalPolicyClient(policy_factory(spec.name, HZ, **kwargs), meta)
            port = free_port()
            server = spawn_server(spec, port)
            remote = RemotePolicyClient(f"ws://127.0.0.1:{port}", request_timeout_s=10.0)
            results: dict[str, dict[str, list[float]]] = {"in-process": {}, "loopback": {}}
            try:
                for r in range(args.rounds):
                    seeds = [
                        episode_seed(3000, TASK, LEVEL, r * args.episodes + i)
                        for i in range(args.episodes)
                    ]
                    for path, client in (("in-process", local), ("loopback", remote)):
                        pooled = run_episodes(client, name, seeds, args.steps)
                        for k, v in pooled.items():
                            results[path].setdefault(k, []).extend(v)
            finally:
                local.close()
                remote.close()
                server.kill()
                server.wait(10)
            base = results["in-process"]["loop"]
            for path, res in results.items():
                rows.append(
                    {
                        "policy": name,
                        "path": path,
                        "n": len(res.get("loop", [])),
                        "holds": int(sum(res["holds"])),
                        "overruns": int(sum(res["overruns"])),
                        "loop_p50": pct(res.get("loop", []), 50),
                        "loop_p99": pct(res.get("loop", []), 99),
                        "infer_p50": pct(res.get("inference", []), 50),
                        "rtt_p50": pct(res.get("round_trip", []), 50),
                        "transfer_p50": pct(res.get("transfer", []), 50),
                        "ratio_p50": pct(res.get("loop", []), 50) / pct(base, 50),
                        "ratio_p99": pct(res.get("loop", []), 99) / pct(base, 99),
                    }
                )
    print(
        f"\nLoop latency, frame capture -> action applied ({TASK} {LEVEL}, sim driver, "
        f"{SIM_SIZE}px x2 cameras, {HZ:g} Hz control); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| policy | path | actions | holds | overruns | loop p50 ms | loop p99 ms | "
        "inference p50 ms | round trip p50 ms | transfer p50 ms | p50 vs in-process | "
        "p99 vs in-process |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['policy']} | {r['path']} | {r['n']} | {r['holds']} | {r['overruns']} | "
            f"{r['loop_p50']:.1f} | {r['loop_p99']:.1f} | {r['infer_p50']:.1f} | "
            f"{r['rtt_p50']:.1f} | {r['transfer_p50']:.2f} | {r['ratio_p50']:.2f}x | "
            f"{r['ratio_p99']:.2f}x |"
        )


if __name__ == "__main__":
    main()
