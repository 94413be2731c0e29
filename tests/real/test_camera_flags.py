"""`--camera NAME=SOURCE` mistakes are told as what they are, before anything connects: a camera the arm does not
have (a KeyError traceback in teleop), a RealSense recording that is not there (said to be an unknown serial
number), a /dev/video device that does not exist; and a camera's error is not labelled as the follower arm's."""

from __future__ import annotations

from pathlib import Path

import pytest
from real_helpers import usage_error

from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.real.cameras import make_camera
from twinarm.real.cameras.base import CameraError
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

REAL = "twinarm/SO101-PickCube-Real-v0"
UNKNOWN_TOP = "--camera top=front.mp4: arm so101 has no camera 'top'; its cameras: front, wrist"


def test_teleop_refuses_a_camera_the_arm_does_not_have(capsys: pytest.CaptureFixture) -> None:
    line = usage_error(["teleop", "--port", "/dev/null", "--calibration", "c.json", "--leader-port", "/dev/zero",
                        "--leader-calibration", "l.json", "--camera", "top=front.mp4"], capsys)  # fmt: skip
    assert line == f"twinarm teleop: error: {UNKNOWN_TOP}"


def test_eval_says_top_is_not_a_camera_of_the_arm(capsys: pytest.CaptureFixture, tiny_act_checkpoint) -> None:  # noqa: ANN001
    """eval said only "sees cameras ['front', 'wrist']: give --camera NAME=SOURCE for ['front', 'wrist']"."""
    policy = tiny_act_checkpoint(cameras=("front", "wrist"))
    line = usage_error(["eval", "--policy", str(policy), "--env", REAL, "--port", "/dev/null", "--calibration",
                        "c.json", "--camera", "top=front.mp4", "--device", "cpu"], capsys)  # fmt: skip
    assert line == f"twinarm eval: error: {UNKNOWN_TOP}"


@pytest.mark.parametrize("ref", ["nofile.bag", "rec/wrist.db3", "./takes/wrist"])
def test_a_missing_realsense_recording_is_said_to_be_missing(ref: str, capsys: pytest.CaptureFixture) -> None:
    """It was reported as "no RealSense with serial nofile.bag (none is connected)"."""
    line = usage_error(["teleop", "--port", "/dev/null", "--calibration", "c.json", "--leader-port", "/dev/zero",
                        "--leader-calibration", "l.json", "--camera", f"wrist=realsense:{ref}"], capsys)  # fmt: skip
    assert line == f"twinarm teleop: error: --camera wrist=realsense:{ref}: RealSense recording file not found: {ref}"


def test_a_device_index_without_its_dev_video_says_so() -> None:
    index = next(i for i in range(90, 200) if not Path(f"/dev/video{i}").exists())
    cam = make_camera({"type": "opencv", "index_or_path": index}, name="front")
    with pytest.raises(CameraError) as info:
        cam.connect(timeout_s=2.0)
    assert str(info.value) == (f"camera 'front': there is no /dev/video{index} (device index {index}); "
                               "`twinarm find-cameras` lists the cameras that open")


def test_teleop_does_not_call_a_camera_error_the_follower_arms(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`twinarm teleop: follower arm: camera 'front': cannot open 7` blamed the arm for a camera."""
    arm, leader = VirtualArm(SO101), VirtualArm(SO101)  # an SO-101 leader has the follower's servos
    with PtyServer(VirtualBus(arm)) as server, PtyServer(VirtualBus(leader)) as leader_server:
        cal = arm.ideal_calibration().save(tmp_path / "f.json")
        with pytest.raises(SystemExit) as info:  # a /dev path that is not there, whatever cameras this machine has
            main(["teleop", "--port", server.port, "--calibration", str(cal), "--leader-port", leader_server.port,
                  "--leader-calibration", str(cal), "--camera", "front=/dev/nope_video", "--duration", "1"])  # fmt: skip
    message = str(info.value.code)
    assert message.startswith("twinarm teleop: camera 'front': there is no /dev/nope_video;"), message
    assert not any(s.torque_on for s in arm.servos)
