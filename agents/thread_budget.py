"""Intra-op threads that yield cores to other processes: each policy call runs on the cores other processes
left idle while the earlier calls ran (at least one, at most the user's count).

Why: torch's OpenMP team meets at a barrier after every op, so when another process keeps one of its cores
busy, every op waits for a descheduled thread. On 2 cores beside one spinning process a TD-MPC plan took 1.7 s
at a fixed 2 threads and 0.94 s on the budget's one (0.51 s with the cores to itself); ACT's chunk 111 ms and
102 (`benchmarks/shared_cores.py`). The load comes from /proc/stat (Linux): the busy time of the CPUs this
process may run on, less the CPU time of the calling thread and torch's worker threads, measured inside the
calls only, so work that alternates with the calls (envs stepping in subprocesses) does not count, while this
process's other Python threads busy during a call (camera readers, a prefetcher, a control loop) do: they take
cores as another process would. Without /proc/stat the budget keeps the user's count.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

#: /proc/stat's per-CPU fields that count as busy: user (guest time included), nice, system, irq, softirq.
#: Idle, iowait and steal (the hypervisor's time) do not.
_BUSY_FIELDS = (0, 1, 2, 5, 6)
#: Seconds of policy calls a decision is measured over (/proc/stat counts in 10 ms ticks).
WINDOW_S = 0.2


class CpuMeter:
    """Seconds the CPUs in `cpus` have been busy since boot, read from /proc/stat; `busy_s()` is None where
    the file is missing or unreadable (not Linux)."""

    def __init__(self, cpus: set[int] | None = None, path: str | Path = "/proc/stat") -> None:
        self.cpus = set(os.sched_getaffinity(0)) if cpus is None else set(cpus)
        self.path = Path(path)
        self._tick = 1.0 / os.sysconf("SC_CLK_TCK")

    def busy_s(self) -> float | None:
        try:
            text = self.path.read_text()
        except OSError:
            return None
        ticks, seen = 0, 0
        for line in text.splitlines():  # the cpu lines come first
            name, _, rest = line.partition(" ")
            if not name.startswith("cpu"):
                break
            if name == "cpu" or int(name[3:]) not in self.cpus:
                continue
            fields = rest.split()
            ticks += sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields))
            seen += 1
        return ticks * self._tick if seen else None


def _thread_cpu_s(tid: int, tick: float) -> float:
    """CPU seconds thread `tid` of this process has used (utime + stime of /proc/self/task/<tid>/stat), 0 if gone."""
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * tick  # stat fields 14 and 15; fields[0] is field 3


def policy_cpu_s(_tick: float = 1.0 / os.sysconf("SC_CLK_TCK")) -> float:
    """This process's CPU seconds less those of its Python threads other than the calling one: what the calling
    thread and torch's (non-Python) worker threads have used, as far as /proc tells (a helper thread that ends
    during a call counts as this process's own; without /proc, the process's whole CPU time)."""
    total = time.process_time()
    me = threading.get_native_id()
    for t in threading.enumerate():
        if t.native_id is not None and t.native_id != me:
            total -= _thread_cpu_s(t.native_id, _tick)
    return total


class ThreadBudget:
    """How many intra-op threads a policy call gets: `most`, less the cores other processes (and this
    process's other Python threads) kept busy while the earlier calls ran (re-decided each time they add up to `window_s`, default `WINDOW_S`; rounded, at
    least 1). Only the time inside calls counts, so work that alternates with them (async envs stepping in
    subprocesses) does not. `applied()` runs a call on the granted count and measures it."""

    def __init__(
        self,
        most: int,
        window_s: float | None = None,
        meter: CpuMeter | None = None,
        clock: Callable[[], float] = time.monotonic,
        own_cpu_s: Callable[[], float] = policy_cpu_s,
    ) -> None:
        if most < 1:
            raise ValueError(f"most must be at least 1 thread, got {most}")
        self.most = most
        self.window_s = WINDOW_S if window_s is None else window_s
        self.meter = CpuMeter() if meter is None else meter
        self.clock, self.own_cpu_s = clock, own_cpu_s
        self.cores = len(self.meter.cpus)
        self._threads = most
        self._sum = [0.0, 0.0, 0.0]  # wall, busy and own CPU seconds inside calls since the last decision
        #: Cores other processes kept busy during the calls of the last window (None before the first window,
        #: and without /proc/stat, where the budget stays at `most`).
        self.other_load: float | None = None
        #: How many calls `applied()` ran on each thread count.
        self.granted: Counter[int] = Counter()

    def threads(self) -> int:
        """The thread count the next call gets."""
        return self._threads

    def _sample(self) -> tuple[float, float, float] | None:
        busy = self.meter.busy_s()
        return None if busy is None else (self.clock(), busy, self.own_cpu_s())

    def _measured(self, start: tuple[float, float, float], end: tuple[float, float, float]) -> None:
        for i in range(3):
            self._sum[i] += end[i] - start[i]
        wall, busy, own = self._sum
        if wall < self.window_s:
            return
        self.other_load = max(0.0, busy - own) / wall
        self._threads = max(1, min(self.most, int(self.cores - self.other_load + 0.5)))
        self._sum = [0.0, 0.0, 0.0]

    @contextmanager
    def applied(self) -> Iterator[int]:
        """Run the body (one policy call) on `threads()` intra-op threads in this thread, then restore the
        previous count; the call's wall and CPU time feed the next decision."""
        n, before = self._threads, torch.get_num_threads()
        self.granted[n] += 1
        start = self._sample() if self.most > 1 else None
        if n != before:
            torch.set_num_threads(n)
        try:
            yield n
        finally:
            if n != before:
                torch.set_num_threads(before)
            end = None if start is None else self._sample()
            if start is not None and end is not None:
                self._measured(start, end)


def budget_for(device: torch.device, enabled: bool = True) -> ThreadBudget | None:
    """A budget over torch's current thread count for calls on the CPU when `enabled` (`--yield-cores`); None
    otherwise: a CUDA policy's kernels do not run on the intra-op threads."""
    return ThreadBudget(torch.get_num_threads()) if enabled and device.type == "cpu" else None


def on_budget(budget: ThreadBudget | None) -> AbstractContextManager[int | None]:
    """`budget.applied()` (the granted count bound by `as`), or a no-op binding None without a budget."""
    return budget.applied() if budget is not None else nullcontext()
