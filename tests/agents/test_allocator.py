"""`keep_freed_memory`: a freed 24 MiB block stays in the process (reused, not page-faulted in again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from twinarm.agents.allocator import OPT_OUT, keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")

# Resident memory after malloc + touch + free of a 24 MiB block, in a fresh interpreter.
_PROBE = r"""
import ctypes, json, os, sys
from twinarm.agents.allocator import keep_freed_memory

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

said = keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
n = 24 << 20
base = rss()
p = libc.malloc(n)
ctypes.memset(p, 1, n)
touched = rss()
libc.free(p)
print(json.dumps({"said": said, "grew": touched - base, "kept": rss() - base}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != OPT_OUT}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_freed_block_stays_resident_and_default_malloc_returns_it() -> None:
    tuned = _probe()
    assert tuned["said"].startswith("malloc keeps freed memory"), tuned
    assert tuned["grew"] >= 20 << 20
    assert tuned["kept"] >= 20 << 20, "the freed block went back to the OS"
    default = _probe(**{OPT_OUT: "0"})
    assert "left as it is" in default["said"]
    assert default["grew"] >= 20 << 20
    assert default["kept"] < 4 << 20, "glibc's default should unmap a freed 24 MiB block"


def test_user_malloc_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OPT_OUT, raising=False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert "MALLOC_MMAP_THRESHOLD_" in keep_freed_memory()
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert "LD_PRELOAD" in keep_freed_memory()
