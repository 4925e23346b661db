"""The robot PC runs `serve bundle=` and the robot loop with only the runtime profile importable
(no torch, MuJoCo, gymnasium, tqdm, ...): two real processes on loopback (robot_pc.py refuses
every module outside ``uio2-robot[runtime]``), an exported bundle, and a control loop executing
the served primitives on a point arm."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_serve_bundle_and_robot_run_without_torch_or_mujoco(bundle: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    script = str(HERE / "robot_pc.py")
    server = subprocess.Popen(
        [sys.executable, script, "serve", str(bundle), str(port)], stderr=subprocess.PIPE
    )
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        out = tmp_path / "report.json"
        done = subprocess.run(
            [sys.executable, script, "robot", str(port), str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(30)
    report = json.loads(out.read_text())
    assert report["heavy"] == []  # nothing imported torch or mujoco in the robot process
    assert report["served_mode"] == "primitive" and report["primitives"] >= 1
    assert not report["server_errors"] and report["sent"] == report["steps"] == 60
    assert report["latency"]["inference"]["n"] >= 1  # the bundle ran in the server process
