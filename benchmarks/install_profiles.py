"""Install size and import time per install profile (docs/install.md, issue #23 item 2).

Size: the distributions a fresh ``uio2-robot[PROFILE]`` install holds (pyproject's lists for the
profile, closed over each dependency's own requirements, read from the installed metadata) and
the bytes of the files each one's RECORD lists, as installed in THIS environment (which must hold
the profile's packages at the versions to report: the constrained dev install has all but
``onnxruntime-gpu``). ``--venv DIR`` instead reports ``du`` of a real venv's site-packages minus
an empty venv's.

Import time: ``python -c "import X"`` for each profile's entry module, run ``--repeat`` times in
fresh processes; the median wall time and the median CPU time (user + sys of the child, which
depends less on what else loads the machine).

    python benchmarks/install_profiles.py [--repeat 5] [--python PY] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from uio2_robot.extras import dependency_closure

PROFILES = {  # profile -> (extras, the module its entry point imports)
    "base": ((), "uio2_robot.cli"),
    "runtime": (("runtime",), "uio2_robot.deploy.server, uio2_robot.policies.onnx_policy"),
    "sim": (("sim",), "uio2_robot.envs, uio2_robot.trajectories.collect"),
    "train": (("train",), "uio2_robot.train.loop"),
    "lerobot": (("lerobot",), "uio2_robot.trajectories.lerobot_v3"),
    "cpu": (("runtime", "sim", "train"), "uio2_robot.eval.runner, uio2_robot.train.loop"),
}


def distributions(extras: tuple[str, ...]) -> set[str]:
    """Normalised names of what ``uio2-robot[extras]`` installs (uio2-robot itself excluded)."""
    return dependency_closure(metadata.requires("uio2-robot") or [], extras)


def installed_bytes(name: str) -> int:
    """Bytes of the files a distribution's RECORD lists (its .pyc included where pip wrote them)."""
    files = metadata.distribution(name).files or []
    return sum(f.locate().stat().st_size for f in files if f.locate().is_file())


def du_site_packages(venv: Path) -> int:
    site = next(venv.glob("lib/python3*/site-packages"))
    out = subprocess.run(["du", "-sb", str(site)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def import_times(python: str, modules: str, repeat: int) -> tuple[float, float]:
    """(median wall s, median child CPU s) of ``python -c 'import modules'`` in fresh processes."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([python, "-c", f"import {modules}"], check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--python", default=sys.executable, help="interpreter for the import times")
    ap.add_argument("--venv", type=Path, help="report du of this venv's site-packages instead")
    ap.add_argument("--empty", type=Path, help="an empty venv, subtracted from --venv")
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.venv is not None:
        size = du_site_packages(args.venv) - (du_site_packages(args.empty) if args.empty else 0)
        print(f"{args.venv}: {size / 1e6:.1f} MB")
        return 0
    rows = {}
    for name in args.profiles.split(","):
        extras, modules = PROFILES[name]
        dists = distributions(extras)
        missing = sorted(d for d in dists if not _installed(d))
        size = sum(installed_bytes(d) for d in dists if _installed(d))
        wall, cpu = import_times(args.python, modules, args.repeat)
        rows[name] = {
            "distributions": len(dists),
            "missing_here": missing,
            "size_mb": round(size / 1e6, 1),
            "import": modules,
            "import_wall_s": round(wall, 3),
            "import_cpu_s": round(cpu, 3),
        }
        print(json.dumps({name: rows[name]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
