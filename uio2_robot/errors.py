"""The package's user-facing error type: a leaf module every layer may raise from.

Library code raises :class:`UsageError` (or a plain ValueError / FileNotFoundError that a
command marks as the user's) when a request cannot be carried out as given; its message says
what was expected. Only ``uio2_robot.cli`` turns it into a printed message and an exit status,
so no library module imports the CLI.
"""

from __future__ import annotations


class UsageError(Exception):
    """A request that cannot be carried out as given (bad value, missing path, ...): the CLI
    prints the message without a traceback and exits with status 2."""
