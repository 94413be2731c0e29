"""Keep freed memory in the process for CPU training and inference (glibc's malloc, Linux).

PyTorch's CPU tensors come from malloc. glibc hands blocks above its mmap threshold to fresh mmap pages and
returns memory at the top of the heap to the OS once more than its trim threshold is free, so a loop that frees
and re-allocates the same large tensors every step page-faults them in again every step. On small VMs a page
fault is expensive: with the threshold pinned at glibc's 128 KiB default, TD-MPC's training step runs 1.5x
slower. `keep_freed_memory` raises both thresholds so freed tensors are reused, the CPU analogue of a caching
allocator: the process keeps its peak heap instead of returning it between steps. Blocks of 32 MiB and more
(glibc's largest mmap threshold) are still mapped and unmapped each time.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's largest allowed mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept before any is returned to the OS.
TRIM_THRESHOLD = 1 << 30
#: Set to 0 to leave malloc as it is.
OPT_OUT = "TWINARM_KEEP_FREED_MEMORY"
#: A user's own malloc tuning or replacement wins over ours.
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_REPLACEMENTS = ("jemalloc", "tcmalloc", "mimalloc")


def keep_freed_memory() -> str:
    """Tune glibc's malloc to reuse freed tensors; returns what was done, or why nothing was."""
    if os.environ.get(OPT_OUT, "1") == "0":
        return f"malloc left as it is ({OPT_OUT}=0)"
    if not sys.platform.startswith("linux"):
        return "malloc left as it is (not Linux)"
    user = [k for k in _USER_SETTINGS if k in os.environ]
    preload = os.environ.get("LD_PRELOAD", "")
    if user or any(name in preload for name in _REPLACEMENTS):
        return f"malloc left as it is (set by the user: {', '.join(user) or 'LD_PRELOAD=' + preload})"
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version"):
        return "malloc left as it is (not glibc)"
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return "malloc left as it is (glibc refused the thresholds)"
    return f"malloc keeps freed memory (mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim {TRIM_THRESHOLD >> 20} MiB)"
