"""Calibration: LeRobot file format, tick <-> SI round trips, the interactive procedure on the virtual arm."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from twinarm.arms import SO101
from twinarm.real.buses import make_bus
from twinarm.real.calibrate import run_calibration
from twinarm.real.calibration import Calibration, MotorCalibration
from twinarm.real.errors import CalibrationError
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

FIXTURE = Path(__file__).parent / "fixtures" / "so101_follower_lerobot.json"


def test_lerobot_calibration_file_loads_and_converts_like_lerobot() -> None:
    cal = Calibration.load(FIXTURE)
    cal.check_matches(SO101)
    assert cal["gripper"] == MotorCalibration(6, 0, 1426, 2031, 3465)
    ticks = {"shoulder_pan": 3000, "shoulder_lift": 815, "elbow_flex": 2000, "wrist_flex": 1957,
             "wrist_roll": 1024, "gripper": 2748}
    q = cal.to_si(SO101, ticks)
    for i, j in enumerate(SO101.joints):
        c = cal[j.name]
        if j.kind == "gripper":  # LeRobot RANGE_0_100
            assert q[i] * 100 == pytest.approx((ticks[j.name] - c.range_min) / (c.range_max - c.range_min) * 100)
        else:  # LeRobot DEGREES: (ticks - mid) * 360 / (resolution - 1)
            assert math.degrees(q[i]) == pytest.approx((ticks[j.name] - c.mid) * 360 / 4095)
    # and SO101's LeRobot units (degrees / 0..100) are exactly the spec's conversion of these values
    np.testing.assert_allclose(SO101.to_lerobot(q)[1], (815 - (815 + 3245) / 2) * 360 / 4095)
    # saving writes the same format back
    assert json.loads(cal.save(Path(FIXTURE.parent / "_tmp_roundtrip.json")).read_text()) == json.loads(FIXTURE.read_text())
    (FIXTURE.parent / "_tmp_roundtrip.json").unlink()


def test_ticks_si_roundtrip_within_half_a_tick() -> None:
    cal = Calibration.load(FIXTURE)
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.uniform(SO101.lower, SO101.upper)
        ticks = cal.from_si(SO101, q)
        back = cal.to_si(SO101, ticks)
        in_range = [cal[j.name].range_min < ticks[j.name] < cal[j.name].range_max for j in SO101.joints]
        tick_size = np.where(SO101.gripper_mask, [1 / (c.range_max - c.range_min) for c in cal.motors.values()],
                             2 * np.pi / 4095)
        assert np.all(np.abs(back - q)[in_range] <= 0.5 * tick_size[in_range] + 1e-12)


def test_drive_mode_inverts_the_gripper_in_software_and_no_revolute_joint_as_lerobots_degrees() -> None:
    """LeRobot's degrees mode is (t - mid) * 360 / 4095 whatever the drive mode (its motors_bus `_normalize`); only
    its 0..100 gripper range is reversed where the bus applies the drive mode in software. twinarm's units are
    those degrees: an SO file with drive_mode 1 on the elbow read it reversed against LeRobot (audit P6)."""
    cal = Calibration({j.name: MotorCalibration(j.motor_id, 1, 0, 1000, 3000) for j in SO101.joints})
    ticks = {j.name: 2500 for j in SO101.joints}
    soft = cal.to_si(SO101, ticks, software_drive_mode=True)
    hard = cal.to_si(SO101, ticks, software_drive_mode=False)
    lerobot_degrees = (2500 - 2000) * 360 / 4095
    np.testing.assert_allclose(SO101.to_lerobot(soft)[:5], lerobot_degrees)
    np.testing.assert_allclose(soft[:5], hard[:5])
    assert soft[5] == pytest.approx(1 - hard[5])
    np.testing.assert_allclose(cal.to_si(SO101, cal.from_si(SO101, soft)), soft, atol=2 * np.pi / 4095)


def test_malformed_files_are_named_errors(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="not found"):
        Calibration.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        Calibration.load(tmp_path / "bad.json")
    (tmp_path / "short.json").write_text(json.dumps({"gripper": {"id": 6}}))
    with pytest.raises(CalibrationError, match="lacks"):
        Calibration.load(tmp_path / "short.json")


def test_interactive_procedure_on_the_virtual_arm(spec) -> None:  # noqa: ANN001
    """Run `twinarm calibrate`'s procedure with a simulated hand moving the virtual arm."""
    arm = VirtualArm(spec)
    poses = [spec.lower, spec.upper, np.zeros(spec.dof)]

    def prompt(text: str) -> None:
        if "middle" in text:
            arm.move_to(np.where(spec.gripper_mask, 0.5, 0.0))

    def recording_done(_: dict) -> bool:
        if poses:
            arm.move_to(poses.pop(0))
            return False
        return True

    with PtyServer(VirtualBus(arm)) as server:
        bus = make_bus(spec, server.port)
        bus.connect()
        try:
            cal = run_calibration(bus, spec, prompt, recording_done, sample_period_s=0.0)
            assert bus.calibration_matches(cal)
            for q in (np.zeros(spec.dof), spec.lower * 0.5, spec.upper * 0.7):
                q = np.where(spec.gripper_mask, np.clip(q, 0, 1), q)
                arm.move_to(q)
                read = cal.to_si(spec, bus.positions(), software_drive_mode=bus.software_drive_mode)
                # symmetric joint limits -> the recorded mid-range is the joint's zero: within 2 ticks
                sym = np.isclose(-spec.lower, spec.upper) | spec.gripper_mask
                np.testing.assert_allclose(read[sym], q[sym], atol=2 * 2 * np.pi / 4095)
        finally:
            bus.close()


def test_values_the_motors_cannot_hold_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A non-integer field, or a homing offset / range a Feetech STS3215 register cannot hold, is named with
    the file and motor when the file is checked against the arm, not when it is half written to the motors."""
    good = {j.name: {"id": j.motor_id, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000}
            for j in SO101.joints}  # fmt: skip
    path = tmp_path / "so101.json"
    for field, value, said in (("range_min", "abc", "must be an integer"), ("range_min", 1000.7, "must be an integer"),
                               ("homing_offset", 3000, "homing_offset 3000 does not fit"),
                               ("range_max", 5000, "outside its sts3215's positions 0..4095")):  # fmt: skip
        path.write_text(json.dumps({**good, "gripper": {**good["gripper"], field: value}}))
        with pytest.raises(CalibrationError, match=said) as info:
            Calibration.load(path).check_matches(SO101, source=str(path))
        assert str(path) in str(info.value) and "'gripper'" in str(info.value)
    path.write_text(json.dumps(good))
    Calibration.load(path).check_matches(SO101)


def test_calibration_paths_expand_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cal = Calibration({"gripper": MotorCalibration(6, 0, 0, 1000, 3000)})
    assert cal.save("~/cal/arm.json") == tmp_path / "cal" / "arm.json"
    assert Calibration.load("~/cal/arm.json") == cal


def test_a_directory_given_as_calibration_file_is_named_as_one(tmp_path: Path) -> None:
    Calibration({"gripper": MotorCalibration(6, 0, 0, 1000, 3000)}).save(tmp_path / "follower.json")
    with pytest.raises(CalibrationError, match=r"is a directory; name a JSON file in it \(it holds follower.json\)"):
        Calibration.load(tmp_path)
