"""The policy server's memory under a burst of large pipelined frames (issue #24).

A server (its own process, a trivial policy) takes 8 clients that each send ``--frames`` frames
back to back before reading any reply; its resident memory is sampled from /proc during the
burst and read again a second after it. Two bursts:

- ``slow``: reset requests with ~6 MiB prompts to a policy whose reset sleeps 0.1 s, so frames
  wait in the server;
- ``too_large``: frames of 1.9 x ``max_message_bytes``, each answered ``too_large``.

Run it from two checkouts to compare code versions (same machine, same run of the OS):

    python benchmarks/bench_server_burst.py                  # both bursts, ~30 s
    python benchmarks/bench_server_burst.py --burst slow --frames 8
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
from websockets.sync.client import connect

from uio2_robot.deploy.wire import WIRE_VERSION, pack, unpack

SERVER = """
import logging, time
import numpy as np
from uio2_robot.deploy.metadata import PolicyMetadata
from uio2_robot.deploy.server import PolicyServer

class Policy:
    def reset(self, prompt, action_space, env=None):
        time.sleep({reset_s})
    def act(self, obs):
        return np.zeros(5, np.float32)

logging.basicConfig(level=logging.ERROR)
meta = PolicyMetadata(policy="bench", cameras=("front",), image_size=(16, 16),
                      max_message_bytes={limit})
# no keepalive pings: a client blocked by backpressure cannot answer them (docs/reliability.md)
PolicyServer(Policy, meta, port={port}, max_clients=8, ping_interval_s=None).run(duration_s=300)
"""


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(burst: str, frames: int, limit: int) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reset_s = 0.1 if burst == "slow" else 0.0
    code = SERVER.format(reset_s=reset_s, limit=limit, port=port)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(0.5)
        if burst == "slow":
            img = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
            frame = pack({"v": WIRE_VERSION, "id": 1, "type": "reset", "prompt": ["p", img, img]})
        else:
            frame = b"\0" * int(1.9 * limit)
        base = _rss(proc.pid)
        peak, done = [base], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(_rss(proc.pid))
                time.sleep(0.02)

        def client() -> None:
            with connect(f"ws://127.0.0.1:{port}", proxy=None, max_size=None) as ws:
                for _ in range(frames):
                    ws.send(frame)
                for _ in range(frames):
                    unpack(ws.recv(timeout=300), 1 << 20)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.perf_counter()
        clients = [threading.Thread(target=client) for _ in range(8)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        time.sleep(1.0)
        after = _rss(proc.pid)
    finally:
        proc.kill()
        proc.wait(10)
    return {
        "burst": burst,
        "sent_mib": round(8 * frames * len(frame) / 2**20),
        "seconds": round(seconds, 1),
        "base_mib": round(base / 2**20),
        "peak_growth_mib": round((max(peak) - base) / 2**20),
        "after_growth_mib": round((after - base) / 2**20),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--burst", choices=["slow", "too_large", "both"], default="both")
    ap.add_argument("--frames", type=int, default=16, help="frames per client")
    ap.add_argument("--limit", type=int, default=8 << 20, help="max_message_bytes")
    args = ap.parse_args()
    for burst in ("slow", "too_large") if args.burst == "both" else (args.burst,):
        print(json.dumps(run(burst, args.frames, args.limit)), flush=True)


if __name__ == "__main__":
    main()
