"""Helpers shared by the real/ tests: a Koch-like Dynamixel spec and a runner that cannot hang."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from twinarm.arms import SO101
from twinarm.spec import ArmSpec, CameraSpec, JointSpec

KOCH_LIKE = ArmSpec(
    name="koch_test",
    display_name="Koch-like test arm",
    robot_type="koch_follower",
    joints=(
        JointSpec("shoulder_pan", -2.0, 2.0, motor_id=1, motor_model="xl430-w250"),
        JointSpec("shoulder_lift", -1.8, 1.8, motor_id=2, motor_model="xl430-w250"),
        JointSpec("elbow_flex", -1.6, 1.6, motor_id=3, motor_model="xl330-m288"),
        JointSpec("wrist_flex", -1.6, 1.6, motor_id=4, motor_model="xl330-m288"),
        JointSpec("wrist_roll", -2.5, 2.5, motor_id=5, motor_model="xl330-m288"),
        JointSpec("gripper", 0.0, 1.0, kind="gripper", motor_id=6, motor_model="xl330-m288"),
    ),
    control_hz=30,
    cameras=(CameraSpec("front"),),
    motor_bus="dynamixel",
)

SPECS = {"so101": SO101, "koch": KOCH_LIKE}


def bounded(fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Run fn in a thread; fail the test (instead of hanging) if it has not returned within timeout_s."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        pytest.fail(f"operation did not finish within {timeout_s} s (hang)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


