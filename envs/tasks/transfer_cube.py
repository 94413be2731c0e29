"""TransferCube (ACT paper): the right arm picks up a cube and hands it over to the left arm in mid-air.

The cube (4 cm, as in ACT) starts at x in [0, 0.2], y in [0.4, 0.6] (ACT's range), upright. Reward is
ACT's staged score, 0..4: 1 right gripper touches the cube, 2 the right arm lifted it, 3 the left gripper
touches it in the air, 4 the left holds it, the right has let go and the cube is off the table (success).
Observation `environment_state` (7): cube position and quaternion (w, x, y, z).
"""

from __future__ import annotations

from typing import Any, ClassVar

import mujoco
import numpy as np

from twinarm.arms import ALOHA
from twinarm.envs.arm_env import ArmEnv
from twinarm.envs.bimanual import (
    BimanualTask,
    body_geoms,
    contact_pairs,
    free_joint_adr,
    geoms_touching,
    place_free_body,
)
from twinarm.envs.physics import ArmPhysics
from twinarm.envs.props import add_cube

CUBE_HALF = 0.02
CUBE_X = (0.0, 0.2)
CUBE_Y = (0.4, 0.6)


class TransferCube(BimanualTask):
    name = "TransferCube"
    env_state_dim = 7

    def build_scene(self, mjspec: mujoco.MjSpec) -> None:
        add_cube(mjspec, half=CUBE_HALF)

    def bind(self, physics: ArmPhysics) -> None:
        super().bind(physics)
        self.cube_geoms = body_geoms(physics.model, "cube")
        self._cube_set = frozenset(self.cube_geoms)
        self.cube_body = physics.model.body("cube").id
        self.cube_adr = free_joint_adr(physics.model, "cube_joint")
        self._cube_qpos = physics.data.qpos[self.cube_adr[0] : self.cube_adr[0] + 7]
        self.cube_half = float(physics.model.geom("cube").size[2])  # drawn by object_size_scale, if randomized

    def initialize_episode(self, physics: ArmPhysics, rng: np.random.Generator) -> None:
        xy = rng.uniform([CUBE_X[0], CUBE_Y[0]], [CUBE_X[1], CUBE_Y[1]])
        place_free_body(physics, self.cube_adr, np.array([xy[0], xy[1], self.cube_half]))  # resting on the table
        mujoco.mj_forward(physics.model, physics.data)

    def cube_pose(self, physics: ArmPhysics) -> np.ndarray:
        qa = self.cube_adr[0]
        return physics.data.qpos[qa : qa + 7].copy()

    def environment_state(self, physics: ArmPhysics) -> np.ndarray:
        return self._snapshot(physics, self._cube_qpos)

    def stage(self, physics: ArmPhysics) -> tuple[int, dict[str, float]]:
        on_cube = geoms_touching(contact_pairs(physics), self._cube_set)
        left_pads = len(on_cube & self.left_pads)
        right = not on_cube.isdisjoint(self.right_pads)
        left = left_pads > 0
        left_holds = left_pads >= 2
        on_table = not on_cube.isdisjoint(self.ground_geoms)  # the table, or the floor once knocked off it
        stage = 0
        if right:
            stage = 1
        if right and not on_table:
            stage = 2
        if left and not on_table:
            stage = 3
        if left_holds and not right and not on_table:
            stage = 4
        terms = {"touch_right": float(right), "touch_left": float(left), "cube_on_table": float(on_table)}
        return stage, terms


class TransferCubeEnv(ArmEnv):
    """`twinarm/Aloha-TransferCube-v0`."""

    task_cls = TransferCube
    metadata: ClassVar[dict[str, Any]] = {**ArmEnv.metadata, "render_fps": ALOHA.control_hz}  # the instance's too
