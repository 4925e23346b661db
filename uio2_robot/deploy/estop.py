"""Software emergency stop: signals, a key on the terminal, or a flag file.

This is the operator's stop, checked by the control loop every tick; it brings the arm to a
safe stop through the driver and ends the run. It does not replace the arm's hardware e-stop.
A flag file works from anywhere (another terminal, a supervisor script, a web page writing to a
shared disk) with nothing but ``touch``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

log = logging.getLogger("uio2_robot.deploy.estop")

STOP_KEYS = frozenset({"q", "s", "x"})


class EmergencyStop:
    """Latches on the first trigger; ``triggered`` and ``reason`` say why."""

    def __init__(self, stop_file: str | os.PathLike[str] | None = None) -> None:
        self.stop_file = Path(stop_file) if stop_file else None
        self._event = threading.Event()
        self.reason: str | None = None
        self._old_handlers: dict[int, object] = {}

    def trigger(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()
            log.warning("EMERGENCY STOP: %s", reason)

    @property
    def triggered(self) -> bool:
        """Latched state, polling the flag file (one stat per tick)."""
        if not self._event.is_set() and self.stop_file is not None and self.stop_file.exists():
            self.trigger(f"stop file {self.stop_file} exists")
        return self._event.is_set()

    def install_signal_handlers(self) -> None:
        """SIGINT / SIGTERM trigger the stop instead of killing the process mid-command.

        Only possible from the main thread (a Python rule); elsewhere this is a no-op.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._old_handlers.clear()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.trigger(f"signal {signal.Signals(signum).name}")

    def watch_keys(self, stream=None) -> threading.Thread:
        """Stop when the operator types q, s or x (then Enter) on ``stream`` (stdin)."""
        stream = stream if stream is not None else sys.stdin

        def read() -> None:
            for line in stream:
                if line.strip().lower() in STOP_KEYS:
                    self.trigger(f"key {line.strip()!r}")
                    return

        thread = threading.Thread(target=read, name="estop-keys", daemon=True)
        thread.start()
        return thread
