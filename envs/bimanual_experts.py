"""Scripted experts for the two-arm tasks: per-arm Cartesian waypoints tracked by damped least-squares IK.

Like the ACT paper's scripted demos, a plan is made once from the objects' initial poses; each arm
follows its own list of tool-point poses (position, orientation, gripper opening) and the expert
returns the 14 absolute joint targets in the spec's units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from twinarm.envs.arm_env import ArmEnv
from twinarm.envs.bimanual import SIDES
from twinarm.envs.expert_base import Expert
from twinarm.envs.ik import TcpIK, down_rotation
from twinarm.envs.physics import ArmPhysics

OPEN, CLOSED = 1.0, 0.0
#: Pull of each wrist roll joint (forearm roll, wrist rotate) toward its pose at the episode start, in the IK's
#: least squares. From the home pose (wrist near its singularity) damped least squares alone slid onto the
#: wrist-flip branch in about a third of the episodes (the same tool pose with the forearm rolled half a turn
#: to its +-pi limit and the wrist rotated back): bimodal demonstrations, and a motion no teleoperator makes.
#: 1e-4 .. 1e-3 keep every episode of both tasks on the unflipped branch with the expert's success unchanged;
#: from 3e-3 the pull starts to keep the tool off its targets.
REST_WEIGHT = 3e-4
#: Tools pointing straight down, closing across world y (objects lie along x); each arm's unrolled wrist.
DOWN = {"left": down_rotation(np.pi / 2), "right": down_rotation(-np.pi / 2)}
#: Left tool pointing along +x (horizontal), closing across world z.
LEFT_SIDEWAYS = np.column_stack([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class Pose:
    """Reach tool point `pos` with orientation `rot` and gripper opening `grip` over `steps` control steps."""

    steps: int
    pos: np.ndarray
    rot: np.ndarray
    grip: float


class SideIK(TcpIK):
    """`TcpIK` for one arm of a two-arm model: the `<side>_tcp` site and that arm's joints only."""

    def __init__(self, physics: ArmPhysics, side: str, damping: float = 1e-3, rot_weight: float = 0.3):
        spec = physics.spec
        self.physics = physics
        self.model = physics.model
        self.data = mujoco.MjData(physics.model)
        self.site = physics.model.site(f"{side}_tcp").id
        arm = np.array([n.startswith(f"{side}_") for n in spec.joint_names]) & ~spec.gripper_mask
        self.mask = arm
        self.arm_dofs = physics.dof_adr[arm]
        self.arm_qadr = physics.qpos_adr[arm]
        self.lower = spec.lower[arm]
        self.upper = spec.upper[arm]
        self.damping = damping
        self.rot_weight = rot_weight
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))
        names = np.asarray(spec.joint_names)[arm]
        self.rest_weight = np.array([REST_WEIGHT if n.endswith(("forearm_roll", "wrist_rotate")) else 0.0 for n in names])


def _quat(rot: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(rot).reshape(-1))
    return q


def _slerp_rot(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    qa, qb = _quat(a), _quat(b)
    if qa @ qb < 0:
        qb = -qb
    dot = float(np.clip(qa @ qb, -1.0, 1.0))
    theta = np.arccos(dot)
    if theta < 1e-6:
        q = qa
    else:
        q = (np.sin((1 - s) * theta) * qa + np.sin(s * theta) * qb) / np.sin(theta)
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, q / np.linalg.norm(q))
    return m.reshape(3, 3)


class BimanualExpert(Expert):
    """Tracks one pose list per arm, planned at each episode's first call (`Expert`)."""

    def __init__(self, env: gym.Env, planner: Callable[[ArmEnv], dict[str, list[Pose]]], rot_weight: float = 0.5):
        super().__init__(env)
        self.env: ArmEnv
        self.planner = planner
        self.iks = {s: SideIK(self.env.physics, s, rot_weight=rot_weight) for s in SIDES}
        self.grip_index = {s: self.env.spec_arm.joint_names.index(f"{s}_gripper") for s in SIDES}
        self._plan: dict[str, list[Pose]] | None = None

    def _start(self) -> None:
        q = self.env.physics.joint_positions()
        self._q = {s: q[ik.mask].copy() for s, ik in self.iks.items()}
        self._rest = {s: arm_q.copy() for s, arm_q in self._q.items()}
        self._start_pose = {}
        for s, ik in self.iks.items():
            pos, rot = ik.tcp_pose(self._q[s])
            self._start_pose[s] = Pose(0, pos, rot, float(q[self.grip_index[s]]))
        self._plan = self.planner(self.env)
        self._t = 0

    def _target(self, side: str) -> Pose:
        assert self._plan is not None
        t, prev = self._t, self._start_pose[side]
        plan = self._plan[side]
        for wp in plan:
            if t < wp.steps:
                break
            t -= wp.steps
            prev = wp
        else:
            wp, t = plan[-1], plan[-1].steps
        s = min(1.0, (t + 1) / wp.steps)
        s = s * s * (3 - 2 * s)
        return Pose(0, prev.pos + s * (wp.pos - prev.pos), _slerp_rot(prev.rot, wp.rot, s), prev.grip + s * (wp.grip - prev.grip))

    def _act(self) -> np.ndarray:
        """Next 14 joint targets in spec units."""
        action = np.zeros(self.env.spec_arm.dof)
        for side, ik in self.iks.items():
            target = self._target(side)
            self._q[side], _ = ik.solve(self._q[side], target.pos, target.rot, iters=15,
                                        rest=(self._rest[side], ik.rest_weight))
            action[ik.mask] = self._q[side]
            action[self.grip_index[side]] = target.grip
        self._t += 1
        return action.astype(np.float32)


def _hold(pose: Pose, steps: int = 1000) -> Pose:
    return Pose(steps, pose.pos, pose.rot, pose.grip)


def plan_transfer_cube(env: ArmEnv) -> dict[str, list[Pose]]:
    """Right arm: pick the cube from above and carry it to the meeting point; left arm: take it sideways."""
    cube = env.task.cube_pose(env.physics)[:3]  # type: ignore[attr-defined]
    meet = np.array([0.0, 0.5, 0.25])
    above = cube + [0.0, 0.0, 0.10]
    grasp = cube + [0.0, 0.0, 0.005]
    right = [
        Pose(60, above, DOWN["right"], OPEN),
        Pose(40, grasp, DOWN["right"], OPEN),
        Pose(25, grasp, DOWN["right"], CLOSED),
        Pose(70, meet + [0.0, 0.0, 0.005], DOWN["right"], CLOSED),
        Pose(60, meet + [0.0, 0.0, 0.005], DOWN["right"], CLOSED),  # left arm closes in meanwhile
        Pose(20, meet + [0.0, 0.0, 0.005], DOWN["right"], OPEN),
        Pose(40, meet + [0.05, 0.0, 0.12], DOWN["right"], OPEN),
    ]
    left_wait = np.array([-0.2, 0.5, 0.25])
    left_grasp = meet + [-0.005, 0.0, 0.0]
    left = [
        Pose(150, left_wait, LEFT_SIDEWAYS, OPEN),
        Pose(45, left_grasp, LEFT_SIDEWAYS, OPEN),
        Pose(30, left_grasp, LEFT_SIDEWAYS, CLOSED),
        Pose(40, left_grasp, LEFT_SIDEWAYS, CLOSED),
        Pose(40, left_grasp + [-0.05, 0.0, 0.02], LEFT_SIDEWAYS, CLOSED),
    ]
    return {"right": right + [_hold(right[-1])], "left": left + [_hold(left[-1])]}


def plan_insertion(env: ArmEnv) -> dict[str, list[Pose]]:
    """Left arm picks the socket, right arm the peg; both lift, meet and the peg slides onto the pin."""
    task = env.task
    peg = task.peg_pose(env.physics)[:3]  # type: ignore[attr-defined]
    sock = task.socket_pose(env.physics)[:3]  # type: ignore[attr-defined]
    meet = np.array([0.0, 0.5, 0.2])
    left = [
        Pose(60, sock + [0.0, 0.0, 0.10], DOWN["left"], OPEN),
        Pose(40, sock + [0.0, 0.0, 0.003], DOWN["left"], OPEN),
        Pose(25, sock + [0.0, 0.0, 0.003], DOWN["left"], CLOSED),
        Pose(40, sock + [0.0, 0.0, 0.10], DOWN["left"], CLOSED),
        Pose(50, meet + [-0.10, 0.0, 0.0], DOWN["left"], CLOSED),
    ]
    right = [
        Pose(60, peg + [0.0, 0.0, 0.10], DOWN["right"], OPEN),
        Pose(40, peg + [0.0, 0.0, 0.005], DOWN["right"], OPEN),
        Pose(25, peg + [0.0, 0.0, 0.005], DOWN["right"], CLOSED),
        Pose(40, peg + [0.0, 0.0, 0.10], DOWN["right"], CLOSED),
        Pose(50, meet + [0.10, 0.0, 0.0], DOWN["right"], CLOSED),
        Pose(60, meet + [-0.005, 0.0, 0.0], DOWN["right"], CLOSED),
    ]
    return {"left": left + [_hold(left[-1])], "right": right + [_hold(right[-1])]}


#: Task name -> planner for two-arm tasks (single-arm planners live in `experts.PLANNERS`).
BIMANUAL_PLANNERS: dict[str, Callable[[ArmEnv], dict[str, list[Pose]]]] = {
    "TransferCube": plan_transfer_cube,
    "Insertion": plan_insertion,
}
