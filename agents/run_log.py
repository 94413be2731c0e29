"""A training run's logs: CSV rows (plus TensorBoard scalars when installed) and the learning-curve plot.

`RunLog` keeps every column a row ever brings: online TD-MPC's first rows (random seed steps) carry no
loss yet, and a header fixed by the first row would silently drop the losses that come later.
`plot_run` draws `learning_curve.png` from a run directory's `train_log.csv` and `eval_log.csv`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The curve's file name inside a run directory.
CURVE_PNG = "learning_curve.png"
#: A run directory's CSV logs, each with a `step` column.
LOG_FILES = ("train_log.csv", "eval_log.csv")


class RunLog:
    """CSV rows (and TensorBoard scalars when available) for one run; resumes an existing file.

    `start`: the step the run (re)starts at. Rows after it, and TensorBoard events after it, were written by an
    attempt killed before its next checkpoint; the run writes those steps again, so they are dropped (else the log
    and the learning curve would run backwards)."""

    def __init__(self, path: Path, tb_dir: Path | None, start: int | None = None) -> None:
        self.path = path
        self.fields: list[str] = []
        if start is not None:
            drop_rows_after(path, start)
        if path.exists():
            with path.open(newline="") as f:
                self.fields = next(csv.reader(f), [])
        self.tb = None
        if tb_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(tb_dir), purge_step=None if start is None else start + 1)
            except ImportError:
                self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        """Append `row`; a key no earlier row had becomes a new column (earlier rows leave it empty)."""
        new = [k for k in row if k not in self.fields]
        if new or not self.path.exists():
            self._rewrite(self.fields + new)
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])
        if self.tb is not None:
            step = int(row["step"])
            for k, v in row.items():
                if k != "step" and isinstance(v, int | float):
                    self.tb.add_scalar(f"{self.path.stem}/{k}", v, step)

    def _rewrite(self, fields: list[str]) -> None:
        """The file again under a wider header (written beside it, then renamed: a kill loses no row)."""
        rows = read_rows(self.path) if self.path.exists() else []
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fields, restval="")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)
        self.fields = fields


def drop_rows_after(path: Path, step: int) -> int:
    """Remove the rows of the CSV log `path` whose step is after `step` (a resumed run's: see `RunLog`), rewriting
    it beside itself and renaming (a kill loses nothing); returns how many were dropped (0: the file is untouched)."""
    if not path.exists():
        return 0
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    keep = [r for r in rows if not _after(r.get("step"), step)]
    if len(keep) == len(rows):
        return 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fields, restval="", extrasaction="ignore")
        w.writeheader()
        w.writerows(keep)
    os.replace(tmp, path)
    return len(rows) - len(keep)


def _after(value: str | None, step: int) -> bool:
    try:
        return float(value) > step  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a run's CSV log (empty when it does not exist yet)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def series(rows: Sequence[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows that have a value for `key`."""
    pairs = [(int(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot_run(
    run_dir: Path,
    out: Path | None = None,
    title: str | None = None,
    target: float | None = None,
    final: tuple[int, float, int] | None = None,
    x_label: str = "step",
) -> Path | None:
    """Draw eval success (and, on a second axis, the training loss) against steps; returns the PNG's path,
    or None when there is nothing to draw yet or matplotlib is missing. `target`: a dashed success line;
    `final`: (step, pc_success, episodes) of a separate final evaluation, drawn as a star."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    run_dir = Path(run_dir)
    train_rows, eval_rows = read_rows(run_dir / "train_log.csv"), read_rows(run_dir / "eval_log.csv")
    loss_x, loss_y = series(train_rows, "loss")
    eval_x, eval_y = series(eval_rows, "pc_success")
    if not (loss_x or eval_x):
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    try:
        n_eps = {r.get("n_episodes") for r in eval_rows} - {None, ""}
        label = f"periodic eval ({n_eps.pop()} episodes)" if len(n_eps) == 1 else "periodic eval"
        ax.plot(eval_x, eval_y, marker="o", label=label)
        if final is not None:
            ax.plot([final[0]], [final[1]], marker="*", ms=12, ls="", c="tab:red", label=f"final eval ({final[2]} episodes)")
        if final is not None or eval_x:
            ax.legend(loc="lower right", fontsize=7)
        if target is not None:
            ax.axhline(target, ls="--", c="gray", lw=0.8)
        ax.set_xlabel(x_label)
        ax.set_ylabel("pc_success (%)")
        ax.set_ylim(-2, 102)
        ax.set_title(title or run_dir.name)
        if loss_x:
            ax2 = ax.twinx()
            ax2.plot(loss_x, loss_y, c="tab:orange", lw=0.6, alpha=0.7)
            if min(loss_y) > 0:
                ax2.set_yscale("log")
            ax2.set_ylabel("train loss", color="tab:orange")
        fig.tight_layout()
        out = out or run_dir / CURVE_PNG
        tmp = out.with_name(out.stem + ".tmp.png")
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
    return out
