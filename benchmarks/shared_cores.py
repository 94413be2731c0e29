"""Policy inference and training steps while another process keeps a core busy: fixed intra-op threads
(LeRobot, and twinarm's `--no-yield-cores`) against twinarm's thread budget (`agents.thread_budget`: `twinarm
eval`'s default, `twinarm train --yield-cores`).

torch's OpenMP threads meet at a barrier after every op; when another process holds one of their cores, each
op waits for the descheduled thread. The budget gives each call only the cores other processes left idle
while the earlier calls ran. Each side is a live worker process at 2 torch threads with `policy_speed.py`'s
networks (LeRobot's defaults, random init; inference: ACT's full chunk, TD-MPC's CEM plan; training: one
step at batch 8 with AdamW), timed turn by turn: first
with the cores to themselves, then while a spinning process (`while True: pass`) runs beside them. The first
calls of each condition are warm-up (the budget decides from the calls before). Printed: median and max per
call, busy over quiet per side, and each side's busy median over LeRobot's.

    python benchmarks/shared_cores.py [--policies act,tdmpc] [--kinds infer,train] [--calls 6]
                                                                    # -> benchmarks/results/shared_cores.txt
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from policy_speed import DEFAULT_LEROBOT, POLICIES, ROOT, THREADS, Worker, cpu_label, fmt_s, serve  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "shared_cores.txt"
SIDES = ("lerobot", "twinarm-fixed", "twinarm-yield")
LABELS = {"lerobot": "LeRobot (fixed 2 threads)", "twinarm-fixed": "twinarm --no-yield-cores",
          "twinarm-yield": "twinarm (yields cores)"}
WARMUP = 2


def setup(side: str, name: str, precision: str) -> tuple[int, Any, Any]:
    """The worker's policy: its timed training step and inference call."""
    import policy_speed

    if side == "lerobot":
        return policy_speed.lerobot_setup(name, precision)
    params, train, infer, *_ = policy_speed.twinarm_setup(name, precision)
    if side == "twinarm-fixed":
        return params, train, infer
    from twinarm.agents.thread_budget import ThreadBudget

    budget = ThreadBudget(THREADS)  # one per process, as in `twinarm train` and `twinarm eval`

    def on_budget(fn: Any) -> Any:
        def call() -> None:
            with budget.applied():
                fn()

        return call

    return params, on_budget(train), on_budget(infer)


def spin() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(name: str, kind: str, sides: dict[str, str], calls: int,
            warmup: int = WARMUP) -> dict[str, dict[str, list[float]]]:
    """Seconds per `kind` call ("infer" or "train") of each side, quiet and beside a spinning process."""
    workers = {side: Worker(python, side, name, script=Path(__file__).resolve()) for side, python in sides.items()}
    times: dict[str, dict[str, list[float]]] = {side: {"quiet": [], "busy": []} for side in workers}
    try:
        for condition in ("quiet", "busy"):
            hog = spin() if condition == "busy" else None
            try:
                time.sleep(0.5 if hog else 0)
                for i in range(warmup + calls):
                    for side, w in workers.items():
                        t = w.run(kind, 1)
                        if t is None:
                            raise RuntimeError(f"{side} worker for {name} failed: {w.info.get('error')}")
                        if i >= warmup:
                            times[side][condition].append(t)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    finally:
        for w in workers.values():
            w.close()
    return times


def table(results: dict[tuple[str, str], dict[str, dict[str, list[float]]]]) -> str:
    rows = ["| policy | call | side | quiet median | beside a busy process: median | max | busy / quiet | "
            "busy median / LeRobot's |", "|---|---|---|---|---|---|---|---|"]
    for (name, kind), sides in results.items():
        ref = statistics.median(sides["lerobot"]["busy"]) if "lerobot" in sides else None
        what = "inference" if kind == "infer" else "training step"
        for side, t in sides.items():
            q, b = statistics.median(t["quiet"]), statistics.median(t["busy"])
            vs = f"{b / ref:.2f}x" if ref else "-"
            rows.append(f"| {name} | {what} | {LABELS[side]} | {fmt_s(q)} | {fmt_s(b)} | {fmt_s(max(t['busy']))} | "
                        f"{b / q:.2f}x | {vs} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=SIDES, default=None, help=argparse.SUPPRESS)
    p.add_argument("--policy", choices=POLICIES, default=None, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--policies", default="act,tdmpc", help="comma-separated, from " + ", ".join(POLICIES))
    p.add_argument("--kinds", default="infer,train", help="comma-separated: infer (a chunk or plan), train (a step)")
    p.add_argument("--calls", type=int, default=6, help="timed calls per side and condition (after warm-up)")
    p.add_argument("--warmup", type=int, default=WARMUP,
                   help="untimed calls per side and condition first (the thread budget learns from them)")
    p.add_argument("--lerobot-python", type=Path, default=DEFAULT_LEROBOT, help="python of a venv with lerobot")
    p.add_argument("--out", type=Path, default=RESULTS, help="results file (new runs go on top)")
    a = p.parse_args()
    if a.worker:
        serve(lambda name, precision, _device: setup(a.worker, name, precision), a.policy, a.precision)
        return
    names = [n.strip() for n in a.policies.split(",") if n.strip()]
    bad = [n for n in names if n not in POLICIES]
    if bad:
        p.error(f"--policies: unknown {', '.join(bad)} (choose from {', '.join(POLICIES)})")
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    if not kinds or any(k not in ("infer", "train") for k in kinds):
        p.error(f"--kinds: {a.kinds!r}, choose from infer, train")
    sides = {side: sys.executable for side in SIDES}
    if not a.lerobot_python.exists():
        print(f"LeRobot not found at {a.lerobot_python}: timing twinarm only", flush=True)
        del sides["lerobot"]
    else:
        sides["lerobot"] = str(a.lerobot_python)
    started, load = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0]
    results = {}
    for name in names:
        for kind in kinds:
            results[name, kind] = t = measure(name, kind, sides, a.calls, a.warmup)
            print(f"{name} {kind}: " + ", ".join(f"{s} {c} {[round(x * 1e3) for x in v]} ms"
                                                 for s, per in t.items() for c, v in per.items()), flush=True)
    header = (f"# {started}, load average {load:.2f} before ({os.cpu_count()} cores, {cpu_label()}); policy calls at "
              f"{THREADS} torch threads ({', '.join(kinds)}), quiet and beside one spinning process; {a.calls} calls per side and "
              f"condition after {a.warmup} warm-up calls, turn by turn\n")
    text = header + table(results) + "\n"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    earlier = a.out.read_text() if a.out.exists() else ""
    a.out.write_text(text + ("\n" + earlier if earlier else ""))
    print(text)


if __name__ == "__main__":
    main()
