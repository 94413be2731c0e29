"""A user's own task and arm, registered from their own package (tests/fixtures/user_package/mytasks, written as
the README shows): `gym.make` of its ids and of Gymnasium's module form, the scripted expert it registers, and the
CLI loop on it — record (spawned workers), dataset check, train, eval with async workers — each finding the package
by the id's namespace; an installed package's `twinarm.plugins` entry point makes its arms known by name. Each runs
in a subprocess, so that the registrations stay out of this test process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "fixtures" / "user_package"
TINY_ACT = ["--set", "dim_model=32", "--set", "n_heads=2", "--set", "dim_feedforward=64", "--set", "n_encoder_layers=1",
            "--set", "n_vae_encoder_layers=1", "--set", "chunk_size=10", "--set", "n_action_steps=10"]  # fmt: skip


def _run(args: list[str], cwd: Path, path: list[Path] = (PACKAGE,)) -> str:  # type: ignore[assignment]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path)), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_a_users_task_and_arm_work_through_gym_make(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import warnings
        warnings.simplefilter("error", UserWarning)  # e.g. the variant's home against its model's keyframe
        import gymnasium as gym
        import numpy as np
        import twinarm
        from twinarm.envs.experts import make_expert

        env = gym.make("mytasks:mytasks/SO101-ReachLow-v0", obs_type="state")  # the module form imports mytasks
        wins = 0
        for seed in range(3):
            obs, info = env.reset(seed=seed)
            expert = make_expert(env)
            for _ in range(60):
                obs, reward, terminated, truncated, info = env.step(expert(obs))
            wins += info["is_success"]
        assert wins == 3, wins
        assert env.spec.max_episode_steps == 60 and truncated
        sim = gym.make("mytasks/SO101Small-ReachLow-v0")
        assert sim.observation_space["pixels"]["front"].shape == (96, 128, 3)
        try:
            twinarm.register_env("so101", "ReachLow", "mytasks:OtherEnv", namespace="mytasks", max_episode_steps=9,
                                 instruction="?")
        except ValueError as exc:
            assert "registered already" in str(exc)
        else:
            raise AssertionError("a second ReachLow was taken")
        print("ok")
    """)
    assert _run(["-c", script], tmp_path).strip().endswith("ok")


def test_the_cli_records_trains_and_evaluates_a_users_task(tmp_path: Path) -> None:
    env_id = "mytasks/SO101Small-ReachLow-v0"  # no import anywhere: the CLI and its workers import `mytasks`
    cli = ["-m", "twinarm.cli.main"]
    out = _run([*cli, "record", "--env", env_id, "--root", "d", "--episodes", "2", "--num-workers", "2",
                "--height", "48", "--width", "64", "--no-progress"], tmp_path)  # fmt: skip
    assert "2 successful" in out and "Touch the point just above the table." in out
    assert "OK" in _run([*cli, "dataset", "check", "d"], tmp_path)
    _run([*cli, "train", "--policy", "act", "--dataset", "d", "--env", env_id, "--output-dir", "run", "--steps", "2",
          "--batch-size", "2", "--eval-freq", "0", "--no-progress", *TINY_ACT], tmp_path)  # fmt: skip
    out = _run([*cli, "eval", "--policy", "run", "--env", env_id, "--episodes", "2", "--n-envs", "2", "--async-envs",
                "--videos", "0", "--out", "e"], tmp_path)  # fmt: skip
    assert (tmp_path / "e" / "eval_info.json").is_file() and "pc_success" in out


def test_an_installed_packages_plugin_entry_point_makes_its_arm_and_ids_known(tmp_path: Path) -> None:
    """`[project.entry-points."twinarm.plugins"] mytasks = "mytasks"` in a package's pyproject, as installed."""
    dist = tmp_path / "site" / "mytasks-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mytasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[twinarm.plugins]\nmytasks = mytasks\n")
    script = "from twinarm.arms import get_arm; print(get_arm('so101_small').display_name)"
    assert _run(["-c", script], tmp_path, [tmp_path / "site", PACKAGE]).strip() == "SO-101 (96x128 cameras)"
    listed = _run(["-m", "twinarm.cli.main", "envs", "--real"], tmp_path, [tmp_path / "site", PACKAGE])
    assert "mytasks/SO101Small-ReachLow-v0" in listed and "mytasks/SO101-ReachLow-Real-v0" in listed


def test_a_users_spec_whose_home_is_not_its_models_keyframe_is_warned() -> None:
    """Sim episodes start at the model's keyframe, real eval episodes at the spec's home: a variant that moved one
    (a wider jaw through `gripper_span`) started the two arms apart, silently."""
    import dataclasses

    import pytest

    from twinarm.arms import SO101, get_arm
    from twinarm.envs.physics import ArmPhysics

    moved = dataclasses.replace(SO101, name="so101_moved", model="so101", home=(*SO101.home[:5], 0.9))
    with pytest.warns(UserWarning, match="is not the model's home keyframe"):
        ArmPhysics.from_arm(moved)
    with pytest.raises(TypeError, match="an arm's name or an ArmSpec"):
        get_arm(3)  # type: ignore[arg-type]
