"""Give freed heap back to the operating system after a burst of large messages (glibc only).

Why: glibc raises its mmap threshold dynamically once a large block is freed, so later
multi-megabyte message buffers come from the heap, and a heap freed in the middle stays mapped:
after a burst of near-limit frames the server kept ~1.36 GB resident although nothing referred
to it. Fixing the threshold (``mallopt``) keeps large buffers in their own mappings, which
``free`` unmaps at once, and ``malloc_trim`` returns what the heap arenas still hold. Both are
no-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger("uio2_robot.deploy.memory")

M_MMAP_THRESHOLD = -3
# Blocks at least this big get their own mapping: message frames (megabytes) do, while the
# policy's smaller numpy temporaries stay on the heap (an mmap per allocation costs page faults).
LARGE_BLOCK_BYTES = 1 << 20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.malloc_trim  # noqa: B018 - glibc only: raises AttributeError elsewhere
        lib.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return lib


def fix_mmap_threshold() -> bool:
    """Serve large blocks from their own mappings for the rest of the process; True if set."""
    lib = _libc()
    return bool(lib is not None and lib.mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))


def release_freed_memory() -> bool:
    """Return free heap pages to the OS (after a client leaves); True if anything was released."""
    lib = _libc()
    return bool(lib is not None and lib.malloc_trim(0))


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc), for the health endpoint and tests."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")
