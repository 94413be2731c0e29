"""Table and learning-curve PNG of an `act_pixels_gpu.sh` run, from the folder its results were unpacked to.

    python benchmarks/act_pixels_report.py benchmarks/results/gpu_h100_2026-11-26
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

#: eval file stem -> (label, which checkpoint: "mid" or "last")
EVALS = {
    "eval_mid_te": ("halfway checkpoint, temporal ensembling", "mid"),
    "eval_last_te": ("last checkpoint, temporal ensembling", "last"),
    "eval_last_chunk": ("last checkpoint, 10 steps per chunk", "last"),
    "eval_last_te_cpu": ("last checkpoint, temporal ensembling, re-run on the CPU", "last"),
}


def load(folder: Path) -> tuple[list[dict[str, str]], dict[str, dict], int]:
    with (folder / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    evals = {stem: json.loads((folder / f"{stem}.json").read_text())["aggregated"]
             for stem in EVALS if (folder / f"{stem}.json").exists()}
    return rows, evals, int(rows[-1]["step"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="unpacked results (train_log.csv, eval_*.json)")
    ap.add_argument("--png", type=Path, default=RESULTS / "policy_act_pixels_curve.png", help="curve to write")
    args = ap.parse_args()
    rows, evals, last = load(args.folder)
    print(f"trained {last} steps in {float(rows[-1]['time_s']):.0f} s; final l1 {float(rows[-1]['l1_loss']):.3f}")
    print("| checkpoint / eval | pc_success | avg_sum_reward | avg_max_reward |\n|---|---|---|---|")
    for stem, agg in evals.items():
        print(f"| {EVALS[stem][0]} | {agg['pc_success']:.0f} % | {agg['avg_sum_reward']:.2f} | {agg['avg_max_reward']:.3f} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for stem, agg in evals.items():
        label, which = EVALS[stem]
        x = last if which == "last" else last // 2
        marker = "o" if "chunk" in stem else "x" if "cpu" in stem else "*"
        ax.plot([x], [agg["pc_success"]], marker=marker, ms=12 if marker == "*" else 7, ls="", label=label)
    ax.set_xlim(0, last * 1.05)
    ax.set_ylim(-2, 102)
    ax.axhline(90, ls="--", c="gray", lw=0.8)
    ax.set_xlabel("gradient steps (batch 64)")
    ax.set_ylabel("pc_success (%, 50 episodes)")
    ax.set_title("ACT on pixels (front + wrist 120x160), SO101-PickCube", fontsize=9)
    ax.legend(loc="lower left", fontsize=6)
    ax2 = ax.twinx()
    ax2.plot([int(r["step"]) for r in rows], [float(r["l1_loss"]) for r in rows], c="tab:orange", lw=0.8, alpha=0.7)
    ax2.set_yscale("log")
    ax2.set_ylabel("train l1 loss", color="tab:orange")
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
