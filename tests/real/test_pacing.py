"""LoopClock on a fake clock: on-time ticks sleep to the period's end, late ones count and restart the schedule."""

from __future__ import annotations

import pytest

from twinarm.real.pacing import LoopClock


class FakeTime:
    """A clock that only moves when the loop works (`spend`) or sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += max(s, 1e-4)  # a zero sleep still yields
        self.slept += s

    def spend(self, s: float) -> None:
        self.now += s


def test_on_time_ticks_end_on_the_period_grid() -> None:
    t = FakeTime()
    clock = LoopClock(0.1, clock=t.clock, sleep=t.sleep)
    t.spend(0.03)
    origin = t.now  # the first tick starts the schedule: it ends one period later
    for k in range(1, 6):
        assert clock.tick() == 0.0
        assert origin + 0.1 * k - 1e-9 <= t.now < origin + 0.1 * k + 2e-4  # the loop's work does not add up
        t.spend(0.03)  # the loop's own work
    assert clock.overruns == 0


def test_late_tick_reports_lateness_counts_and_restarts_from_now() -> None:
    t = FakeTime()
    clock = LoopClock(0.1, clock=t.clock, sleep=t.sleep)
    clock.tick()  # starts the schedule at 100.0, ends at 100.1
    t.spend(0.25)  # 0.15 s past the next boundary (100.2)
    assert clock.tick() == pytest.approx(0.15)
    assert clock.overruns == 1
    late_at = t.now
    t.spend(0.02)
    assert clock.tick() == 0.0
    assert late_at + 0.1 - 1e-9 <= t.now < late_at + 0.1 + 2e-4  # a full period after the late tick, no catching up


def test_restart_and_unpaced_clock() -> None:
    t = FakeTime()
    clock = LoopClock(0.1, clock=t.clock, sleep=t.sleep)
    clock.tick()
    t.spend(5.0)  # a pause (a reset period) is not an overrun once restarted
    clock.restart()
    assert clock.tick() == 0.0 and clock.overruns == 0
    unpaced = LoopClock(0.1, pace=False, clock=t.clock, sleep=t.sleep)
    before = t.slept
    for _ in range(3):
        assert unpaced.tick() == 0.0
    assert t.slept == before  # it keeps the books, never sleeps
    with pytest.raises(ValueError, match="period_s must be > 0"):
        LoopClock(0.0)
