"""The thread budget: a policy call gets the cores other processes left idle while the earlier calls ran.

The decision is tested on a fake /proc/stat and fake clocks; one test spins a real busy process beside real
torch work; evaluation and the chunk prefetcher are checked to run their policy calls on the granted count."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import twinarm  # noqa: F401  (registers the env ids)
from tests.agents.conftest import synthetic_stats, tiny_config
from twinarm.agents.registry import make_policy
from twinarm.agents.thread_budget import CpuMeter, ThreadBudget

STAT = """\
cpu  1130 3 55 1600 5 4 5 14 0 0
cpu0 10 1 2 300 4 3 4 5 0 0
cpu1 20 2 3 300 1 1 1 9 0 0
cpu2 1000 0 50 1000 0 0 0 0 0 0
intr 1 2 3
cpu3 99999 0 0 0 0 0 0 0 0 0
"""


def test_cpu_meter_counts_the_busy_fields_of_its_cpus(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    # user + nice + system + irq + softirq; idle, iowait and steal left out; lines after the cpu block ignored.
    assert CpuMeter({0, 1}, stat).busy_s() == pytest.approx((10 + 1 + 2 + 3 + 4 + 20 + 2 + 3 + 1 + 1) * tick)
    assert CpuMeter({2}, stat).busy_s() == pytest.approx(1050 * tick)
    assert CpuMeter({3}, stat).busy_s() is None  # no such cpu line before the block ends
    assert CpuMeter({0}, tmp_path / "missing").busy_s() is None


class FakeMeter:
    """Two cpus whose busy seconds a test sets."""

    def __init__(self) -> None:
        self.cpus, self.busy = {0, 1}, 0.0

    def busy_s(self) -> float | None:
        return self.busy


class Clocks:
    def __init__(self) -> None:
        self.wall, self.own = 0.0, 0.0


def fake_budget(most: int = 2, window_s: float = 0.2) -> tuple[ThreadBudget, FakeMeter, Clocks]:
    meter, clocks = FakeMeter(), Clocks()
    budget = ThreadBudget(most, window_s, meter, clock=lambda: clocks.wall, own_cpu_s=lambda: clocks.own)  # type: ignore[arg-type]
    return budget, meter, clocks


def call(budget: ThreadBudget, meter: FakeMeter, clocks: Clocks, wall: float, own: float, other: float) -> int:
    """One call lasting `wall` seconds, in which this process used `own` CPU seconds and others `other`."""
    with budget.applied() as n:
        clocks.wall += wall
        clocks.own += own
        meter.busy += own + other
    return n


def test_a_busy_core_elsewhere_takes_a_thread_and_gives_it_back() -> None:
    budget, meter, clocks = fake_budget()
    assert call(budget, meter, clocks, 0.3, own=0.5, other=0.9) == 2  # decided from the calls before: none
    assert budget.other_load == pytest.approx(3.0)  # 0.9 s over 0.3 s
    assert budget.threads() == 1
    assert call(budget, meter, clocks, 0.3, own=0.3, other=0.3) == 1  # one core still busy elsewhere
    assert budget.threads() == 1
    assert call(budget, meter, clocks, 0.3, own=0.3, other=0.0) == 1
    assert budget.threads() == 2 and budget.other_load == pytest.approx(0.0, abs=1e-9)
    assert budget.granted == {2: 1, 1: 2}


def test_less_than_half_a_core_elsewhere_keeps_every_thread() -> None:
    budget, meter, clocks = fake_budget()
    call(budget, meter, clocks, 1.0, own=1.8, other=0.4)
    assert budget.threads() == 2
    call(budget, meter, clocks, 1.0, own=1.8, other=0.6)
    assert budget.threads() == 1


def test_short_calls_add_up_to_a_window_before_it_decides() -> None:
    budget, meter, clocks = fake_budget(window_s=0.2)
    for _ in range(3):
        call(budget, meter, clocks, 0.05, own=0.1, other=0.05)
        assert budget.threads() == 2 and budget.other_load is None
    call(budget, meter, clocks, 0.05, own=0.1, other=0.05)  # 0.2 s of calls, 0.2 s busy elsewhere: one core
    assert budget.threads() == 1 and budget.other_load == pytest.approx(1.0)


def test_time_between_calls_does_not_count() -> None:
    """Work that alternates with the calls (envs stepping in subprocesses) leaves the cores idle during them."""
    budget, meter, clocks = fake_budget()
    for _ in range(5):
        call(budget, meter, clocks, 0.1, own=0.2, other=0.0)
        clocks.wall += 1.0
        meter.busy += 1.9  # another process busy between the calls
    assert budget.threads() == 2 and budget.other_load == pytest.approx(0.0, abs=1e-9)


def test_never_above_most_nor_below_one() -> None:
    budget, meter, clocks = fake_budget(most=1)
    assert call(budget, meter, clocks, 1.0, own=1.0, other=0.0) == 1
    assert budget.other_load is None  # one thread: nothing to decide, nothing measured
    budget, meter, clocks = fake_budget(most=8)
    call(budget, meter, clocks, 1.0, own=1.0, other=0.0)
    assert budget.threads() == 2  # the cores it may run on
    call(budget, meter, clocks, 1.0, own=1.0, other=5.0)
    assert budget.threads() == 1
    with pytest.raises(ValueError, match="at least 1"):
        ThreadBudget(0)


def test_without_proc_stat_it_keeps_most(tmp_path: Path) -> None:
    budget = ThreadBudget(2, window_s=0.0, meter=CpuMeter({0, 1}, tmp_path / "missing"))
    for _ in range(3):
        with budget.applied() as n:
            assert n == 2
    assert budget.other_load is None


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_applied_sets_this_threads_count_and_restores_it() -> None:
    budget, meter, clocks = fake_budget()
    call(budget, meter, clocks, 0.3, own=0.3, other=0.3)
    with torch_threads(2):
        with budget.applied() as n:
            assert n == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), budget.applied():
            raise RuntimeError("a failing call")
        assert torch.get_num_threads() == 2


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or not Path("/proc/stat").exists(),
                    reason="needs 2 cpus and /proc/stat")  # fmt: skip
def test_a_spinning_process_beside_real_work_takes_a_thread() -> None:
    """With a process spinning on one of this process's two cores, the budget goes down to one thread."""
    cpus = set(sorted(os.sched_getaffinity(0))[:2])
    budget = ThreadBudget(2, window_s=0.1, meter=CpuMeter(cpus))
    a = torch.randn(256, 256)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with torch_threads(2):
            for _ in range(40):
                with budget.applied():
                    end = time.monotonic() + 0.03
                    while time.monotonic() < end:
                        a @ a
                if budget.granted[1] >= 3:
                    break
    finally:
        hog.kill()
        hog.wait()
    assert budget.granted[1] >= 3, (budget.granted, budget.other_load)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread CPU times come from /proc")
def test_other_python_threads_of_this_process_count_as_load() -> None:
    """A helper thread burning CPU in this process (a camera reader, say) is not the policy's own time: it takes
    a core as another process would. The caller here sleeps, so its own time stays near zero."""
    from twinarm.agents.thread_budget import policy_cpu_s

    stop = threading.Event()

    def helper() -> None:
        data = b"x" * (1 << 22)
        while not stop.is_set():
            hashlib.sha256(data).digest()  # releases the GIL: CPU time on another core

    thread = threading.Thread(target=helper, name="camera-like-helper", daemon=True)
    process0, policy0 = time.process_time(), policy_cpu_s()
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.process_time() - process0 < 0.3 and time.monotonic() < deadline:
            time.sleep(0.02)
        process1, policy1 = time.process_time(), policy_cpu_s()
    finally:
        stop.set()
        thread.join()
    assert process1 - process0 >= 0.3  # the helper did burn CPU in this process
    assert policy1 - policy0 < 0.1  # ... which the policy's own time leaves out (/proc counts in 10 ms ticks)


# ----- where it applies -------------------------------------------------------------------------------------
def one_core_busy_budget() -> ThreadBudget:
    """A budget that sees another process keep one of two cores busy all the time, deciding after every call."""
    meter = FakeMeter()
    meter.busy_s = lambda: time.process_time() + time.monotonic()  # type: ignore[method-assign]
    return ThreadBudget(2, window_s=0.0, meter=meter)  # type: ignore[arg-type]


@contextmanager
def threads_seen(policy: torch.nn.Module) -> Iterator[list[tuple[str, int]]]:
    seen: list[tuple[str, int]] = []
    hook = policy.register_forward_pre_hook(lambda *_: seen.append((threading.current_thread().name, torch.get_num_threads())))
    try:
        yield seen
    finally:
        hook.remove()


@pytest.mark.parametrize("prefetch_at", [0, 4])
def test_evaluate_runs_policy_calls_on_the_granted_threads(prefetch_at: int) -> None:
    from twinarm.agents.eval import evaluate

    torch.manual_seed(0)
    policy = make_policy("act", tiny_config("act"), synthetic_stats()).eval()
    budget = one_core_busy_budget()
    with torch_threads(2), threads_seen(policy.model) as seen:
        res = evaluate(policy, "twinarm/SO101-PickCube-v0", n_episodes=1, n_envs=1, max_steps=12,
                       prefetch_at=prefetch_at, thread_budget=budget)  # fmt: skip
        assert torch.get_num_threads() == 2  # restored
    assert res.lengths == [12]
    calls = [(name, n) for name, n in seen[1:]]  # after the warm-up
    assert calls and calls[-1][1] == 1 and budget.granted[1] >= 1
    assert res.threads == dict(budget.granted) and res.to_json()["threads"]["1"] == budget.granted[1]
    if prefetch_at:
        assert all(name.startswith("chunk-prefetch") for name, _ in calls)


@pytest.mark.usefixtures("one_core_busy")
def test_eval_cli_says_when_calls_ran_on_fewer_threads(
    tiny_act_checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: ANN001
) -> None:
    from twinarm.cli.main import main

    ckpt = tiny_act_checkpoint()
    common = ["eval", "--policy", str(ckpt), "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1", "--n-envs", "1",
              "--videos", "0", "--max-steps", "8", "--threads", "2"]  # fmt: skip
    with torch_threads(2):
        assert main([*common, "--out", str(tmp_path / "e1")]) == 0
        out = capsys.readouterr().out
        assert "of 8 policy calls ran on fewer than 2 threads (down to 1): other processes kept cores busy" in out
        assert json.loads((tmp_path / "e1" / "eval_info.json").read_text())["threads"]["1"] >= 1
        assert main([*common, "--no-yield-cores", "--out", str(tmp_path / "e2")]) == 0
        assert "fewer than" not in capsys.readouterr().out
        assert json.loads((tmp_path / "e2" / "eval_info.json").read_text())["threads"] == {}
