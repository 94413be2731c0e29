"""Ctrl-C in `twinarm train`: the step in flight finishes and is saved, so `--resume` continues from it; it used
to lose every step since the last `--save-freq` checkpoint, silently (bad-input audit B2)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY_ACT = ["--set", "chunk_size=8", "--set", "n_action_steps=8", "--set", "dim_model=32", "--set", "n_heads=2",
            "--set", "dim_feedforward=64", "--set", "n_encoder_layers=1", "--set", "n_vae_encoder_layers=1"]  # fmt: skip


def _steps(path: Path) -> list[int]:
    with path.open(newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def _train(dataset: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "twinarm.cli.main", "train", "--policy", "act", "--dataset", str(dataset),
            "--output-dir", str(out), "--steps", str(steps), "--save-freq", "100000", "--batch-size", "2",
            "--log-freq", "1", "--eval-freq", "0", "--threads", "1", "--no-progress", "--device", "cpu",
            *TINY_ACT, *extra]  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_saves_the_step_it_stopped_at_and_resume_continues(scripted_dataset: Path, tmp_path: Path) -> None:
    """Sent as a terminal sends it, to the whole process group: the DataLoader's workers get it too (the loop
    without workers is the same code, less the workers)."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_train(scripted_dataset, out, 100000, "--num-workers", "2"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ((out / "train_log.csv").exists() and len(_steps(out / "train_log.csv")) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to every process of the group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    stopped = _steps(out / "train_log.csv")[-1]
    assert f"stopped at step {stopped}: checkpoint" in err and "--resume" in err
    assert (out / "checkpoints" / f"{stopped:08d}" / "training_state.pt").is_file()  # --save-freq never came
    done = subprocess.run(_train(scripted_dataset, out, stopped + 2, "--resume"), env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _steps(out / "train_log.csv") == list(range(1, stopped + 3))  # continued at stopped + 1, nothing lost
