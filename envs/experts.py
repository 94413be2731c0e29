"""Scripted experts for the single-arm tasks: Cartesian waypoints tracked by damped least-squares IK.

An expert reads the privileged sim state (object poses) at the start of the episode, plans phases
(approach, descend, grasp, lift, carry, place, release) and returns absolute joint targets in the
arm spec's units, so its actions are exactly what a policy or a real arm would receive. A phase may also
aim by what the sim shows while it runs (StackCube's set-down steers the held cube onto the green one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from twinarm.envs.arm_env import ArmEnv
from twinarm.envs.bimanual_experts import BIMANUAL_PLANNERS, BimanualExpert
from twinarm.envs.expert_base import Expert, action_map, check_single_env
from twinarm.envs.ik import TcpIK, down_rotation
from twinarm.envs.props import PLATE_HALF_HEIGHT, quat_yaw

GRIPPER_OPEN = 0.6
GRIPPER_CLOSED = 0.0
#: Tool point height above the cube centre when grasping (keeps the fingertips off the table).
GRASP_OFFSET = 0.008
APPROACH_HEIGHT = 0.07
#: Share of an aimed waypoint's remaining horizontal error (object to goal) the expert's aim takes up per step.
AIM_GAIN = 0.15


@dataclass(frozen=True)
class Waypoint:
    """Reach `pos` (tool point, world frame) with gripper `grip` over `steps` control steps.

    `aim`, where given, reads the horizontal error still to null (goal minus held object, metres) from the sim
    at each step; the expert shifts this and every later target by it, a little per step, so a held object
    lands on its goal despite its offset in the hand and the arm's sag under load.
    """

    steps: int
    pos: np.ndarray
    grip: float
    yaw: float
    aim: Callable[[ArmEnv], np.ndarray] | None = None


class ScriptedExpert(Expert):
    """Tracks a task-specific list of waypoints, planned at each episode's first call (`Expert`)."""

    def __init__(self, env: gym.Env, planner: Callable[[ArmEnv], list[Waypoint]], rot_weight: float = 0.3):
        super().__init__(env)
        self.env: ArmEnv
        self.planner = planner
        self.ik = TcpIK(self.env.physics, rot_weight=rot_weight)
        self._plan: list[Waypoint] | None = None

    def _start(self) -> None:
        phys = self.env.physics
        q = phys.joint_positions()
        grip = phys.spec.gripper_mask
        self._q = q[~grip].copy()
        pos, rot = self.ik.tcp_pose(self._q)
        self._start_wp = Waypoint(0, pos, float(q[grip][0]), float(np.arctan2(rot[1, 0], rot[0, 0])))
        self._plan = self.planner(self.env)
        self._t = 0
        self._aim = np.zeros(3)

    def _act(self) -> np.ndarray:
        """Next joint targets in spec units."""
        assert self._plan is not None
        t, prev = self._t, self._start_wp
        for wp in self._plan:
            if t < wp.steps:
                break
            t -= wp.steps
            prev = wp
        else:
            wp, t = self._plan[-1], wp.steps
        s = min(1.0, (t + 1) / wp.steps)
        s = s * s * (3 - 2 * s)  # smoothstep: gentle starts and stops
        pos = prev.pos + s * (wp.pos - prev.pos)
        yaw = prev.yaw + s * _wrap(wp.yaw - prev.yaw)
        grip = prev.grip + s * (wp.grip - prev.grip)
        if wp.aim is not None:
            self._aim[:2] += AIM_GAIN * wp.aim(self.env)
        pos = pos + self._aim
        rot = down_rotation(yaw) if self.ik.rot_weight > 0 else None
        self._q, _ = self.ik.solve(self._q, pos, rot, iters=15)
        self._t += 1
        return np.concatenate([self._q, [grip]]).astype(np.float32)


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def grasp_yaw(cube_quat: np.ndarray, xy: np.ndarray) -> float:
    """Jaw yaw that closes on two opposite cube faces with the least wrist roll from radial."""
    radial = float(np.arctan2(xy[1], xy[0]))
    yaw = quat_yaw(cube_quat)
    candidates = [yaw + k * np.pi / 2 for k in range(-4, 5)]
    return min(candidates, key=lambda c: abs(_wrap(c - radial)) + 10 * (abs(c - radial) > np.pi))


def _pick_waypoints(env: ArmEnv) -> tuple[list[Waypoint], float, np.ndarray]:
    task = env.task
    pose = task.cube_pose(env.physics)  # type: ignore[attr-defined]
    xy = pose[:2]
    yaw = grasp_yaw(pose[3:7], xy)
    z = pose[2] + GRASP_OFFSET
    above = np.array([xy[0], xy[1], z + APPROACH_HEIGHT])
    grasp = np.array([xy[0], xy[1], z])
    return (
        [
            Waypoint(25, above, GRIPPER_OPEN, yaw),
            Waypoint(18, grasp, GRIPPER_OPEN, yaw),
            Waypoint(12, grasp, GRIPPER_CLOSED, yaw),
        ],
        yaw,
        grasp,
    )


def plan_pick_cube(env: ArmEnv) -> list[Waypoint]:
    wps, yaw, grasp = _pick_waypoints(env)
    lifted = grasp + np.array([0.0, 0.0, 0.09])
    return wps + [Waypoint(28, lifted, GRIPPER_CLOSED, yaw), Waypoint(1000, lifted, GRIPPER_CLOSED, yaw)]


def _carry_and_release(
    grasp: np.ndarray, yaw: float, place: np.ndarray, place_yaw: float, aim: Callable[[ArmEnv], np.ndarray] | None = None
) -> list[Waypoint]:
    """After a grasp at `grasp`: lift, carry over `place` turning the jaws to `place_yaw`, set down, let go, back off.

    `aim` (see `Waypoint`) steers the set-down by what the sim shows of the held object.
    """
    carry_z = grasp[2] + 0.07
    lifted = np.array([grasp[0], grasp[1], carry_z])
    over = np.array([place[0], place[1], carry_z])
    retreat = place + np.array([0.0, 0.0, 0.06])
    return [
        Waypoint(22, lifted, GRIPPER_CLOSED, yaw),
        Waypoint(35, over, GRIPPER_CLOSED, place_yaw),
        Waypoint(22, place, GRIPPER_CLOSED, place_yaw, aim),
        Waypoint(12, place, GRIPPER_OPEN, place_yaw),
        Waypoint(20, retreat, GRIPPER_OPEN, place_yaw),
        Waypoint(1000, retreat, GRIPPER_OPEN, place_yaw),
    ]


def plan_pick_place(env: ArmEnv) -> list[Waypoint]:
    wps, yaw, grasp = _pick_waypoints(env)
    plate = env.task.plate_pos(env.physics)  # type: ignore[attr-defined]
    place_yaw = yaw + _wrap(float(np.arctan2(plate[1], plate[0]) - np.arctan2(grasp[1], grasp[0])))
    place = np.array([plate[0], plate[1], 2 * PLATE_HALF_HEIGHT + grasp[2] + 0.004])
    return wps + _carry_and_release(grasp, yaw, place, place_yaw)


def plan_stack_cube(env: ArmEnv) -> list[Waypoint]:
    """Pick the red cube, carry it over the green one with its faces turned to match, set it down, let go."""
    wps, yaw, grasp = _pick_waypoints(env)
    task = env.task
    base = task.base_pose(env.physics)  # type: ignore[attr-defined]
    top = base[2] + task.base.half  # type: ignore[attr-defined]
    place = np.array([base[0], base[1], top + task.cube_half + GRASP_OFFSET + 0.003])  # type: ignore[attr-defined]
    return wps + _carry_and_release(grasp, yaw, place, grasp_yaw(base[3:7], base[:2]), aim=_onto_base)


def _onto_base(env: ArmEnv) -> np.ndarray:
    """Horizontal error of the held red cube from the green cube's centre (the set-down's aim)."""
    task = env.task
    return task.base_pose(env.physics)[:2] - task.cube_pose(env.physics)[:2]  # type: ignore[attr-defined]


def plan_reach(env: ArmEnv) -> list[Waypoint]:
    target = env.task.target(env.physics)  # type: ignore[attr-defined]
    yaw = float(np.arctan2(target[1], target[0]))
    return [Waypoint(40, target, 0.3, yaw), Waypoint(1000, target, 0.3, yaw)]


#: Task name -> (planner, orientation weight). Reach cares about position only (weight 0).
PLANNERS: dict[str, tuple[Callable[[ArmEnv], list[Waypoint]], float]] = {
    "Reach": (plan_reach, 0.0),
    "PickCube": (plan_pick_cube, 0.3),
    "PickPlace": (plan_pick_place, 0.3),
    "StackCube": (plan_stack_cube, 0.3),
}


def register_expert(task: str, planner: Callable[[ArmEnv], list[Waypoint]], rot_weight: float = 0.3) -> None:
    """Give your own single-arm task a scripted expert: `planner(env)` returns the episode's `Waypoint`s (tool
    poses and gripper openings; see `plan_pick_cube`), which `ScriptedExpert` follows with IK; `rot_weight` is how
    much the tool's orientation counts (0: position only). `make_expert` and `twinarm record --policy scripted` then
    find it by the task's name. A name that has another planner is refused."""
    known = PLANNERS.get(task)
    if known is not None and known != (planner, rot_weight):
        raise ValueError(f"task {task!r} has a scripted expert already ({known[0].__qualname__})")
    PLANNERS[task] = (planner, rot_weight)


def make_expert(env: gym.Env) -> ScriptedExpert | BimanualExpert:
    """The scripted expert for `env`'s task (any twinarm sim env, one arm or two, wrapped or not).

    Its actions are in `env.action_space`: joint targets in spec units through wrappers that keep the arm's action
    space; through one that changes it, mapped by the wrapper's `inverse_action` (`agents.sb3.SB3Wrapper`'s
    [-1, 1], `envs.lerobot_view.LeRobotView`'s LeRobot units). Any other action-space-changing wrapper (e.g.
    Gymnasium's RescaleAction) is refused, as is a vector env. It re-plans by itself after every `env.reset()`.
    """
    check_single_env(env)
    base = env.unwrapped
    name = getattr(getattr(base, "task", None), "name", None)
    if name in BIMANUAL_PLANNERS:
        return BimanualExpert(env, BIMANUAL_PLANNERS[name])
    if name not in PLANNERS:
        known = sorted(PLANNERS) + sorted(BIMANUAL_PLANNERS)
        raise ValueError(f"no scripted expert for task {name!r}; experts exist for {known} (your own task's: "
                         "twinarm.envs.experts.register_expert)")
    action_map(env)  # refuses an action wrapper it cannot answer through, before any IK is set up
    planner, rot_weight = PLANNERS[name]
    return ScriptedExpert(env, planner, rot_weight)


def expert_prefix(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The scripted expert's first `steps` steps on `env` from `reset(seed)`: agent_pos before each action and
    after the last (steps + 1 rows), and the actions (steps rows). One trajectory to compare across envs: sim and
    real ids, a replay under other dynamics, two runs of the same seed."""
    expert = make_expert(env)
    obs, _ = env.reset(seed=seed)
    expert.reset()
    qs, actions = [obs["agent_pos"]], []
    for _ in range(steps):
        actions.append(expert(obs))
        obs, *_ = env.step(actions[-1])
        qs.append(obs["agent_pos"])
    return np.array(qs), np.array(actions)


def expert_episodes(env_id: str, seeds: Iterable[int], **env_kwargs: Any) -> Iterator[tuple[bool, float]]:
    """Roll the scripted expert out on `env_id` (state observations), one episode per seed.

    Yields (success at the end of the episode, episode return); the one rollout loop that tests,
    benchmarks and the README table share. `env_kwargs` go to `gymnasium.make` (e.g. `randomization=`).
    """
    env = gym.make(env_id, obs_type="state", **env_kwargs)
    expert = make_expert(env)
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            expert.reset()
            total, done = 0.0, False
            while not done:
                obs, reward, term, trunc, info = env.step(expert(obs))
                total += reward
                done = term or trunc
            yield bool(info["is_success"]), total
    finally:
        env.close()


def expert_success_rate(env_id: str, episodes: int, first_seed: int = 0) -> float:
    """Fraction of `episodes` seeded episodes (first_seed, first_seed+1, ...) the expert solves."""
    return sum(ok for ok, _ in expert_episodes(env_id, range(first_seed, first_seed + episodes))) / episodes
