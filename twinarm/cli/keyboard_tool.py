"""`teleop --keyboard tool`: keys move the gripper's tip in the arm's base frame and turn the wrist; inverse
kinematics on the arm's MuJoCo model turns that into joint targets, so a keyboard can pick things up (joint
by joint it hardly can), on the simulated arm or on the real one.
"""

from __future__ import annotations

import numpy as np

from twinarm.envs.ik import TcpIK, down_rotation
from twinarm.envs.physics import ArmPhysics
from twinarm.real.terminal_keys import KeyHub, KeyQueue
from twinarm.spec import ArmSpec

#: key -> (axis, direction) of the tool's target position in the arm's base frame.
MOVE_KEYS: dict[str, tuple[int, int]] = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1)}
ROLL_KEYS: dict[str, int] = {"q": 1, "e": -1}
GRIPPER_KEYS: dict[str, float] = {"o": 1.0, "c": 0.0}
#: A key move whose target the arm cannot reach within this (m) is not taken.
REACH_TOLERANCE_M = 0.005
#: Lowest tool target (m above the surface the arm stands on, z = 0 in every scene): the fingertips reach the
#: table ~1.5 cm below the SO arms' tool point, so the arm is not told to push into it.
FLOOR_Z = 0.015


class KeyboardToolTeleop:
    """Tool-space keyboard control of one arm: the tool points down, `step_m` per move key (not below `floor_z`),
    `roll_step` rad per roll key; keys from a `KeyHub` (terminal, window) or `press()`. The model's `tcp` site is
    the tool."""

    def __init__(self, spec: ArmSpec, start: np.ndarray, step_m: float = 0.01, roll_step: float = 0.1,
                 keys: KeyHub | None = None, floor_z: float = FLOOR_Z) -> None:  # fmt: skip
        if int(spec.gripper_mask.sum()) != 1:
            raise ValueError(f"tool-space keyboard drives one arm with one gripper; {spec.name} has "
                             f"{int(spec.gripper_mask.sum())} grippers (drive it with leader arms)")  # fmt: skip
        self.spec, self.step_m, self.roll_step, self.floor_z = spec, step_m, roll_step, floor_z
        self.ik = TcpIK(ArmPhysics.from_arm(spec))  # kinematics only, on a model of its own
        self._arm = ~spec.gripper_mask
        self._keys = KeyQueue(keys)
        self.hold(start)

    @staticmethod
    def help_text() -> str:
        return ("tool: w/s forward/back (base x), a/d left/right (base y), r/f up/down, q/e roll the wrist, "
                "o/c open/close the gripper")  # fmt: skip

    def hold(self, pose: np.ndarray) -> None:
        """Start again from the arm at `pose` (joints, spec units): the tool's target is where it is now."""
        q = self.spec.clip_action(np.asarray(pose, dtype=np.float64))
        pos, rot = self.ik.tcp_pose(q[self._arm])
        self._keys.clear()
        self.q, self.pos = q, pos
        self.yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))

    def press(self, key: str) -> None:
        self._keys.press(key)

    def get_action(self) -> np.ndarray:
        for key in self._keys.take():  # one at a time: a move the arm cannot make is dropped, the keys after it still count
            if key in MOVE_KEYS:
                axis, sign = MOVE_KEYS[key]
                pos = self.pos.copy()
                pos[axis] += sign * self.step_m
                pos[2] = max(pos[2], min(self.floor_z, self.pos[2]))  # down to the floor, never further
                arm_q = self._reach(pos)
                if arm_q is not None:
                    self.pos, self.q[self._arm] = pos, arm_q
            elif key in ROLL_KEYS:
                self.yaw += ROLL_KEYS[key] * self.roll_step
            elif key in GRIPPER_KEYS:
                self.q[~self._arm] = GRIPPER_KEYS[key]
        arm_q = self._reach(self.pos)  # the roll, and the wrist turning down where it now can
        if arm_q is not None:
            self.q[self._arm] = arm_q
        return self.spec.clip_action(self.q)

    def _reach(self, pos: np.ndarray) -> np.ndarray | None:
        """Arm joints putting the tool at `pos`, pointing down at `yaw` where the arm can, else as it points
        now (a 5-joint arm cannot take every orientation everywhere); None when `pos` is out of reach."""
        q0 = self.q[self._arm]
        arm_q, err = self.ik.solve(q0, pos, down_rotation(self.yaw))
        if err > REACH_TOLERANCE_M:
            arm_q, err = self.ik.solve(q0, pos)
        return arm_q if err <= REACH_TOLERANCE_M else None

    def close(self) -> None:
        """Nothing to release: the keys belong to whoever made the `KeyHub`."""
