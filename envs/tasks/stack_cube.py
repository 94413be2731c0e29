"""StackCube: "Stack the red cube on the green cube."

Two free cubes of the same size; the red one is picked and set down on the green one. Observation
`environment_state` (14): red cube position + quaternion, green cube position + quaternion. Success: the red
cube rests on the green one (its centre within half a face of the green cube's, its bottom on the green top),
the green cube still stands upright on the table, and the gripper has let go.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from twinarm.envs.arm_env import ArmEnv
from twinarm.envs.physics import ArmPhysics
from twinarm.envs.props import add_cube
from twinarm.envs.task import closeness, point_distance
from twinarm.envs.tasks.pick_cube import CubeTask, FreeCube

BASE = "base_cube"
BASE_RGBA = (0.15, 0.65, 0.25, 1)
#: Centre-to-centre distance the two cubes start at least apart: room for the open jaws descending beside the
#: other cube (at 7 cm they knocked it over on 3 of 300 expert episodes).
MIN_SEPARATION = 0.09
CARRY_HEIGHT = 0.04
#: How far (m) a resting face may sit from the face it rests on, and the base cube's top from upright.
REST_TOLERANCE = 0.005


class StackCube(CubeTask):
    name = "StackCube"
    env_state_dim = 14

    def build_scene(self, mjspec: mujoco.MjSpec) -> None:
        super().build_scene(mjspec)
        add_cube(mjspec, name=BASE, rgba=BASE_RGBA)

    def bind(self, physics: ArmPhysics) -> None:
        super().bind(physics)
        self.base = FreeCube.of(physics, BASE)

    def initialize_episode(self, physics: ArmPhysics, rng: np.random.Generator) -> None:
        cube_xy, base_xy = self.sample_apart(rng, MIN_SEPARATION, "green cube")
        self.place_cube(physics, cube_xy, rng.uniform(-np.pi / 4, np.pi / 4))
        self.base.place(physics, base_xy, rng.uniform(-np.pi / 4, np.pi / 4))
        mujoco.mj_forward(physics.model, physics.data)

    def base_pose(self, physics: ArmPhysics) -> np.ndarray:
        """The green cube's position and quaternion (w, x, y, z)."""
        self._check_bound(physics)
        return self.base.qpos.copy()

    def environment_state(self, physics: ArmPhysics) -> np.ndarray:
        return self._snapshot(physics, self._cube_qpos, self.base.qpos)

    def _stacked(self, cube: list[float], base: list[float]) -> bool:
        """Whether the red cube (centre `cube`) rests on top of the green one (centre `base`), which stands."""
        dx, dy = cube[0] - base[0], cube[1] - base[1]
        offset = math.sqrt(dx * dx + dy * dy)
        on_top = abs((cube[2] - self.cube_half) - (base[2] + self.base.half)) < REST_TOLERANCE
        base_upright = abs(base[2] - self.base.half) < REST_TOLERANCE
        return offset < self.base.half and on_top and base_upright

    def evaluate(self, physics: ArmPhysics) -> tuple[float, dict[str, float], bool]:
        reach, height, grasped, cube = self._cube_terms(physics)
        base = self.base.xpos.tolist()
        stacked = self._stacked(cube, base)
        above = [base[0], base[1], base[2] + self.base.half + self.cube_half]
        place = closeness(point_distance(cube, above))
        return self._place_reward(reach, height, grasped, place, stacked and not grasped, CARRY_HEIGHT)

    def reward(self, physics: ArmPhysics) -> tuple[float, dict[str, float]]:
        return self.evaluate(physics)[:2]

    def is_success(self, physics: ArmPhysics) -> bool:
        return self.evaluate(physics)[2]


class StackCubeEnv(ArmEnv):
    """`twinarm/<Arm>-StackCube-v0`."""

    task_cls = StackCube
