"""ALOHA teleoperation: two leader arms drive the two follower arms, each its own side, from the CLI
(`twinarm teleop --arm aloha`, also recording) and from Python (`make_leader`), over four virtual servo buses
on ptys driven by the unmodified Dynamixel SDK; a policy run on the two-arm real id; the CLI's errors for bad
ports, flags and calibrations."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from real_helpers import bounded, calibrate_by_hand
from real_media import make_video

from twinarm.arms import ALOHA
from twinarm.cli.main import main
from twinarm.real.calibration import Calibration
from twinarm.real.env import RealArmEnv
from twinarm.real.multi_bus import bus_groups
from twinarm.real.teleop import (
    BimanualLeader,
    LoopStats,
    leader_spec,
    make_leader,
    part_calibration,
    teleoperate,
)
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

# A loaded machine overruns the 20 ms control period now and then; these tests check behaviour, not timing.
pytestmark = pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")

TICK = 2 * np.pi / 4096
#: Flags for the checks that fail before any port is opened (no pty needed).
OFFLINE_ARGV = (
    "teleop --arm aloha --port left=/dev/p1,right=/dev/p2 --calibration c.json "
    "--leader-port left=/dev/p3,right=/dev/p4 --leader-calibration l.json"
)
SIDES = ("left", "right")
#: Leader poses (waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, gripper): the two sides
#: differ by at least 0.4 on every joint, so a follower copying the other side's leader cannot pass.
POSES = {
    "left": np.array([0.3, -0.4, 0.5, -0.2, 0.6, 0.8, 0.7]),
    "right": np.array([-0.5, 0.3, -0.3, 0.4, -0.5, -0.6, 0.2]),
}
POSES_B = {
    "left": np.array([-0.4, 0.2, -0.2, 0.5, -0.3, -0.5, 0.1]),
    "right": np.array([0.4, -0.3, 0.4, -0.4, 0.4, 0.5, 0.9]),
}


@dataclass
class AlohaRig:
    """One follower (14 joints, left and right buses) and two leader arms, each bus on its own pty."""

    follower: VirtualArm
    leaders: dict[str, VirtualArm]
    follower_servers: dict[str, PtyServer]
    leader_servers: dict[str, PtyServer]
    follower_cal: dict[str, Path]
    leader_cal: dict[str, Path]

    def follower_side(self, side: str) -> np.ndarray:
        q = self.follower.joint_positions()
        return q[:7] if side == "left" else q[7:]

    def flag(self, servers: dict[str, PtyServer] | dict[str, Path]) -> str:
        return ",".join(f"{s}={getattr(v, 'port', v)}" for s, v in servers.items())

    def argv(self, *extra: str) -> list[str]:
        follower = ["--port", self.flag(self.follower_servers), "--calibration", self.flag(self.follower_cal)]
        leader = [
            "--leader-port",
            self.flag(self.leader_servers),
            "--leader-calibration",
            self.flag(self.leader_cal),
        ]
        return ["teleop", "--arm", "aloha", *follower, *leader, *extra]


def _save_per_arm(cal: Calibration, path: Path, side: str) -> Path:
    """A per-arm file with motors named as on one arm (`waist`), the way LeRobot stores each arm."""
    path.write_text(json.dumps({n.removeprefix(f"{side}_"): m for n, m in cal.to_dict().items()}))
    return path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[AlohaRig]:
    groups = bus_groups(ALOHA)
    follower = VirtualArm(
        ALOHA, step_mode="lockstep"
    )  # one physics step per goal sync-write on the right bus
    leaders = {s: VirtualArm(leader_spec(ALOHA, s)) for s in SIDES}
    full = follower.ideal_calibration()
    # Both naming forms of a per-arm file: spec names (left_waist) on the left, one-arm names (waist) on the right.
    follower_cal = {
        "left": Calibration({n: full[n] for n in groups["left"]}).save(tmp_path / "follower_left.json"),
        "right": _save_per_arm(
            Calibration({n: full[n] for n in groups["right"]}), tmp_path / "follower_right.json", "right"
        ),
    }
    leader_cal = {
        "left": leaders["left"].ideal_calibration().save(tmp_path / "leader_left.json"),
        "right": _save_per_arm(leaders["right"].ideal_calibration(), tmp_path / "leader_right.json", "right"),
    }
    with contextlib.ExitStack() as stack:
        follower_servers = {
            s: stack.enter_context(PtyServer(VirtualBus(follower, groups[s], drives_lockstep=s == "right")))
            for s in SIDES
        }
        leader_servers = {s: stack.enter_context(PtyServer(VirtualBus(leaders[s]))) for s in SIDES}
        yield AlohaRig(follower, leaders, follower_servers, leader_servers, follower_cal, leader_cal)


def _assert_follows(rig: AlohaRig, poses: dict[str, np.ndarray]) -> None:
    for side in SIDES:
        q, other = rig.follower_side(side), poses["right" if side == "left" else "left"]
        np.testing.assert_allclose(q, poses[side], atol=2 * TICK, err_msg=f"{side} follower vs {side} leader")
        assert np.abs(q - other).min() > 0.3, f"{side} follower copies the other side's leader"


def test_leader_specs_use_the_widowx_servos() -> None:
    left = leader_spec(ALOHA, "left")
    assert left.joint_names == ALOHA.joint_names[:7]
    assert [j.motor_id for j in left.joints] == [j.motor_id for j in ALOHA.joints[:7]]
    assert [j.motor_model for j in left.joints] == ["xm430-w350"] * 5 + ["xl430-w250", "xc430-w150"]
    assert leader_spec(ALOHA, "right").joint_names == ALOHA.joint_names[7:]
    with pytest.raises(ValueError, match="2 arms on separate buses"):
        leader_spec(ALOHA)


def test_cli_aloha_two_leaders_drive_their_own_followers(
    rig: AlohaRig, capsys: pytest.CaptureFixture
) -> None:
    for side in SIDES:
        rig.leaders[side].move_to(POSES[side])  # hands move the two leaders, each differently
    rc = bounded(lambda: main(rig.argv("--max-steps", "40", "--max-relative-target", "0.3")), timeout_s=60)
    out = capsys.readouterr().out
    assert rc == 0
    _assert_follows(rig, POSES)
    for side in SIDES:  # the mapping is shown before the loop starts
        assert (
            f"{side} leader arm {rig.leader_servers[side].port} -> "
            f"{side} follower arm {rig.follower_servers[side].port}"
        ) in out
    assert "Hz" in out and "steps 40" in out  # the loop rate is reported
    assert not any(s.torque_on for s in rig.follower.servos)  # torque off on exit, both follower arms
    assert not any(s.torque_on for arm in rig.leaders.values() for s in arm.servos)  # leaders stay limp


def test_python_leader_mid_run_moves_reach_only_their_side(rig: AlohaRig) -> None:
    """Moving one leader mid-run moves only its own follower arm; make_leader is what the CLI uses."""
    for side in SIDES:
        rig.leaders[side].move_to(POSES[side])
    leader = make_leader(ALOHA, {s: rig.leader_servers[s].port for s in SIDES}, rig.leader_cal)
    assert isinstance(leader, BimanualLeader)
    follower = RealArmEnv(
        arm=ALOHA,
        port={s: rig.follower_servers[s].port for s in SIDES},
        calibration=Calibration(
            {n: c for s in SIDES for n, c in part_calibration(rig.follower_cal[s], ALOHA, s).motors.items()}
        ),
        cameras={},
        max_relative_target=0.3,
        pace=False,
    )
    snapshots: dict[int, np.ndarray] = {}

    def at_step(stats: LoopStats) -> None:
        snapshots[stats.steps] = rig.follower.joint_positions()
        if stats.steps == 30:
            rig.leaders["left"].move_to(POSES_B["left"])  # only the left leader moves

    try:
        bounded(lambda: teleoperate(leader, follower, max_steps=60, report=at_step, report_every_s=0.0), 60)
        assert not any(s.torque_on for arm in rig.leaders.values() for s in arm.servos)
    finally:
        leader.close()
        follower.close()
    np.testing.assert_allclose(snapshots[30], np.concatenate([POSES["left"], POSES["right"]]), atol=2 * TICK)
    q = rig.follower.joint_positions()
    np.testing.assert_allclose(q[:7], POSES_B["left"], atol=2 * TICK)
    np.testing.assert_allclose(q[7:], POSES["right"], atol=2 * TICK)
    # The right arm held still while the left one moved to its new pose.
    assert (
        max(np.abs(snap[7:] - POSES["right"]).max() for step, snap in snapshots.items() if step >= 30)
        <= 2 * TICK
    )
    assert not any(s.torque_on for s in rig.follower.servos)


def test_cli_missing_leader_port_is_named_before_the_followers_torque_on(rig: AlohaRig) -> None:
    argv = rig.argv("--max-steps", "5")
    argv[argv.index("--leader-port") + 1] = (
        f"left=/dev/no-such-leader,right={rig.leader_servers['right'].port}"
    )
    with pytest.raises(SystemExit) as info:
        bounded(lambda: main(argv), timeout_s=30)
    msg = str(info.value.code)
    assert "left leader arm" in msg and "/dev/no-such-leader" in msg and "find-port" in msg
    assert rig.follower.steps == 0 and not any(s.torque_on for s in rig.follower.servos)


def test_cli_missing_follower_port_is_named_and_torque_stays_off(rig: AlohaRig) -> None:
    argv = rig.argv("--max-steps", "5")
    argv[argv.index("--port") + 1] = f"left={rig.follower_servers['left'].port},right=/dev/no-such-follower"
    with pytest.raises(SystemExit) as info:
        bounded(lambda: main(argv), timeout_s=30)
    msg = str(info.value.code)
    assert "right follower arm" in msg and "/dev/no-such-follower" in msg
    assert not any(s.torque_on for s in rig.follower.servos)


def test_cli_leader_on_a_follower_port_is_a_named_model_mismatch(rig: AlohaRig) -> None:
    """Leader and follower cables swapped on the left: the left leader port answers with ViperX servos."""
    argv = rig.argv("--max-steps", "5")
    f_left, l_left = rig.follower_servers["left"].port, rig.leader_servers["left"].port
    argv[argv.index("--port") + 1] = f"left={l_left},right={rig.follower_servers['right'].port}"
    argv[argv.index("--leader-port") + 1] = f"left={f_left},right={rig.leader_servers['right'].port}"
    with pytest.raises(SystemExit) as info:
        bounded(lambda: main(argv), timeout_s=30)
    msg = str(info.value.code)
    assert msg.startswith("twinarm teleop: left leader arm:") and f_left in msg
    assert "left_waist" in msg and "xm430-w350" in msg and "is the right arm connected" in msg
    assert not any(s.torque_on for s in rig.follower.servos)


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--port", "/dev/ttyDXL_follower", "give one per arm: --port left=...,right=..."),
        ("--leader-port", "left=/dev/ttyDXL_leader_left", "no right arm"),
        (
            "--leader-port",
            "left=/dev/a,middle=/dev/b",
            "'middle=/dev/b' is not ARM=VALUE with ARM one of left, right",
        ),
        ("--port", "left=/dev/a,right=/dev/a", "each arm needs its own port"),
        ("--leader-port", "left=/dev/a,left=/dev/b", "left is given twice"),
    ],
)
def test_cli_malformed_per_arm_flags(
    flag: str, value: str, expected: str, capsys: pytest.CaptureFixture
) -> None:
    argv = OFFLINE_ARGV.split()
    argv[argv.index(flag) + 1] = value
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert expected in capsys.readouterr().err


def test_cli_shared_leader_and_follower_port(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(OFFLINE_ARGV.replace("right=/dev/p4", "right=/dev/p1").split())
    assert (
        "port /dev/p1 is given for both the left follower arm and the right leader arm"
        in capsys.readouterr().err
    )


def test_cli_keyboard_is_refused_for_aloha(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main("teleop --arm aloha --port left=/dev/p1,right=/dev/p2 --calibration c.json --keyboard".split())
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--keyboard drives one arm" in err and "--leader-port left=PORT,right=PORT" in err


def test_cli_single_arm_rejects_per_arm_ports(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["teleop", "--arm", "so101", "--port", "left=/dev/p1", "--calibration", "c.json", "--keyboard"])
    assert "--arm so101 is one arm" in capsys.readouterr().err


def test_cli_calibration_errors_name_the_file_and_arm(rig: AlohaRig, tmp_path: Path) -> None:
    """Calibrations are read before any port is opened: a missing file or one for the wrong arm is named."""
    argv = rig.argv()
    i = argv.index("--leader-calibration") + 1
    argv[i] = f"left={rig.leader_cal['left']},right={tmp_path / 'missing.json'}"
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert "missing.json not found" in str(info.value.code)
    argv[i] = (
        f"left={rig.leader_cal['right']},right={rig.leader_cal['right']}"  # fine: one-arm names fit both
    )
    argv[argv.index("--calibration") + 1] = (
        f"left={rig.follower_cal['right']},right={rig.follower_cal['left']}"
    )
    with pytest.raises(SystemExit) as info:
        main(argv)
    msg = str(info.value.code)
    assert "follower_left.json (right arm) does not match arm 'aloha_right'" in msg
    assert "missing motors ['right_elbow'" in msg and "unknown motors ['left_elbow'" in msg
    assert rig.follower.steps == 0 and not any(s.torque_on for s in rig.follower.servos)


def test_cli_one_calibration_file_for_both_arms(rig: AlohaRig, tmp_path: Path) -> None:
    """The follower's calibration as one 14-motor file (what `virtual-arm --write-calibration` writes)."""
    for side in SIDES:
        rig.leaders[side].move_to(POSES[side])
    argv = rig.argv("--max-steps", "30", "--max-relative-target", "0.3")
    argv[argv.index("--calibration") + 1] = str(rig.follower.ideal_calibration().save(tmp_path / "both.json"))
    assert bounded(lambda: main(argv), timeout_s=60) == 0
    _assert_follows(rig, POSES)


def test_cli_calibrate_one_aloha_leader_arm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`calibrate --arm aloha --side left --leader` calibrates the left WidowX (its servo models) and writes a
    per-arm file that teleop reads; without --side it says which sides there are."""
    with pytest.raises(SystemExit):
        main(["calibrate", "--arm", "aloha", "--port", "/dev/p1"])
    assert "calibrate each one with --side left / --side right" in capsys.readouterr().err

    spec = leader_spec(ALOHA, "left")
    out = tmp_path / "leader_left.json"
    argv = ["calibrate", "--arm", "aloha", "--side", "left", "--leader", "--out", str(out)]
    rc, prompts = calibrate_by_hand(VirtualArm(spec), argv, monkeypatch)
    assert rc == 0 and "ALOHA (2x ViperX 300), left arm leader" in capsys.readouterr().out
    assert prompts == ["Move every joint through its entire range of motion; press Enter when done."]
    cal = part_calibration(out, ALOHA, "left")
    assert list(cal.motors) == list(spec.joint_names)
    assert [m.id for m in cal.motors.values()] == [j.motor_id for j in spec.joints]


def test_cli_records_both_arms_then_runs_a_policy_on_the_real_id(
    rig: AlohaRig, tmp_path: Path, tiny_act_checkpoint: Callable[..., Path]
) -> None:
    """`teleop --record` with two leaders writes 14-D episodes (left joints, then right: ACT's order); `eval` on
    the two-arm -Real id drives both follower arms through their own ports."""
    for side in SIDES:
        rig.leaders[side].move_to(POSES[side])
    video = make_video(tmp_path / "top.mp4", n_frames=5, height=48, width=64)
    root = tmp_path / "aloha_real"
    argv = rig.argv("--camera", f"top={video}", "--image-size", "48", "64", "--max-relative-target", "0.3",
                    "--record", str(root), "--task", "Hand the cube over.", "--episodes", "1", "--episode-time", "0.4")
    assert bounded(lambda: main(argv), timeout_s=60) == 0
    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    actions = np.stack(table.column("action").to_numpy(zero_copy_only=False))
    assert actions.shape == (20, 14)  # 0.4 s at 50 Hz
    expected = ALOHA.to_lerobot(np.concatenate([POSES["left"], POSES["right"]]))
    np.testing.assert_allclose(actions[-1], expected, atol=2 * TICK)  # ALOHA records SI units, as gym-aloha
    _assert_follows(rig, POSES)

    policy_dir = tiny_act_checkpoint(dof=14, cameras=("top",))
    follower = ["--port", rig.flag(rig.follower_servers), "--calibration", rig.flag(rig.follower_cal)]
    before = rig.follower.steps
    out = tmp_path / "eval"
    argv = ["eval", "--policy", str(policy_dir), "--env", "twinarm/Aloha-TransferCube-Real-v0", *follower,
            "--camera", f"top={video}", "--episodes", "1", "--max-steps", "6", "--reset-time", "0", "--videos", "0",
            "--threads", "1", "--out", str(out), "--start-pose", "here"]  # fmt: skip  (no drive home: count steps)
    assert bounded(lambda: main(argv), timeout_s=60) == 0
    assert json.loads((out / "eval_info.json").read_text())["per_episode"][0]["length"] == 6
    assert rig.follower.steps - before == 6  # one goal write per step reached the (lockstep) right bus
    assert not any(s.torque_on for s in rig.follower.servos)
