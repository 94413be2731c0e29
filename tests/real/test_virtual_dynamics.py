"""A virtual arm served with a dynamics file (`twinarm virtual-arm --dynamics`): its joints move as the sim env
with that file moves them, latency included, so the measure-fit-check loop can be rehearsed without hardware."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.envs.dynamics import ArmDynamics
from twinarm.real.virtual.serve import make_backend

DYNAMICS = ArmDynamics("so101", {n: {"kp": 9.0, "damping": 1.2} for n in SO101.joint_names}, action_delay_steps=2)


@pytest.mark.parametrize("task", [None, "Reach"])
def test_the_backend_follows_targets_as_the_sim_env_with_the_same_file(task: str | None) -> None:
    backend = make_backend(SO101, task=task, seed=0, dynamics=DYNAMICS.to_dict())
    env = gym.make("twinarm/SO101-Reach-v0", obs_type="state", dynamics=DYNAMICS).unwrapped
    env.reset(seed=0, options={"joints": SO101.home_pose})
    backend.move_to(SO101.home_pose)
    rng = np.random.default_rng(0)
    targets = SO101.home_pose + rng.uniform(-0.4, 0.4, size=(12, SO101.dof)) * ~SO101.gripper_mask
    moved = []
    for k, q in enumerate(targets):
        backend.set_targets(q)
        backend.set_targets(q)  # written twice within one period (a realtime loop can): still one queued target
        backend.step()
        obs, *_ = env.step(q.astype(np.float32))
        assert np.allclose(backend.joint_positions(), obs["agent_pos"], atol=1e-6), k
        moved.append(np.abs(backend.physics.targets() - SO101.home_pose).max())
    assert max(moved[:2]) < 1e-9 < moved[2]  # two control steps of latency, then the servos take the targets


def test_without_a_file_the_model_is_served_as_it_is() -> None:
    plain, soft = make_backend(SO101), make_backend(SO101, dynamics=DYNAMICS.to_dict())
    for b in (plain, soft):
        b.move_to(SO101.home_pose)
        for _ in range(4):
            b.set_targets(SO101.home_pose + 0.3 * ~SO101.gripper_mask)
            b.step()
    assert plain.delay_steps == 0 and soft.delay_steps == 2
    assert np.abs(plain.joint_positions() - SO101.home_pose).max() > np.abs(soft.joint_positions() - SO101.home_pose).max()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--leader --dynamics {file}", "--dynamics sets a MuJoCo follower's parameters"),
        ("--backend memory --dynamics {file}", "--dynamics sets a MuJoCo follower's parameters"),
    ],
)
def test_cli_refuses_dynamics_where_there_is_no_physics(flags: str, message: str, tmp_path: Path, capsys) -> None:
    path = DYNAMICS.save(tmp_path / "dyn.json")
    with pytest.raises(SystemExit) as info:
        main(["virtual-arm", "--arm", "so101", *flags.format(file=path).split()])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_cli_refuses_another_arms_file(tmp_path: Path) -> None:
    path = ArmDynamics("koch", {}).save(tmp_path / "koch.json")
    with pytest.raises(SystemExit, match="fitted on arm 'koch', not 'so101'"):
        main(["virtual-arm", "--arm", "so101", "--dynamics", str(path)])
