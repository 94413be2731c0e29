"""Parallel recording commits episodes in seed order, whichever worker finishes first (audit F1, F10): episode k
is seed + k, as `replay --seed` and an in-process recording have it; with only_success the episodes are the first
successes in seed order; and the next seed reported for a resume never passes a seed whose episode is not
committed (one that finished early and waits for an earlier seed), so that a resume records it again."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import fake_env
import numpy as np
import pytest

from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.recorder import record
from twinarm.datasets_io.writer import DatasetWriter


class GatedEnv(fake_env.FakeArmEnv):
    """The fake env (success iff the seed is not a multiple of 3), whose `slow` seed finishes last: its reset waits
    until another worker has reset `wait_for` (so every seed between them has finished), then lingers, and notes
    which seeds had been reset by then. Every reset leaves a file `reset-<seed>` in `logdir`."""

    def __init__(self, logdir: str, slow: int, wait_for: int) -> None:
        super().__init__(length=4)
        self.logdir, self.slow, self.wait_for = Path(logdir), slow, wait_for

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        (self.logdir / f"reset-{seed}").touch()
        if seed == self.slow:
            deadline = time.monotonic() + 60  # the other worker's rollouts take well under a second each
            while not (self.logdir / f"reset-{self.wait_for}").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(1.0)  # time for the other worker to take more seeds, were any issued
            (self.logdir / "seen-by-slow").write_text(" ".join(p.name for p in self.logdir.glob("reset-*")))
        return super().reset(seed=seed, options=options)


def make_gated_env(logdir: str, slow: int, wait_for: int) -> GatedEnv:
    return GatedEnv(logdir, slow, wait_for)


def episode_seeds(root: Path, candidates: range) -> list[int]:
    """Each episode's seed: the one whose reset gives its first observation.state (the fake env's joints are drawn
    from the seed's generator)."""
    env = fake_env.make_env()
    first = {s: env.reset(seed=s)[0]["agent_pos"] for s in candidates}
    ds = LeRobotDatasetReader(root)
    found = []
    for e in range(ds.num_episodes):
        state = ds[ds.episode_rows(e).start]["observation.state"].numpy()
        match = [s for s, q in first.items() if np.array_equal(q, state)]
        assert len(match) == 1, (e, match)
        found.append(match[0])
    return found


@pytest.mark.parametrize(
    ("start", "episodes", "only_success", "kept", "decided"),
    [
        # seed 5 finishes after 6, 7 and 8: it is still episode 0
        (5, 5, False, [5, 6, 7, 8, 9], 5),
        # seed 1 (a success) finishes after 2, 3 (a failure) and 4: the first two successes are 1 and 2, not 2 and 4
        (1, 2, True, [1, 2], 2),
        # seed 2 finishes after 3 (a failure) and 4, 5: seed 3 is decided (dropped) between the two episodes
        (2, 2, True, [2, 4], 3),
    ],
)
def test_parallel_episodes_are_committed_in_seed_order(tmp_path: Path, start: int, episodes: int,
                                                        only_success: bool, kept: list[int], decided: int) -> None:
    logdir = tmp_path / "log"
    logdir.mkdir()
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, 10, fake_env.features(), robot_type="fake")
    reported: list[tuple[int, int]] = []  # (next_seed, episodes committed) at each on_seed

    make_env = functools.partial(make_gated_env, str(logdir), start, start + 3)  # the 4th seed issued
    s = record(make_env, fake_env.make_policy, w, episodes=episodes, task="Do it.", num_workers=2, seed=start,
               only_success=only_success, progress=False,
               on_seed=lambda n: reported.append((n, w.num_episodes)))  # fmt: skip
    w.finalize()
    assert episode_seeds(root, range(start, start + 12)) == kept
    assert s.seeds == kept and s.saved == episodes and s.attempted == decided
    assert s.next_seed == start + decided
    # on_seed(n) runs once per seed, in order, before that seed's episode is committed: every earlier success is
    # committed by then, none that finished early and waits is counted
    assert [n for n, _ in reported] == list(range(start + 1, start + decided + 1))
    assert [c for _, c in reported] == [sum(1 for k in kept if k < n - 1) for n, _ in reported]
    # while the slow seed ran, no more than two seeds per worker were issued: what finished early is bounded
    seen = sorted(int(name.split("-")[1]) for name in (logdir / "seen-by-slow").read_text().split())
    assert seen == list(range(start, start + 4)), seen
