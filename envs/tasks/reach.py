"""Reach: move the gripper's tool point to a random target in the workspace.

Observation `environment_state` (3): target position. Reward: 1 - tanh(10 * distance), success
within 2 cm.
"""

from __future__ import annotations

import mujoco
import numpy as np

from twinarm.envs.arm_env import ArmEnv
from twinarm.envs.physics import ArmPhysics
from twinarm.envs.props import add_target
from twinarm.envs.task import Task, closeness, point_distance

SUCCESS_DISTANCE = 0.02


class Reach(Task):
    name = "Reach"
    env_state_dim = 3

    def build_scene(self, mjspec: mujoco.MjSpec) -> None:
        add_target(mjspec)

    def bind(self, physics: ArmPhysics) -> None:
        super().bind(physics)
        self.target_mocap = physics.model.body("target").mocapid[0]
        self._target_pos = physics.data.mocap_pos[self.target_mocap]

    def initialize_episode(self, physics: ArmPhysics, rng: np.random.Generator) -> None:
        xy = self.sample_in_workspace(rng)
        zc, zh = self.workspace_center[2], self.workspace_half[2]
        z = rng.uniform(max(zc - zh, 0.03), zc + zh)
        physics.data.mocap_pos[self.target_mocap] = [xy[0], xy[1], z]
        mujoco.mj_forward(physics.model, physics.data)

    def target(self, physics: ArmPhysics) -> np.ndarray:
        return physics.data.mocap_pos[self.target_mocap].copy()

    def environment_state(self, physics: ArmPhysics) -> np.ndarray:
        return self._snapshot(physics, self._target_pos)

    def distance(self, physics: ArmPhysics) -> float:
        """Tool point to target, in metres."""
        self._check_bound(physics)
        return point_distance(self._tcp_xpos.tolist(), self._target_pos.tolist())

    def evaluate(self, physics: ArmPhysics) -> tuple[float, dict[str, float], bool]:
        dist = self.distance(physics)
        reach = closeness(dist)
        return reach, {"reward_reach": reach, "distance": dist}, dist < SUCCESS_DISTANCE

    def reward(self, physics: ArmPhysics) -> tuple[float, dict[str, float]]:
        return self.evaluate(physics)[:2]

    def is_success(self, physics: ArmPhysics) -> bool:
        return self.distance(physics) < SUCCESS_DISTANCE


class ReachEnv(ArmEnv):
    """`twinarm/<Arm>-Reach-v0`."""

    task_cls = Reach
