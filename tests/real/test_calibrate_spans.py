"""Range recording refuses a joint that only sagged or jittered: a forgotten joint moved 21 ticks (1.8 degrees)
passed the "did not move" check and was calibrated to a sliver of its range."""

from __future__ import annotations

import numpy as np
import pytest
from real_helpers import bounded

from twinarm.arms import SO101
from twinarm.real.buses import make_bus
from twinarm.real.calibrate import run_calibration
from twinarm.real.errors import RealArmError
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus


def calibrate_with_a_forgotten_joint(forgotten: str, nudge: float) -> None:
    """Calibrate a virtual SO-101 whose hand sweeps every joint but `forgotten`, which it moves by `nudge` rad."""
    spec = SO101
    arm = VirtualArm(spec)
    mid = np.where(spec.gripper_mask, 0.5, 0.0)
    j = spec.joint_names.index(forgotten)
    poses = [np.where(np.arange(spec.dof) == j, mid + nudge, spec.lower + 0.1),
             np.where(np.arange(spec.dof) == j, mid, spec.upper - 0.1)]

    def done(_: dict) -> bool:  # each poll: the hand's next pose, then Enter
        if poses:
            arm.move_to(poses.pop(0))
            return False
        return True

    with PtyServer(VirtualBus(arm)) as server:
        bus = make_bus(spec, server.port)
        bounded(bus.connect)
        try:
            arm.move_to(mid)
            bounded(lambda: run_calibration(bus, spec, lambda text: None, done, sample_period_s=0.0), timeout_s=30)
        finally:
            bus.close()


def test_a_joint_that_moved_two_degrees_is_named_with_its_span() -> None:
    with pytest.raises(RealArmError) as info:
        calibrate_with_a_forgotten_joint("wrist_roll", 0.03)  # 20 ticks, as a joint sagging under gravity
    message = str(info.value)
    assert message.startswith("joints ['wrist_roll'] did not move through their range during range recording "
                              "(spans: wrist_roll 20 ticks (1.8 deg); each needs at least 9 deg)"), message
    assert "move every joint from one end of its range to the other; calibration aborted" in message


def test_a_joint_swept_past_the_least_span_is_calibrated() -> None:
    calibrate_with_a_forgotten_joint("wrist_roll", 0.2)  # 130 ticks, 11.5 degrees: moved, if little
