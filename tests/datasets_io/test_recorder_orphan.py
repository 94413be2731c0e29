"""A recorder worker whose parent was SIGKILLed exits within seconds: before the fix one stayed orphaned for ever,
its queue feeder blocked on a results pipe that nobody reads any more (audit B3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fake_env
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc")

HERE = Path(__file__).parent

#: The child: record noisy episodes with 2 workers until killed. Each episode (~0.25 MB pickled) overfills a pipe.
CHILD = f"""
import functools, sys
sys.path.insert(0, {str(HERE)!r})
import fake_env, test_recorder_orphan as t
from twinarm.datasets_io.recorder import record
from twinarm.datasets_io.writer import DatasetWriter
w = DatasetWriter.create(sys.argv[1], 10, fake_env.features(), robot_type="fake")
record(functools.partial(t.NoisyEnv, 90), fake_env.make_policy, w, episodes=10_000, task="Do it.",
       num_workers=2, progress=False)
"""


class NoisyEnv(fake_env.FakeArmEnv):
    """Random camera images, which the codec cannot shrink: every encoded episode is bigger than a pipe's buffer."""

    def _obs(self) -> dict:
        obs = super()._obs()
        obs["pixels"] = {c: self.np_random.integers(0, 256, (fake_env.H, fake_env.W, 3), dtype=np.uint8)
                         for c in ("front", "wrist")}
        return obs


def _cmdline(pid: int) -> str:
    """`pid`'s command line ('' once it is gone), to be sure a pid still names the process it named."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> dict[int, str]:
    """Live processes whose parent is `pid`: {pid: command line}."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found[int(d.name)] = _cmdline(int(d.name))
    return found


def _alive(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_exit_soon_after_the_recorder_is_killed(tmp_path):
    root = tmp_path / "ds"
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    spawned: dict[int, str] = {}
    workers: list[int] = []
    committed: list[Path] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and parent.poll() is None:  # both workers up and episodes committed
            spawned.update(_children(parent.pid))
            workers = [p for p, cmd in spawned.items() if "spawn_main" in cmd]
            committed = list((root / "data").rglob("*.parquet")) if (root / "data").exists() else []
            if len(workers) == 2 and committed:
                break
            time.sleep(0.1)
        assert parent.poll() is None, f"the recorder exited early:\n{parent.stderr.read().decode()[-2000:]}"
        assert len(workers) == 2 and committed, f"the recorder did not get going: children {spawned}"
        time.sleep(0.5)  # workers mid-rollout or mid-send
        spawned.update(_children(parent.pid))
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        left = {p: spawned[p] for p in workers if _alive(p)}
        assert not left, f"recorder worker(s) still running 5 s after the recorder was SIGKILLed: {left}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid, cmd in spawned.items():  # a failure must not leave a process behind (workers, resource tracker)
            if _alive(pid) and _cmdline(pid) == cmd:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
