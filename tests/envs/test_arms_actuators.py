"""Actuator realism for every arm: a joint step command is tracked like a servo does it.

A 0.3 rad step must not teleport (the servos' torque and speed limits make it take time), must rise
10-90 % in a plausible servo time, and must settle near the target without oscillating. Gravity-loaded
joints may sag by a few percent (a position servo without integral action), so the checks compare the
overshoot with the settled value.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from twinarm.arms import ARMS
from twinarm.envs.physics import ArmPhysics

STEP = 0.3
HORIZON_S = 1.5

CASES = [(arm, j) for arm, spec in ARMS.items() for j, name in enumerate(spec.joint_names) if not spec.gripper_mask[j]]


def step_response(arm: str, joint: int) -> tuple[np.ndarray, float, float]:
    """Normalised response (0 = start, 1 = target) at every physics step, the timestep and the control period."""
    p = ArmPhysics.from_arm(arm)
    p.reset()
    home = p.home_joints()
    for _ in range(25):  # settle at home first
        p.set_targets(home)
        p.step_control()
    start = p.joint_positions()[joint]
    sign = 1.0 if start + STEP <= p.spec.upper[joint] else -1.0
    target = home.copy()
    target[joint] = start + sign * STEP
    p.set_targets(target)
    dt = p.model.opt.timestep
    out = np.empty(int(HORIZON_S / dt))
    for i in range(len(out)):
        mujoco.mj_step(p.model, p.data)
        out[i] = (p.joint_positions()[joint] - start) * sign / STEP
    return out, dt, p.spec.control_period


@pytest.mark.parametrize(("arm", "joint"), CASES, ids=[f"{a}-{ARMS[a].joint_names[j]}" for a, j in CASES])
def test_step_response(arm: str, joint: int) -> None:
    y, dt, period = step_response(arm, joint)
    # No teleport: one control period after the command the joint is still well short of the target.
    assert y[int(period / dt) - 1] < 0.5, f"reached {y[int(period / dt) - 1]:.0%} of the step in one control period"
    assert (y >= 0.9).any(), f"never reached 90 % of the step (max {y.max():.0%})"
    rise = (np.argmax(y >= 0.9) - np.argmax(y >= 0.1)) * dt
    assert 0.03 <= rise <= 0.5, f"10-90 % rise time {rise:.3f} s is not servo-like"
    final = y[-int(0.2 / dt) :].mean()
    assert abs(final - 1.0) < 0.1, f"settles at {final:.0%} of the step"
    assert y.max() - final < 0.05, f"overshoots the settled value by {y.max() - final:.1%}"
    # No oscillation: once within 10 % of the settled value it stays there.
    settled_from = np.argmax(np.abs(y - final) < 0.1)
    assert np.all(np.abs(y[settled_from:] - final) < 0.1)
