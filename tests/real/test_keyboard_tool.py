"""`teleop --keyboard tool`: key presses move the gripper's tip by inverse kinematics; a person's key sequence
(worked out from where the cube lies, as one would from `--view`) picks the cube in sim; targets stay reachable
and above the table; the CLI records it from a terminal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest
from real_helpers import CliRun

import twinarm  # noqa: F401  (registers the ids)
from twinarm.arms import ALOHA, SO101
from twinarm.cli.keyboard_tool import FLOOR_Z, REACH_TOLERANCE_M, KeyboardToolTeleop
from twinarm.cli.teleop_sim import SimFollower
from twinarm.datasets_io.reader import column_to_numpy
from twinarm.envs.experts import GRASP_OFFSET, grasp_yaw

pytestmark = pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")

SIM = "twinarm/SO101-PickCube-v0"
STEP = 0.01  # metres per move key, radians / 10 per roll key (the defaults)


def _setup(seed: int) -> tuple[SimFollower, KeyboardToolTeleop]:
    env = gym.make(SIM, obs_type="pixels_agent_pos", image_size=(48, 64))
    follower = SimFollower(env, max_relative_target=0.2, pace=False)
    keys = KeyboardToolTeleop(SO101, follower.joint_positions())
    follower.on_reset.append(keys.hold)
    follower.reset(seed=seed)
    return follower, keys


def _press(follower: SimFollower, keys: KeyboardToolTeleop, key: str, times: int, steps: int = 30) -> None:
    for _ in range(times):
        keys.press(key)
    for _ in range(steps):  # a second of the arm following
        follower.step(keys.get_action())


def _tool(follower: SimFollower, keys: KeyboardToolTeleop) -> np.ndarray:
    """Where the sim arm's tool point is (forward kinematics of its joints)."""
    return keys.ik.tcp_pose(follower.joint_positions()[:5])[0]


@pytest.mark.parametrize("seed", [0, 3])
def test_key_presses_pick_the_cube(seed: int) -> None:
    follower, keys = _setup(seed)
    task, physics = follower.env.unwrapped.task, follower.env.unwrapped.physics
    cube = task.cube_pose(physics)
    grasp_z = cube[2] + GRASP_OFFSET

    def towards(target: float, now: float, up: str, down: str) -> None:
        _press(follower, keys, up if target > now else down, round(abs(target - now) / STEP))

    _press(follower, keys, "o", 1)
    towards(grasp_z + 0.05, keys.pos[2], "r", "f")  # above the cube ...
    towards(cube[0], keys.pos[0], "w", "s")
    towards(cube[1], keys.pos[1], "a", "d")
    yaw = grasp_yaw(cube[3:7], cube[:2])
    _press(follower, keys, "q" if yaw > keys.yaw else "e", round(abs(yaw - keys.yaw) / 0.1))  # jaws across it
    assert np.abs(_tool(follower, keys)[:2] - cube[:2]).max() < 0.012  # within a key's centimetre of the cube
    assert not follower.success
    towards(grasp_z, keys.pos[2], "r", "f")  # ... down, close, up
    _press(follower, keys, "c", 1)
    _press(follower, keys, "r", 6)
    assert follower.success and task.cube_height(physics) > 0.05
    follower.close()


def test_targets_stay_reachable_and_above_the_table() -> None:
    follower, keys = _setup(0)
    _press(follower, keys, "f", 40)  # 40 cm down asked for
    assert keys.pos[2] == pytest.approx(FLOOR_Z)
    assert _tool(follower, keys)[2] > FLOOR_Z - 0.005  # not pressed into the table
    _press(follower, keys, "w", 100)  # a metre forward asked for: it goes as far as the arm reaches
    reached, _ = keys.ik.tcp_pose(keys.q[:5])
    assert np.linalg.norm(reached - keys.pos) <= REACH_TOLERANCE_M
    assert 0.3 < keys.pos[0] < 0.6
    follower.reset(seed=1)  # a new episode: the target is the tool where the reset put it
    np.testing.assert_allclose(keys.pos, _tool(follower, keys), atol=1e-9)
    follower.close()


def test_two_arm_set_ups_are_refused() -> None:
    with pytest.raises(ValueError, match="one arm with one gripper; aloha has 2 grippers"):
        KeyboardToolTeleop(ALOHA, ALOHA.home_pose)


def test_cli_keyboard_tool_records_in_sim_from_a_terminal(terminal, tmp_path: Path, capsys, monkeypatch) -> None:
    master, stream = terminal
    monkeypatch.setattr("sys.stdin", stream)
    root = tmp_path / "kb"
    argv = ["teleop", "--env", SIM, "--keyboard", "tool", "--record", str(root), "--episodes", "1",
            "--episode-time", "60", "--image-size", "48", "64"]  # fmt: skip
    run = CliRun(argv, capsys)
    run.out.wait_for("recording episode 1/1")
    time.sleep(1.0)  # the arm settles at its start
    os.write(master, b"rrrc")  # 3 cm up, close the gripper
    time.sleep(2.0)
    os.write(master, b"\x1b")  # Esc: the episode ends now and is kept
    text = run.finish("teleop --keyboard tool")
    assert "keys: tool: w/s forward/back" in text and "saved 1 episode(s) this run" in text
    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    action = SO101.from_lerobot(column_to_numpy(table["action"], "action"))
    state = SO101.from_lerobot(column_to_numpy(table["observation.state"], "observation.state"))
    assert action[0, 5] == pytest.approx(SO101.home_pose[5], abs=1e-3)  # the gripper as the sim reset left it ...
    assert action[-1, 5] == pytest.approx(0.0, abs=1e-3)  # ... then told to close
    ik = KeyboardToolTeleop(SO101, SO101.home_pose).ik
    rise = ik.tcp_pose(state[-1, :5])[0][2] - ik.tcp_pose(state[0, :5])[0][2]
    assert rise == pytest.approx(0.03, abs=0.008)
