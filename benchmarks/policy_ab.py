"""Paired A/B of one policy's benchmark step: agents modules from a git revision against the working tree.

Two live worker processes build the same policy as `policy_speed.py` (same batch, threads and seed); worker
"old" first replaces the named `twinarm.agents` modules with their text at `--rev`. Steps alternate between
the two (old, new, new, old, ...), so load drift hits both alike, and the median of the per-round time ratios
is printed: the number behind the "paired A/B" figures of benchmarks/policy_speed.md. Two identical workers
give 0.98-0.99 here, so a change under ~2 % is noise.

    python benchmarks/policy_ab.py --rev HEAD~1 --modules layers,backbone --rounds 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(rev: str | None, modules: list[str], policy: str, kind: str, precision: str) -> None:
    """Build the policy (from `rev`'s modules when given), then time one step per input line."""
    if rev is not None:
        import importlib

        for name in modules:  # in order: later modules import the replaced earlier ones; "tdmpc.fused" works
            path = name.replace(".", "/")
            src = subprocess.check_output(["git", "-C", str(ROOT), "show", f"{rev}:agents/{path}.py"])
            parent_name, _, leaf = f"twinarm.agents.{name}".rpartition(".")
            parent = importlib.import_module(parent_name)
            mod = types.ModuleType(f"twinarm.agents.{name}")
            mod.__file__ = f"{rev}:agents/{path}.py"
            sys.modules[mod.__name__] = mod
            exec(compile(src, mod.__file__, "exec"), mod.__dict__)
            setattr(parent, leaf, mod)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import policy_speed

    _, train_once, infer, infer_int8, _ = policy_speed.twinarm_setup(policy, precision)
    fn = {"train": train_once, "infer": infer, "infer-int8": infer_int8}[kind]
    for _ in range(2):
        fn()
    print("ready", flush=True)
    for _ in sys.stdin:
        t = time.perf_counter()
        fn()
        print(time.perf_counter() - t, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", default="HEAD", help="git revision of the 'old' side (default HEAD)")
    p.add_argument(
        "--modules", default="layers,backbone", help="agents modules taken from --rev, in import order"
    )
    p.add_argument("--policy", choices=("act", "diffusion", "tdmpc"), default="act")
    p.add_argument("--kind", choices=("train", "infer", "infer-int8"), default="train")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                   help="bf16: both workers under the CPU's bf16 autocast, as policy_speed.py --precision bf16")
    p.add_argument(
        "--new-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the tree's worker only (repeatable); with --modules '' this A/Bs a "
        "process setting on identical code",
    )
    p.add_argument("--worker", choices=("old", "new"), help=argparse.SUPPRESS)
    a = p.parse_args()
    modules = [m for m in a.modules.split(",") if m]
    if a.worker:
        worker(a.rev if a.worker == "old" else None, modules, a.policy, a.kind, a.precision)
        return
    base = [
        sys.executable,
        __file__,
        "--rev",
        a.rev,
        "--modules",
        a.modules,
        "--policy",
        a.policy,
        "--kind",
        a.kind,
        "--precision",
        a.precision,
    ]
    envs = {"old": dict(os.environ), "new": {**os.environ, **dict(kv.split("=", 1) for kv in a.new_env)}}
    procs = {
        side: subprocess.Popen(
            base + ["--worker", side], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=envs[side]
        )
        for side in ("old", "new")
    }
    times: dict[str, list[float]] = {"old": [], "new": []}
    try:
        for side, proc in procs.items():
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit(f"worker {side!r} failed to start (see its traceback above)")
        for r in range(a.rounds):
            for side in ("old", "new") if r % 2 == 0 else ("new", "old"):
                proc = procs[side]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
                times[side].append(float(proc.stdout.readline()))
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait()
    ratio = statistics.median(n / o for n, o in zip(times["new"], times["old"], strict=True))
    print(
        f"{a.policy} {a.kind}{' bf16' if a.precision == 'bf16' else ''}, {a.rounds} rounds: {a.rev} median {statistics.median(times['old']):.3f} s "
        f"(min {min(times['old']):.3f}), tree median {statistics.median(times['new']):.3f} s "
        f"(min {min(times['new']):.3f}); median paired ratio tree/{a.rev} {ratio:.3f}"
    )


if __name__ == "__main__":
    main()
