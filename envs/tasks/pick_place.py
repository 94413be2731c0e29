"""PickPlace: "Pick the cube and place it on the plate."

Observation `environment_state` (10): cube position + quaternion, plate position. Success: the
cube rests on the plate (centre within the rim, bottom on the plate surface) and is released.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from twinarm.envs.arm_env import ArmEnv
from twinarm.envs.physics import ArmPhysics
from twinarm.envs.props import PLATE_HALF_HEIGHT, PLATE_RADIUS, add_plate
from twinarm.envs.task import closeness
from twinarm.envs.tasks.pick_cube import CubeTask

MIN_SEPARATION = 0.08  # cube half-diagonal + plate radius + a finger's width
CARRY_HEIGHT = 0.04


class PickPlace(CubeTask):
    name = "PickPlace"
    env_state_dim = 10

    def build_scene(self, mjspec: mujoco.MjSpec) -> None:
        super().build_scene(mjspec)
        add_plate(mjspec)

    def bind(self, physics: ArmPhysics) -> None:
        super().bind(physics)
        self.plate_mocap = physics.model.body("plate").mocapid[0]
        self._plate_pos = physics.data.mocap_pos[self.plate_mocap]

    def initialize_episode(self, physics: ArmPhysics, rng: np.random.Generator) -> None:
        cube_xy, plate_xy = self.sample_apart(rng, MIN_SEPARATION, "plate")
        self.place_cube(physics, cube_xy, rng.uniform(-np.pi / 4, np.pi / 4))
        physics.data.mocap_pos[self.plate_mocap] = [plate_xy[0], plate_xy[1], PLATE_HALF_HEIGHT]
        mujoco.mj_forward(physics.model, physics.data)

    def plate_pos(self, physics: ArmPhysics) -> np.ndarray:
        return physics.data.mocap_pos[self.plate_mocap].copy()

    def environment_state(self, physics: ArmPhysics) -> np.ndarray:
        return self._snapshot(physics, self._cube_qpos, self._plate_pos)

    def on_plate(self, physics: ArmPhysics) -> bool:
        cube = physics.data.xpos[self.cube_body].tolist()
        return self._rests_on_plate(
            cube, _xy_distance(cube, physics.data.mocap_pos[self.plate_mocap].tolist())
        )

    def _rests_on_plate(self, cube: list[float], xy_offset: float) -> bool:
        """The cube's centre is within the rim and its bottom on the plate's surface."""
        bottom = cube[2] - self.cube_half
        top = 2 * PLATE_HALF_HEIGHT
        return xy_offset < PLATE_RADIUS - 0.01 and abs(bottom - top) < 0.01

    def evaluate(self, physics: ArmPhysics) -> tuple[float, dict[str, float], bool]:
        reach, height, grasped, cube = self._cube_terms(physics)
        xy_offset = _xy_distance(cube, self._plate_pos.tolist())
        success = self._rests_on_plate(cube, xy_offset) and not grasped
        return self._place_reward(reach, height, grasped, closeness(xy_offset), success, CARRY_HEIGHT)

    def reward(self, physics: ArmPhysics) -> tuple[float, dict[str, float]]:
        return self.evaluate(physics)[:2]

    def is_success(self, physics: ArmPhysics) -> bool:
        return self.on_plate(physics) and not self.grasped(physics)


def _xy_distance(a: list[float], b: list[float]) -> float:
    """Horizontal distance of two points (what np.linalg.norm gives for the xy difference)."""
    dx, dy = a[0] - b[0], a[1] - b[1]
    return math.sqrt(dx * dx + dy * dy)


class PickPlaceEnv(ArmEnv):
    """`twinarm/<Arm>-PickPlace-v0`."""

    task_cls = PickPlace
