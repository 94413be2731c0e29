"""A fixed-rate loop clock: each tick sleeps to the next period boundary and reports how late it came.

Shared by the real arm's env and by a simulated follower driven by a person (`twinarm teleop --env`), so
both run at the arm's control rate the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LoopClock:
    """Ticks every `period_s` seconds on a fixed schedule; a late tick restarts the schedule from then.

    `pace=False` only keeps the books (tests, replays as fast as possible); `clock`/`sleep` are injectable.
    """

    def __init__(self, period_s: float, pace: bool = True, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.period_s, self.pace = period_s, pace
        self._clock, self._sleep = clock, sleep
        self._next: float | None = None
        self.overruns = 0

    def restart(self) -> None:
        """Forget the schedule: the next tick starts a new one (after a reset, a pause)."""
        self._next = None

    def tick(self) -> float:
        """Wait for the end of this period; returns by how much the loop overran it (0.0 when on time)."""
        now = self._clock()
        if self._next is None:
            self._next = now
        self._next += self.period_s
        late = now - self._next
        if late > 0:
            self.overruns += 1
            self._next = now
            return late
        if self.pace:
            while (left := self._next - self._clock()) > 0:
                self._sleep(left - 5e-4 if left > 1e-3 else 0)  # the last half millisecond by yielding
        return 0.0
