"""Reach: move the gripper's tool point to a random target in the workspace.

Observation `environment_state` (3): target position (never within the success distance at reset).
Reward: 1 - tanh(10 * distance), success within 2 cm.
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
        """A target anywhere in the workspace but where the tool point already is: one drawn within the success
        distance of it (2-4 % of draws) is drawn again, so that no episode starts solved."""
        zc, zh = self.workspace_center[2], self.workspace_half[2]
        tcp = self.tcp_pos(physics)
        while True:
            xy = self.sample_in_workspace(rng)
            target = np.array([xy[0], xy[1], rng.uniform(max(zc - zh, 0.03), zc + zh)])
            if np.linalg.norm(target - tcp) >= SUCCESS_DISTANCE:
                break
        physics.data.mocap_pos[self.target_mocap] = target
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
