"""PickCube: grasp a cube placed at a random pose on the table and lift it at least 5 cm.

Observation `environment_state` (7): cube position and quaternion (w, x, y, z). Reward terms:
reach (tool point to cube), grasp (both finger pads touch the cube) and lift (height, capped at 5 cm).
Success: the cube is at least 5 cm up and held (both pads on it), so a cube flicked or knocked into the air
is not a success.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from twinarm.envs.arm_env import ArmEnv
from twinarm.envs.physics import ArmPhysics
from twinarm.envs.props import CUBE_HALF, add_cube, yaw_quat
from twinarm.envs.task import Task, closeness, point_distance

LIFT_HEIGHT = 0.05


@dataclass(frozen=True)
class FreeCube:
    """A free cube in a bound physics (`add_cube`'s body, geom and free joint): its ids, half size, and live views
    of its position and qpos (position + quaternion)."""

    geom: int
    body: int
    qadr: int
    vadr: int
    half: float
    xpos: np.ndarray
    qpos: np.ndarray

    @classmethod
    def of(cls, physics: ArmPhysics, name: str) -> FreeCube:
        m = physics.model
        joint = m.joint(f"{name}_joint").id
        geom, body, qadr = m.geom(name).id, m.body(name).id, int(m.jnt_qposadr[joint])
        return cls(geom, body, qadr, int(m.jnt_dofadr[joint]), float(m.geom_size[geom][0]),
                   physics.data.xpos[body], physics.data.qpos[qadr : qadr + 7])  # fmt: skip

    def place(self, physics: ArmPhysics, xy: np.ndarray, yaw: float) -> None:
        """Rest it on the table at `xy`, turned `yaw` about the vertical, at rest."""
        q = physics.data.qpos
        q[self.qadr : self.qadr + 3] = [xy[0], xy[1], self.half]
        q[self.qadr + 3 : self.qadr + 7] = yaw_quat(yaw)
        physics.data.qvel[self.vadr : self.vadr + 6] = 0.0


class CubeTask(Task):
    """Shared cube handling for the pick tasks."""

    def build_scene(self, mjspec: mujoco.MjSpec) -> None:
        add_cube(mjspec)

    def bind(self, physics: ArmPhysics) -> None:
        super().bind(physics)
        self.cube = FreeCube.of(physics, "cube")
        self.cube_geom, self.cube_body, self.cube_qadr = self.cube.geom, self.cube.body, self.cube.qadr
        self.cube_half = self.cube.half
        self._cube_xpos, self._cube_qpos = self.cube.xpos, self.cube.qpos

    def place_cube(self, physics: ArmPhysics, xy: np.ndarray, yaw: float) -> None:
        self.cube.place(physics, xy, yaw)

    def sample_apart(self, rng: np.random.Generator, min_separation: float, other: str) -> tuple[np.ndarray, np.ndarray]:
        """xy of the cube and of a second prop (`other`, named in the error) at least `min_separation` apart,
        both resampled until they are (a cube in the middle may leave no room for the other)."""
        for _ in range(1000):
            cube_xy = self.sample_in_workspace(rng)
            other_xy = self.sample_in_workspace(rng, margin=0.01)
            if np.linalg.norm(other_xy - cube_xy) >= min_separation:
                return cube_xy, other_xy
        raise RuntimeError(f"{self.spec.name}: workspace too small to separate cube and {other} by {min_separation} m")

    def cube_pose(self, physics: ArmPhysics) -> np.ndarray:
        return physics.data.qpos[self.cube_qadr : self.cube_qadr + 7].copy()

    def cube_height(self, physics: ArmPhysics) -> float:
        """Height of the cube's centre above its resting height."""
        return float(physics.data.xpos[self.cube_body][2] - self.cube_half)

    def grasped(self, physics: ArmPhysics) -> bool:
        return self.pads_touching(physics, self.cube_geom) >= 2

    def reach_term(self, physics: ArmPhysics) -> float:
        return self._cube_terms(physics)[0]

    @staticmethod
    def _place_reward(reach: float, height: float, grasped: bool, place: float, success: bool,
                      carry_height: float) -> tuple[float, dict[str, float], bool]:  # fmt: skip
        """The pick-and-place tasks' reward: reach, grasp, lift (up to `carry_height`), nearness to the place
        (`place`, 0..1) and success, weighted 0.15 / 0.15 / 0.2 / 0.2 / 0.3; with its terms and success."""
        grasp = float(grasped)
        lift = min(max(height / carry_height, 0.0), 1.0) * grasp
        total = 0.15 * reach + 0.15 * grasp + 0.2 * lift + 0.2 * place + 0.3 * float(success)
        return total, {"reward_reach": reach, "reward_grasp": grasp, "reward_lift": lift, "reward_place": place}, success

    def _cube_terms(self, physics: ArmPhysics) -> tuple[float, float, bool, list[float]]:
        """Reach term, cube height, grasped and the cube position: what every cube reward starts from."""
        self._check_bound(physics)
        cube = self._cube_xpos.tolist()
        reach = closeness(point_distance(self._tcp_xpos.tolist(), cube))
        return reach, cube[2] - self.cube_half, self.grasped(physics), cube


class PickCube(CubeTask):
    name = "PickCube"
    env_state_dim = 7

    def initialize_episode(self, physics: ArmPhysics, rng: np.random.Generator) -> None:
        self.place_cube(physics, self.sample_in_workspace(rng), rng.uniform(-np.pi / 4, np.pi / 4))
        mujoco.mj_forward(physics.model, physics.data)

    def environment_state(self, physics: ArmPhysics) -> np.ndarray:
        return self._snapshot(physics, self._cube_qpos)

    def evaluate(self, physics: ArmPhysics) -> tuple[float, dict[str, float], bool]:
        reach, height, grasped, _ = self._cube_terms(physics)
        grasp = float(grasped)
        lift = min(max(height / LIFT_HEIGHT, 0.0), 1.0) * grasp
        total = 0.25 * reach + 0.25 * grasp + 0.5 * lift
        return (
            total,
            {"reward_reach": reach, "reward_grasp": grasp, "reward_lift": lift},
            grasped and height >= LIFT_HEIGHT,
        )

    def reward(self, physics: ArmPhysics) -> tuple[float, dict[str, float]]:
        return self.evaluate(physics)[:2]

    def is_success(self, physics: ArmPhysics) -> bool:
        return self.cube_height(physics) >= LIFT_HEIGHT and self.grasped(physics)


class PickCubeEnv(ArmEnv):
    """`twinarm/<Arm>-PickCube-v0`."""

    task_cls = PickCube


__all__ = ["CUBE_HALF", "LIFT_HEIGHT", "CubeTask", "FreeCube", "PickCube", "PickCubeEnv"]
