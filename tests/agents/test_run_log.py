"""A run's CSV log keeps columns that appear after its first row, survives a resume, and plots."""

from __future__ import annotations

import csv
from pathlib import Path

from twinarm.agents.run_log import CURVE_PNG, RunLog, plot_run, read_rows, series


def test_new_columns_widen_the_header_and_keep_earlier_rows(tmp_path: Path) -> None:
    path = tmp_path / "train_log.csv"
    log = RunLog(path, None)
    log.write({"step": 100, "episode_return": 1.5})
    log.write({"step": 200, "episode_return": 2.5, "loss": 0.25})
    RunLog(path, None).write({"step": 300, "loss": 0.125, "q_loss": 0.5})  # a resumed run appends
    with path.open(newline="") as f:
        assert next(csv.reader(f)) == ["step", "episode_return", "loss", "q_loss"]
    rows = read_rows(path)
    assert [r["step"] for r in rows] == ["100", "200", "300"]
    assert [r["loss"] for r in rows] == ["", "0.25", "0.125"]
    assert rows[0]["episode_return"] == "1.5" and rows[2]["episode_return"] == ""
    assert series(rows, "loss") == ([200, 300], [0.25, 0.125])
    assert not list(tmp_path.glob("*.tmp"))


def test_plot_run_draws_loss_and_success(tmp_path: Path) -> None:
    assert plot_run(tmp_path) is None  # nothing logged yet
    for step, loss in ((10, 1.0), (20, 0.5), (30, 0.2)):
        RunLog(tmp_path / "train_log.csv", None).write({"step": step, "loss": loss})
    RunLog(tmp_path / "eval_log.csv", None).write({"step": 30, "pc_success": 40.0, "n_episodes": 5})
    out = plot_run(tmp_path, title="act on SO101-PickCube-v0", target=90.0, final=(30, 50.0, 50))
    assert out == tmp_path / CURVE_PNG
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
