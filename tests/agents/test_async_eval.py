"""Parallel evaluation in worker processes (`evaluate(use_async=True)`, `eval --async-envs`) after the parent has
rendered: forked workers inherited the parent's EGL state and deadlocked in their first reset, the parent waiting
for ever; they now start from a forkserver. Run in a subprocess, so a regression fails by timeout, not by hanging
the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import gymnasium as gym
import twinarm
from twinarm.agents.eval import evaluate
from twinarm.agents.features import Feature
from twinarm.agents.registry import make_policy

if __name__ == "__main__":
    env = gym.make("twinarm/SO101-Reach-v0", image_size=(48, 64))  # the parent renders (a GL context) first
    env.reset(seed=0)
    env.close()
    inputs = {"observation.state": Feature("STATE", (6,)), "observation.images.front": Feature("VISUAL", (3, 48, 64))}
    policy = make_policy("act", input_features=inputs, output_features={"action": Feature("ACTION", (6,))},
                         chunk_size=4, n_action_steps=4, dim_model=16, n_heads=2, dim_feedforward=32,
                         n_encoder_layers=1, n_vae_encoder_layers=1, latent_dim=4)
    result = evaluate(policy, "twinarm/SO101-Reach-v0", n_episodes=2, n_envs=2, max_steps=3, use_async=True)
    print("episodes", result.aggregated["n_episodes"])
"""


def test_async_envs_start_after_the_parent_has_rendered(tmp_path: Path) -> None:
    script = tmp_path / "async_eval.py"  # a file: forkserver workers import the main module by its path
    script.write_text(SCRIPT)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "episodes 2" in run.stdout
