"""Online (TD-MPC) training honours --log-freq: a train_log.csv row every N env steps (it wrote one per episode)."""

from __future__ import annotations

from pathlib import Path

import twinarm  # noqa: F401
from twinarm.agents.run_log import read_rows
from twinarm.cli.main import main

REACH = "twinarm/SO101-Reach-v0"  # 100-step episodes
TINY_TDMPC = ["--set", "mlp_dim=32", "--set", "latent_dim=16", "--set", "n_gaussian_samples=16", "--set", "n_pi_samples=4",
              "--set", "n_elites=4", "--set", "cem_iterations=2", "--set", "horizon=3"]  # fmt: skip


def test_rows_every_log_freq_env_steps_with_the_episodes_that_ended(tmp_path: Path) -> None:
    out = tmp_path / "tdmpc"
    rc = main(["train", "--policy", "tdmpc", "--env", REACH, "--obs-type", "state", "--output-dir", str(out),
               "--steps", "250", "--seed-steps", "110", "--batch-size", "16", "--save-freq", "250", "--eval-freq", "0",
               "--log-freq", "50", "--threads", "1", "--no-progress", *TINY_TDMPC])  # fmt: skip
    assert rc == 0
    rows = read_rows(out / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [50, 100, 150, 200, 250]
    assert [int(r["episodes"]) for r in rows] == [0, 1, 1, 2, 2]
    # Episode stats where an episode ended since the previous row (steps 100 and 200), empty elsewhere.
    assert [r["episode_return"] != "" for r in rows] == [False, True, False, True, False]
    assert 0.0 <= float(rows[1]["episode_success"]) <= 1.0
    assert rows[1]["loss"] == "" and float(rows[2]["loss"]) > 0  # updates start after the 110 seed steps
