"""`twinarm virtual-arm --leader`: a virtual leader arm (the leader's servo models, torque off) in another
process, read by the unmodified Dynamixel SDK over its ptys, moved by typed poses or `--wiggle`, and
driving a follower through `twinarm teleop` as in the README's three-terminal demo."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dynamixel_sdk as dxl
import numpy as np
import pytest
from real_helpers import Leader, bounded, retried

from twinarm.arms import ALOHA, KOCH, get_arm
from twinarm.cli.main import main
from twinarm.real.calibration import Calibration
from twinarm.real.multi_bus import bus_groups
from twinarm.real.teleop import leader_spec, part_calibration
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus
from twinarm.real.virtual.hand import (
    GRIPPER_AMPLITUDE,
    GRIPPER_CENTER,
    WIGGLE_AMPLITUDE_RAD,
    Hand,
    parse_pose,
)
from twinarm.real.virtual.serve import leader_arm_spec
from twinarm.spec import ArmSpec

pytestmark = pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")

TICK = 2 * np.pi / 4096
PRESENT_POSITION, TORQUE_ENABLE, DRIVE_MODE = 132, 64, 10  # Dynamixel X control table addresses
SIDES = ("left", "right")


@pytest.fixture
def sdk_ports() -> Iterator[dict[str, dxl.PortHandler]]:
    """Open Dynamixel SDK ports by path (closed at the end)."""
    opened: dict[str, dxl.PortHandler] = {}

    class Ports(dict):
        def __missing__(self, path: str) -> dxl.PortHandler:
            port = dxl.PortHandler(path)
            assert port.openPort(), path
            opened[path] = port
            return port

    yield Ports()
    for port in opened.values():
        port.closePort()


def _ping(port: dxl.PortHandler, ids: list[int]) -> list[int]:
    ph = dxl.PacketHandler(2.0)
    models = []
    for i in ids:
        answer = retried(dxl, port, lambda i=i: ph.ping(port, i), lambda a: a[1])
        assert answer is not None and answer[2] == 0, f"id {i}"
        models.append(answer[0])
    return models


def _read(port: dxl.PortHandler, ids: list[int], address: int, size: int) -> list[int]:
    gsr = dxl.GroupSyncRead(port, dxl.PacketHandler(2.0), address, size)
    for i in ids:
        gsr.addParam(i)
    assert retried(dxl, port, gsr.txRxPacket, lambda a: a) == dxl.COMM_SUCCESS
    raw = [gsr.getData(i, address, size) for i in ids]
    return [v - (1 << 32) if size == 4 and v >= 1 << 31 else v for v in raw]


def _write1(port: dxl.PortHandler, motor_id: int, address: int, value: int) -> None:
    ph = dxl.PacketHandler(2.0)
    answer = retried(dxl, port, lambda: ph.write1ByteTxRx(port, motor_id, address, value), lambda a: a[0])
    assert answer == (dxl.COMM_SUCCESS, 0), f"write {value} at {address} of id {motor_id}"


def _pose(port: dxl.PortHandler, part: ArmSpec, cal: Calibration) -> np.ndarray:
    """The arm's pose (rad, gripper 0..1) from Present_Position read by the SDK, through the calibration."""
    ticks = _read(port, [j.motor_id for j in part.joints], PRESENT_POSITION, 4)
    return cal.to_si(part, dict(zip(part.joint_names, ticks, strict=True)), software_drive_mode=False)


def _poll(read: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    """Read until `done(value)`; the deadline only stops a hang, nothing is timed."""
    deadline = time.monotonic() + 30
    value = read()
    while not done(value):
        assert time.monotonic() < deadline, f"{what}: last read {value}"
        time.sleep(0.02)
        value = read()
    return value


def test_cli_aloha_leader_serves_widowx_servos_torque_off_and_typed_poses(
    tmp_path: Path, sdk_ports: dict[str, dxl.PortHandler]
) -> None:
    cal_file = tmp_path / "leader.json"
    leader = Leader("--arm", "aloha", "--calibrated", "--write-calibration", str(cal_file))
    try:
        assert set(leader.ports) == set(SIDES)
        parts = {s: leader_spec(ALOHA, s) for s in SIDES}
        cals = {s: part_calibration(cal_file, ALOHA, s) for s in SIDES}
        for side in SIDES:
            port, ids = sdk_ports[leader.ports[side]], [j.motor_id for j in parts[side].joints]
            # WidowX: XM430-W350 (1020) x5, XL430-W250 wrist rotate (1060), XC430-W150 gripper (1070).
            assert _ping(port, ids) == [1020] * 5 + [1060, 1070]
            assert _read(port, ids, TORQUE_ENABLE, 1) == [0] * 7  # limp: moved by hand
            np.testing.assert_allclose(_pose(port, parts[side], cals[side]), np.zeros(7), atol=2 * TICK)
        leader.type("left_waist=nope")  # refused (stderr), the arm stays
        leader.type("left_waist=0.5 left_gripper=0.8, right_elbow=-0.3")
        want = {"left": np.array([0.5, 0, 0, 0, 0, 0, 0.8]), "right": np.array([0, 0, -0.3, 0, 0, 0, 0])}
        for side in SIDES:
            port = sdk_ports[leader.ports[side]]
            _poll(
                lambda s=side, p=port: _pose(p, parts[s], cals[s]),
                lambda q, s=side: np.abs(q - want[s]).max() <= 2 * TICK,
                f"{side} leader after the typed pose",
            )
        leader.type("right_gripper=7")  # clipped to the joint's limit
        port = sdk_ports[leader.ports["right"]]
        _poll(
            lambda: _pose(port, parts["right"], cals["right"]),
            lambda q: abs(q[6] - 1.0) <= 0.01,
            "right gripper clipped to 1",
        )
    finally:
        err = leader.stop()
    assert "pose: 'left_waist=nope': 'nope' is not a number" in err


def test_cli_koch_leader_wiggle_sweeps_every_joint_within_limits(
    tmp_path: Path, sdk_ports: dict[str, dxl.PortHandler]
) -> None:
    cal_file = tmp_path / "koch_leader.json"
    leader = Leader("--arm", "koch", "--wiggle", "1", "--calibrated", "--write-calibration", str(cal_file))
    try:
        assert "every joint sweeps with a 1 s period" in leader.out[-1]
        part = leader_spec(KOCH)
        cal = Calibration.load(cal_file)
        port = sdk_ports[leader.ports[""]]
        ids = [j.motor_id for j in part.joints]
        assert _ping(port, ids) == [1190] * 6  # XL330-M077, Koch's leader servo
        assert _read(port, ids, TORQUE_ENABLE, 1) == [0] * 6
        # Its elbow servo is mounted mirrored: the written calibration inverts it, as LeRobot's Koch leader does
        # (drive_mode 1, also held in the servo's Drive_Mode register), so it reads the same way.
        assert [cal[n].drive_mode for n in part.joint_names] == [0, 0, 1, 0, 0, 0]
        assert _read(port, ids, DRIVE_MODE, 1) == [0, 0, 1, 0, 0, 0]
        # The sweep's band per joint (start pose 0; gripper about 0.5).
        amp = np.array(
            [
                GRIPPER_AMPLITUDE
                if j.kind == "gripper"
                else min(WIGGLE_AMPLITUDE_RAD, (j.upper - j.lower) / 4)
                for j in part.joints
            ]
        )
        center = np.array([GRIPPER_CENTER if j.kind == "gripper" else 0.0 for j in part.joints])
        lo, hi = np.full(6, np.inf), np.full(6, -np.inf)

        def sample() -> np.ndarray:
            q = _pose(port, part, cal)
            assert np.all(np.abs(q - center) <= amp + 2 * TICK), f"{q} leaves the sweep's band"
            lo[:], hi[:] = np.minimum(lo, q), np.maximum(hi, q)
            return hi - lo

        # Every joint covers most of its band (both sides of its centre) as the sweep goes on.
        _poll(sample, lambda span: np.all(span >= 1.5 * amp), "joint spans under the wiggle")
        assert np.all(lo < center) and np.all(hi > center)
    finally:
        leader.stop()


def test_three_terminal_aloha_demo(tmp_path: Path, sdk_ports: dict[str, dxl.PortHandler]) -> None:
    """The README's demo: a virtual leader (CLI, another process) -> `twinarm teleop` -> virtual followers,
    with the calibration files `virtual-arm --write-calibration` writes (one 14-motor file per role)."""
    leader_cal = tmp_path / "leader.json"
    leader = Leader("--arm", "aloha", "--write-calibration", str(leader_cal))
    follower = VirtualArm(ALOHA, step_mode="lockstep")
    follower_cal = follower.ideal_calibration().save(tmp_path / "follower.json")
    groups = bus_groups(ALOHA)
    pose = {
        "left": [0.3, -0.4, 0.5, -0.2, 0.6, 0.8, 0.7],
        "right": [-0.5, 0.3, -0.3, 0.4, -0.5, -0.6, 0.2],
    }
    try:
        leader.type(" ".join(f"{n}={v}" for s in SIDES for n, v in zip(groups[s], pose[s], strict=True)))
        # Wait (reading the leader's ticks) until the pose is in. Its servos hold no calibration yet (teleop
        # writes it), so they read the raw encoder: the calibrated ticks less the homing offset.
        cal = Calibration.load(leader_cal)
        for side in SIDES:
            part = leader_spec(ALOHA, side)
            calibrated = cal.from_si(part, np.array(pose[side]), software_drive_mode=False)
            want = {n: t - cal.motors[n].homing_offset for n, t in calibrated.items()}
            ids = [j.motor_id for j in part.joints]
            port = sdk_ports[leader.ports[side]]
            _poll(
                lambda p=port, i=ids: _read(p, i, PRESENT_POSITION, 4),
                lambda t, w=want: max(abs(a - b) for a, b in zip(t, w.values(), strict=True)) <= 2,
                f"{side} leader ticks",
            )
            port.closePort()  # teleop opens it next
        with (
            PtyServer(VirtualBus(follower, groups["left"], drives_lockstep=False)) as fl,
            PtyServer(VirtualBus(follower, groups["right"])) as fr,
        ):
            argv = (
                f"teleop --arm aloha --port left={fl.port},right={fr.port} --calibration {follower_cal} "
                f"--leader-port left={leader.ports['left']},right={leader.ports['right']} "
                f"--leader-calibration {leader_cal} --max-steps 40 --max-relative-target 0.3"
            ).split()
            assert bounded(lambda: main(argv), timeout_s=60) == 0
        q = follower.joint_positions()
        np.testing.assert_allclose(q, pose["left"] + pose["right"], atol=2 * TICK)
        assert not any(s.torque_on for s in follower.servos)
        # The leader stayed limp: teleop turned no torque on.
        for side in SIDES:
            port = dxl.PortHandler(leader.ports[side])
            assert port.openPort()
            assert (
                _read(port, [j.motor_id for j in leader_spec(ALOHA, side).joints], TORQUE_ENABLE, 1)
                == [0] * 7
            )
            port.closePort()
    finally:
        leader.stop()


@pytest.mark.parametrize("arm", ["so101", "koch", "aloha"])
def test_leader_arm_spec_takes_the_leader_models_on_the_follower_joints(arm: str) -> None:
    spec = get_arm(arm)
    lead = leader_arm_spec(spec)
    assert lead.joint_names == spec.joint_names and lead.name == f"{arm}_leader"
    assert [j.motor_id for j in lead.joints] == [j.motor_id for j in spec.joints]
    assert bus_groups(lead) == bus_groups(spec)
    models = [j.motor_model for j in lead.joints]
    expected = {
        "so101": ["sts3215"] * 6,
        "koch": ["xl330-m077"] * 6,
        "aloha": (["xm430-w350"] * 5 + ["xl430-w250", "xc430-w150"]) * 2,
    }
    assert models == expected[arm]


def test_hand_lets_go_while_a_client_holds_torque_on(sdk_ports: dict[str, dxl.PortHandler]) -> None:
    arm = VirtualArm(leader_arm_spec(KOCH))
    hand = Hand(arm)
    with PtyServer(VirtualBus(arm)) as server:
        port = sdk_ports[server.port]
        assert hand.pose("shoulder_pan=0.4")
        np.testing.assert_allclose(arm.joint_positions()[0], 0.4)
        _write1(port, 3, TORQUE_ENABLE, 1)
        assert not hand.pose("shoulder_pan=-0.4 gripper=1")  # held: nothing moves
        np.testing.assert_allclose(arm.joint_positions()[[0, 5]], [0.4, 0.0])
        _write1(port, 3, TORQUE_ENABLE, 0)
        assert hand.pose("shoulder_pan=-0.4 gripper=1")
        np.testing.assert_allclose(arm.joint_positions()[[0, 5]], [-0.4, 1.0])


def test_parse_pose_sets_and_clips_only_the_named_joints() -> None:
    current = np.array([0.1, 0.2, 0.3, 0.4, 0.5, -0.6])  # the gripper outside 0..1 (a sim start pose)
    said: list[str] = []
    q = parse_pose(KOCH, "shoulder_pan=9 elbow_flex=-0.25", current, said.append)
    np.testing.assert_array_equal(q, [2.5, 0.2, -0.25, 0.4, 0.5, -0.6])  # shoulder_pan's upper limit: 2.5
    assert said == ["shoulder_pan=9 is past the joint's range [-2.5, 2.5]: moved to 2.5"]  # was silent


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("elbow=0.3", "'elbow=0.3' is not JOINT=VALUE with JOINT one of shoulder_pan, shoulder_lift"),
        ("gripper 0.3", "'gripper' is not JOINT=VALUE"),
        ("gripper=open", "'open' is not a number"),
        ("gripper=nan", "'nan' is not a finite number"),
    ],
)
def test_parse_pose_names_the_bad_item(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_pose(KOCH, line, np.zeros(6))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--arm koch --wiggle", "--wiggle moves a leader arm: add --leader"),
        ("--arm koch --leader --wiggle 0", "--wiggle takes a period in seconds > 0"),
        ("--arm so101 --leader --task PickCube", "--leader serves a leader arm, which has no task scene"),
        ("--arm so101 --backend memory --task PickCube", "--task needs the MuJoCo scene: --backend memory"),
        ("--arm so101 --seed 3", "--seed sets the task scene's reset: give --task too"),
    ],
)
def test_cli_leader_flag_errors(flags: str, message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["virtual-arm", *flags.split()])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
