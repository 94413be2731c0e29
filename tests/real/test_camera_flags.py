"""`--camera NAME=SOURCE` mistakes are told as what they are, before anything connects: a camera the arm does not
have (a KeyError traceback in teleop), a RealSense recording that is not there (said to be an unknown serial
number), a /dev/video device that does not exist; and a camera's error is not labelled as the follower arm's."""

from __future__ import annotations

import pytest
from real_helpers import usage_error

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
