"""Every env id twinarm provides, registered with Gymnasium from one table.

Sim ids are `twinarm/<Arm>-<Task>-v<N>`; each has a real twin that differs only by the `-Real`
marker (`twinarm/SO101-PickCube-Real-v0`) and is built from the same arm spec.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import gymnasium as gym

NAMESPACE = "twinarm"
REAL_MARKER = "Real"


@dataclass(frozen=True)
class TaskInfo:
    """A task as every side sees it: its sim entry point, episode length and language instruction."""

    name: str
    entry_point: str
    max_episode_steps: int
    instruction: str
    #: how many arms the task drives (its sim Task class says the same)
    arms: int = 1


TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("Reach", "twinarm.envs.tasks.reach:ReachEnv", 100, "Move the gripper to the target."),
        TaskInfo("PickCube", "twinarm.envs.tasks.pick_cube:PickCubeEnv", 150, "Pick up the cube."),
        TaskInfo(
            "PickPlace", "twinarm.envs.tasks.pick_place:PickPlaceEnv", 220, "Pick the cube and place it on the plate."
        ),
        TaskInfo(
            "StackCube", "twinarm.envs.tasks.stack_cube:StackCubeEnv", 250, "Stack the red cube on the green cube."
        ),
        TaskInfo(
            "TransferCube",
            "twinarm.envs.tasks.transfer_cube:TransferCubeEnv",
            400,
            "Pick up the cube with the right arm and hand it over to the left arm.",
            arms=2,
        ),
        TaskInfo(
            "Insertion",
            "twinarm.envs.tasks.insertion:InsertionEnv",
            400,
            "Pick up the socket and the peg, one in each gripper, and insert the peg into the socket in mid-air.",
            arms=2,
        ),
    )
}


@dataclass(frozen=True)
class EnvEntry:
    """One registered (arm, task) pair; `arm_token` is the id spelling (`SO101`), `arm` the spec name."""

    arm_token: str
    arm: str
    task: str
    version: int = 0

    @property
    def sim_id(self) -> str:
        return f"{NAMESPACE}/{self.arm_token}-{self.task}-v{self.version}"

    @property
    def real_id(self) -> str:
        return f"{NAMESPACE}/{self.arm_token}-{self.task}-{REAL_MARKER}-v{self.version}"

    @property
    def task_info(self) -> TaskInfo:
        return TASKS[self.task]


ENV_ENTRIES: tuple[EnvEntry, ...] = (
    EnvEntry("SO101", "so101", "Reach"),
    EnvEntry("SO101", "so101", "PickCube"),
    EnvEntry("SO101", "so101", "PickPlace"),
    EnvEntry("SO101", "so101", "StackCube"),
    EnvEntry("SO100", "so100", "Reach"),
    EnvEntry("SO100", "so100", "PickCube"),
    EnvEntry("SO100", "so100", "PickPlace"),
    EnvEntry("SO100", "so100", "StackCube"),
    EnvEntry("Koch", "koch", "Reach"),
    EnvEntry("Koch", "koch", "PickCube"),
    EnvEntry("Koch", "koch", "PickPlace"),
    EnvEntry("Koch", "koch", "StackCube"),
    EnvEntry("Aloha", "aloha", "TransferCube"),
    EnvEntry("Aloha", "aloha", "Insertion"),
)


def sim_ids() -> list[str]:
    return [e.sim_id for e in ENV_ENTRIES]


def real_ids() -> list[str]:
    return [e.real_id for e in ENV_ENTRIES]


class UnknownEnvId(KeyError):
    """An id twinarm does not register; the message offers the nearest ones (a KeyError, printed unquoted)."""

    def __str__(self) -> str:
        return str(self.args[0])


def entry_for(env_id: str) -> EnvEntry:
    """The table row behind a sim or real id."""
    for e in ENV_ENTRIES:
        if env_id in (e.sim_id, e.real_id):
            return e
    full = env_id if "/" in env_id else f"{NAMESPACE}/{env_id}"
    near = difflib.get_close_matches(full, sim_ids() + real_ids(), n=3, cutoff=0.75)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    raise UnknownEnvId(f"{env_id!r} is not a twinarm env id{hint} (`twinarm envs` lists them)")


def register_all() -> None:
    """Register every sim id and its real twin (idempotent, lazy string entry points)."""
    for e in ENV_ENTRIES:
        info = e.task_info
        if e.sim_id not in gym.registry:
            gym.register(
                id=e.sim_id,
                entry_point=info.entry_point,
                max_episode_steps=info.max_episode_steps,
                kwargs={"arm": e.arm},
            )
        if e.real_id not in gym.registry:
            gym.register(
                id=e.real_id,
                entry_point="twinarm.real.env:RealArmEnv",
                max_episode_steps=info.max_episode_steps,
                # a reset does not put a real arm (or its scene) back where a seed says
                nondeterministic=True,
                kwargs={"arm": e.arm, "task": e.task},
            )
