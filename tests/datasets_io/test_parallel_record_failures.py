"""Parallel recording when something goes wrong: a worker killed without a Python exception (OOM killer, a
segfault, kill -9) stops the run at once, naming it, with every committed episode intact; and an error in the
parent stops the workers without them working through a long queue of seeds first."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import fake_env
import numpy as np
import pytest

from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.recorder import record
from twinarm.datasets_io.writer import DatasetWriter


class KilledAtSeedFour(fake_env.FakeArmEnv):
    """Stands in for a segfault or an OOM kill: reset(seed=4) SIGKILLs its own process."""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().reset(seed=seed, options=options)


def make_killed_env() -> KilledAtSeedFour:
    return KilledAtSeedFour(length=4)


class SeedLogEnv(fake_env.FakeArmEnv):
    """Writes a file per seed it is reset with, so the test sees every rollout the workers started."""

    def __init__(self, logdir: str) -> None:
        super().__init__(length=3)
        self.logdir = logdir

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        Path(self.logdir, f"seed-{seed}").touch()
        return super().reset(seed=seed, options=options)


def make_seed_log_env(logdir: str) -> SeedLogEnv:
    return SeedLogEnv(logdir)


class _Hung(Exception):
    pass


@pytest.fixture
def hang_guard():
    """Turn a hang into a failure (the bug this file covers made record() wait for ever)."""
    def alarm(*_):
        raise _Hung("record() did not return")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(240)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_worker_killed_without_exception_stops_the_run_naming_it(tmp_path, hang_guard):
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, 10, fake_env.features(), robot_type="fake")
    with pytest.raises(RuntimeError, match=r"pid \d+ exit code -9 \(SIGKILL\).*committed so far are intact") as ei:
        record(make_killed_env, fake_env.make_policy, w, episodes=12, task="Do it.", num_workers=2,
               progress=False)
    saved = int(str(ei.value).split("; the ")[1].split(" ")[0])
    assert w.num_episodes == saved
    w.finalize()
    if saved:  # every finished episode reads back whole
        ds = LeRobotDatasetReader(root)
        assert ds.meta.total_episodes == saved and len(ds) == 4 * saved
        for i in range(len(ds)):
            assert np.isfinite(ds[i]["observation.state"].numpy()).all()


def test_parent_error_stops_workers_after_the_few_seeds_issued(tmp_path, hang_guard):
    """A commit that fails in the parent: the workers must not roll out all `episodes + workers` seeds queued
    before the shutdown; at most two seeds per worker are ever issued ahead."""
    logdir = tmp_path / "seeds"
    logdir.mkdir()
    w = DatasetWriter.create(tmp_path / "ds", 10, fake_env.features(), robot_type="fake")

    def failing_commit(episode):
        raise OSError("disk failed")

    w.commit = failing_commit  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk failed"):
        record(functools.partial(make_seed_log_env, str(logdir)), fake_env.make_policy, w, episodes=60,
               task="Do it.", num_workers=2, progress=False)
    started = sorted(int(p.name.split("-")[1]) for p in logdir.iterdir())
    assert started and max(started) < 4, started  # seeds 0..3 only: 2 workers x 2
    w.finalize()


def test_a_script_without_a_main_guard_is_named_when_its_workers_die(tmp_path: Path) -> None:
    """Spawned workers import the caller's script again; without `if __name__ == "__main__":` each re-runs the
    recording and exits 1, and the run said only "worker(s) died without reporting an error" (extensibility audit)."""
    import subprocess
    import sys

    script = tmp_path / "rec.py"
    script.write_text("from twinarm.cli.main import main\n"
                      "main(['record', '--env', 'twinarm/SO101-Reach-v0', '--root', 'd', '--episodes', '2', "
                      "'--num-workers', '2', '--height', '48', '--width', '64', '--no-progress'])\n")  # fmt: skip
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})  # fmt: skip
    assert proc.returncode != 0
    assert "died without reporting an error" in proc.stderr
    assert 'without an `if __name__ == "__main__":` guard' in proc.stderr, proc.stderr[-2000:]
