"""The deploy tests share helpers in ``deploy_sim.py``; this folder goes on sys.path for them."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
