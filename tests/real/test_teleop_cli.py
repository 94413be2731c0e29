"""Teleoperation (leader arm and keyboard), the real CLI commands, find-port."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from real_helpers import bounded, calibrate_by_hand

from twinarm.arms import SO101, get_arm
from twinarm.cli.main import main
from twinarm.real.env import RealArmEnv
from twinarm.real.ports import find_port
from twinarm.real.teleop import KeyboardTeleop, LeaderArm, leader_inverted_joints, leader_spec, teleoperate
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

TICK = 2 * np.pi / 4096


def test_leader_follower_teleop() -> None:
    leader_arm, follower_arm = VirtualArm(SO101), VirtualArm(SO101, step_mode="lockstep")
    with PtyServer(VirtualBus(leader_arm)) as lp, PtyServer(VirtualBus(follower_arm)) as fp:
        leader = LeaderArm(SO101, lp.port, leader_arm.ideal_calibration())
        follower = RealArmEnv(
            arm=SO101,
            port=fp.port,
            calibration=follower_arm.ideal_calibration(),
            cameras={},
            max_relative_target=0.5,
            pace=False,
        )
        try:
            pose = np.array([0.3, -0.4, 0.5, -0.2, 1.0, 0.6])
            leader_arm.move_to(pose)  # a hand moves the leader
            lines = []
            stats = teleoperate(
                leader, follower, max_steps=30, report=lambda s: lines.append(s.line()), report_every_s=0.0
            )
            assert stats.steps == 30 and stats.rate_hz > 0 and "Hz" in lines[-1]
            np.testing.assert_allclose(follower_arm.joint_positions(), pose, atol=2 * TICK)
            assert not any(s.torque_on for s in leader_arm.servos)  # the leader stays limp
        finally:
            leader.close()
            follower.close()


@pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")  # timing is not checked here
@pytest.mark.parametrize("arm", ["so101", "koch"])
def test_cli_teleop_one_leader_one_follower(arm: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`twinarm teleop` end to end on two virtual arms (Koch's leader has its own servo model, XL330-M077, and
    a mirrored elbow)."""
    spec = get_arm(arm)
    leader_arm = VirtualArm(leader_spec(spec), mirrored=leader_inverted_joints(spec))
    follower_arm = VirtualArm(spec, step_mode="lockstep")
    pose = np.clip(np.array([0.3, -0.4, 0.5, -0.2, 1.0, 0.6]), spec.lower, spec.upper)
    leader_arm.move_to(pose)
    with PtyServer(VirtualBus(leader_arm)) as lp, PtyServer(VirtualBus(follower_arm)) as fp:
        f_cal = follower_arm.ideal_calibration().save(tmp_path / "f.json")
        l_cal = leader_arm.ideal_calibration().save(tmp_path / "l.json")
        argv = ["teleop", "--arm", arm, "--port", fp.port, "--calibration", str(f_cal), "--max-steps", "30"]
        argv += ["--leader-port", lp.port, "--leader-calibration", str(l_cal), "--max-relative-target", "0.5"]
        assert bounded(lambda: main(argv), timeout_s=60) == 0
    out = capsys.readouterr().out
    assert f"leader arm {lp.port} -> follower arm {fp.port}" in out and "Hz" in out and "steps 30" in out
    np.testing.assert_allclose(follower_arm.joint_positions(), pose, atol=2 * TICK)
    assert not any(s.torque_on for s in follower_arm.servos + leader_arm.servos)


def test_keyboard_teleop() -> None:
    kb = KeyboardTeleop(SO101, np.zeros(6), step=0.1)
    for key in "qqwa":
        kb.press(key)
    np.testing.assert_allclose(kb.get_action(), [0.1, 0.1, 0, 0, 0, 0])
    for _ in range(100):
        kb.press("h")
    assert kb.get_action()[5] == 0.0  # clamped to the gripper limit
    assert "shoulder_pan: q/a" in KeyboardTeleop.help_text(SO101)


def test_find_port_by_unplugging() -> None:
    states = [["/dev/ttyACM0", "/dev/ttyUSB0"], ["/dev/ttyUSB0"]]
    assert find_port(lambda _: None, lambda: states.pop(0)) == "/dev/ttyACM0"
    with pytest.raises(RuntimeError, match="no port disappeared"):
        find_port(lambda _: None, lambda: ["/dev/ttyUSB0"])


def test_cli_commands_are_registered(capsys: pytest.CaptureFixture) -> None:
    for cmd in ("calibrate", "setup-motors", "find-port", "teleop", "virtual-arm"):
        with pytest.raises(SystemExit) as info:
            main([cmd, "--help"])
        assert info.value.code == 0
        assert cmd in capsys.readouterr().out


def test_cli_setup_motors_one_motor(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    arm = VirtualArm(SO101)
    arm.servos[:] = arm.servos[5:]  # only the gripper's motor is connected...
    arm._joint_of = {id(arm.servos[0]): 5}
    arm.servos[0].set("ID", 1)  # ... and it is factory-fresh (id 1)
    arm.servos[0].motor_id = 1
    with PtyServer(VirtualBus(arm)) as server:
        assert main(["setup-motors", "--arm", "so101", "--port", server.port, "--motor", "gripper"]) == 0
    assert arm.servos[0].motor_id == 6
    assert "gripper: id 1" in capsys.readouterr().out


def test_cli_setup_motors_refuses_a_baud_the_sdk_cannot_open_before_touching_the_motor(
    capsys: pytest.CaptureFixture,
) -> None:
    arm = VirtualArm(SO101)
    arm.servos[:] = arm.servos[5:]
    arm._joint_of = {id(arm.servos[0]): 5}
    arm.servos[0].set("ID", 1)
    arm.servos[0].motor_id = 1
    with PtyServer(VirtualBus(arm)) as server:  # STS3215 takes 76800, the Feetech SDK cannot open it
        argv = ["setup-motors", "--arm", "so101", "--port", server.port, "--motor", "gripper", "--baud", "76800"]
        assert main(argv) == 1
    assert "cannot be reached at 76800 baud; choose one of [38400" in capsys.readouterr().err
    assert arm.servos[0].motor_id == 1 and arm.servos[0].baud == 1_000_000  # untouched


def test_cli_virtual_arm_writes_calibration(tmp_path: Path) -> None:
    from twinarm.real.virtual.serve import make_virtual_arm

    server = make_virtual_arm("so101", backend="memory", calibrated=True, step_mode="manual")
    try:
        cal = server.bus.arm.ideal_calibration()
        path = cal.save(tmp_path / "c.json")
        assert set(json.loads(path.read_text())) == set(SO101.joint_names)
        assert server.bus.servo("gripper").get("Homing_Offset") == cal["gripper"].homing_offset
    finally:
        server.stop()


@pytest.mark.parametrize("argv", [["calibrate", "--arm", "nope", "--port", "x"],
                                  ["setup-motors", "--arm", "nope", "--port", "x"],
                                  ["virtual-arm", "--arm", "nope"], ["virtual-arm", "--task", "Nope"]])  # fmt: skip
def test_unknown_arm_or_task_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "known arms" in err or "no sim env for arm 'so101' and task 'Nope'" in err


def test_keyboard_teleop_needs_a_terminal(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:  # pytest's stdin is not a terminal
        main(["teleop", "--arm", "so101", "--port", "/dev/null", "--calibration", "c.json", "--keyboard"])
    assert info.value.code == 2 and "--keyboard reads keys from an interactive terminal" in capsys.readouterr().err


def test_find_port_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("twinarm.real.ports.serial_ports", lambda: ["/dev/ttyUSB0"])
    monkeypatch.setattr("builtins.input", lambda *_: "")
    assert main(["find-port"]) == 1
    assert "no port disappeared" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")  # timing is not checked here
def test_cli_koch_leader_calibration_inverts_the_mirrored_elbow_and_teleop_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Koch leader's elbow_flex servo is mounted mirrored to the follower's. `calibrate --arm koch --leader`
    gives it drive_mode 1, set in the servo (as LeRobot's koch_leader does), so teleop moves the follower's
    elbow the way the hand moved the leader's; with drive_mode 0 the follower's elbow went the other way.
    The leader's servos are left at their factory 57600 baud: --baud / --leader-baud reach them."""
    spec = get_arm("koch")
    mirrored = leader_inverted_joints(spec)
    assert mirrored == ("elbow_flex",)
    leader_arm = VirtualArm(leader_spec(spec), mirrored=mirrored, baud=57_600)
    out = tmp_path / "koch_leader.json"
    argv = ["calibrate", "--arm", "koch", "--leader", "--baud", "57600", "--out", str(out)]
    rc, _ = calibrate_by_hand(leader_arm, argv, monkeypatch)
    assert rc == 0
    saved = json.loads(out.read_text())
    assert {n: m["drive_mode"] for n, m in saved.items()} == {n: int(n == "elbow_flex") for n in spec.joint_names}

    follower_arm = VirtualArm(spec, step_mode="lockstep")
    pose = np.clip(np.array([0.3, -0.4, 0.9, -0.2, 1.0, 0.6]), spec.lower, spec.upper)
    leader_arm.move_to(pose)
    with PtyServer(VirtualBus(leader_arm)) as lp, PtyServer(VirtualBus(follower_arm)) as fp:
        f_cal = follower_arm.ideal_calibration().save(tmp_path / "f.json")
        argv = ["teleop", "--arm", "koch", "--port", fp.port, "--calibration", str(f_cal), "--max-steps", "40"]
        argv += ["--leader-port", lp.port, "--leader-calibration", str(out), "--leader-baud", "57600"]
        assert bounded(lambda: main([*argv, "--max-relative-target", "0.5"]), timeout_s=60) == 0
    # symmetric limits: the recorded mid-range is the joint's zero, so the leader reads q (the hand swept the
    # gripper over 0.1..0.9 only, so its 0..1 differs from the follower's)
    sym = np.isclose(-spec.lower, spec.upper) & ~spec.gripper_mask
    assert sym[spec.joint_names.index("elbow_flex")]
    np.testing.assert_allclose(follower_arm.joint_positions()[sym], pose[sym], atol=4 * TICK)


def test_the_shown_loop_rate_leaves_out_episode_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A recording's pause between episodes (saving, the reset period) is no loop period: without `pause` the
    next 300 steps showed ~25 Hz for a loop that kept 30."""
    from types import SimpleNamespace

    from twinarm.real import teleop

    clock = iter([0.0, 0.01, 0.02, 5.0, 5.01, 5.02])
    monkeypatch.setattr(teleop, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    stats = teleop.LoopStats()
    for k in range(6):
        if k == 3:
            stats.pause()
        stats.tick()
    assert stats.steps == 6 and stats.rate_hz == pytest.approx(100.0) and stats.median_rate_hz == pytest.approx(100.0)


def ticked(monkeypatch: pytest.MonkeyPatch, periods_ms: list[float]) -> Any:
    """LoopStats after a loop whose steps took `periods_ms`, on a fake clock."""
    from types import SimpleNamespace

    from twinarm.real import teleop

    clock = iter(np.concatenate([[0.0], np.cumsum(periods_ms) / 1e3]))
    monkeypatch.setattr(teleop, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    stats = teleop.LoopStats()
    for _ in range(len(periods_ms) + 1):
        stats.tick()
    return stats


def test_a_recording_loop_that_ran_slow_gets_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop that kept 30 Hz but for a few start-up overruns (50-130 ms) gets no note: their mean said 28 Hz
    while `fit-dynamics --fit-rate` found the loop kept its rate. A loop slow at every step gets it."""
    from twinarm.cli.teleop_record import slow_loop_note

    root = Path("data/pick")
    periods = [130, 90, 50, 70] + [1e3 / 30] * 96
    assert len(periods) / sum(periods) * 1e3 < 0.97 * 30  # the mean rate (28.2 Hz) would have said slow
    assert slow_loop_note(ticked(monkeypatch, periods), 30, root) is None
    assert slow_loop_note(ticked(monkeypatch, [34.0, 33.0] * 50), 30, root) is None  # jitter, not a slow loop
    note = slow_loop_note(ticked(monkeypatch, [37.3] * 100), 30, root)
    assert note and "ran at 26.8 Hz (median step) against the dataset's 30 fps" in note
    assert "--dataset data/pick ... --fit-rate" in note
    assert slow_loop_note(ticked(monkeypatch, []), 30, root) is None  # no period measured
