"""Every env id twinarm provides, registered with Gymnasium from one table, and `register_env` for yours.

Sim ids are `twinarm/<Arm>-<Task>-v<N>`; each has a real twin that differs only by the `-Real`
marker (`twinarm/SO101-PickCube-Real-v0`) and is built from the same arm spec. A user's own task (or arm) is
registered the same way under the user's namespace, e.g. `mytasks/SO101-PushCube-v0` (`register_env`).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

import gymnasium as gym

from twinarm.plugins import load_plugins

NAMESPACE = "twinarm"
REAL_MARKER = "Real"


@dataclass(frozen=True)
class TaskInfo:
    """A task as every side sees it: its sim entry point, episode length and language instruction."""

    name: str
    entry_point: str
    max_episode_steps: int
    instruction: str


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
        ),
        TaskInfo(
            "Insertion",
            "twinarm.envs.tasks.insertion:InsertionEnv",
            400,
            "Pick up the socket and the peg, one in each gripper, and insert the peg into the socket in mid-air.",
        ),
    )
}


@dataclass(frozen=True)
class EnvEntry:
    """One registered (arm, task) pair; `arm_token` is the id spelling (`SO101`), `arm` the spec name,
    `namespace` the id's (twinarm's own, or a user's package that `register_env`s its tasks)."""

    arm_token: str
    arm: str
    task: str
    version: int = 0
    namespace: str = NAMESPACE

    @property
    def sim_id(self) -> str:
        return f"{self.namespace}/{self.arm_token}-{self.task}-v{self.version}"

    @property
    def real_id(self) -> str:
        return f"{self.namespace}/{self.arm_token}-{self.task}-{REAL_MARKER}-v{self.version}"

    @property
    def task_info(self) -> TaskInfo:
        return TASKS[self.task]


#: Every registered pair: twinarm's own, then those `register_env` adds (one list, extended in place, so that every
#: module holding it sees them).
ENV_ENTRIES: list[EnvEntry] = [
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
]


def sim_ids() -> list[str]:
    return [e.sim_id for e in ENV_ENTRIES]


def real_ids() -> list[str]:
    return [e.real_id for e in ENV_ENTRIES]


class UnknownEnvId(KeyError):
    """An id twinarm does not register; the message offers the nearest ones (a KeyError, printed unquoted)."""

    def __str__(self) -> str:
        return str(self.args[0])


def entry_for(env_id: str) -> EnvEntry:
    """The table row behind a sim or real id, also one a user's package registers (`register_env`): Gymnasium's
    module form `pkg:ns/Id` imports `pkg` first, and an id of a namespace not registered yet imports the package
    of that name (`mytasks/SO101-PushCube-v0` imports `mytasks`)."""
    plain = import_env_module(env_id)

    def found() -> EnvEntry | None:
        return next((e for e in ENV_ENTRIES if plain in (e.sim_id, e.real_id)), None)

    # not found: once, the installed packages' own tasks and arms (`twinarm.plugins` entry points), then again
    entry = found()
    if entry is None and load_plugins():
        entry = found()
    if entry is not None:
        return entry
    full = plain if "/" in plain else f"{NAMESPACE}/{plain}"
    near = difflib.get_close_matches(full, sim_ids() + real_ids(), n=3, cutoff=0.75)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    raise UnknownEnvId(f"{env_id!r} is not a twinarm env id{hint} (`twinarm envs` lists them; your own task's ids "
                       "come from `twinarm.register_env` in your package)")


def task_arms(task: str) -> int | None:
    """How many arms `task` drives: as many as the arms its ids are registered on have (None for a task no id
    names). The real env checks an `arm=` against it, as the sim's Task checks its own."""
    from twinarm.arms import get_arm

    counts = {get_arm(e.arm).n_arms for e in ENV_ENTRIES if e.task == task}
    return counts.pop() if len(counts) == 1 else None


def import_env_module(env_id: str) -> str:
    """`env_id` without Gymnasium's `module:` part, after importing that module; for an id whose namespace nothing
    has registered yet, after importing the package named as the namespace where there is one, else the installed
    plugins (`twinarm.plugins`). So a worker process, or the CLI, finds a user's ids as `gym.make` finds twinarm's
    after `import twinarm`."""
    module, sep, plain = env_id.rpartition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownEnvId(f"{env_id!r}: cannot import {module!r}, the package that registers it ({exc})") from exc
        return plain
    namespace = plain.split("/", 1)[0] if "/" in plain else None

    def known() -> bool:
        return any(e.namespace == namespace for e in ENV_ENTRIES)

    if namespace and namespace != NAMESPACE and not known():
        try:
            importlib.import_module(namespace)
        except ImportError as exc:
            if exc.name != namespace:  # the package is there but fails to import: say why
                raise
        if not known():
            load_plugins()
    return plain


def register_env(
    arm: str, task: str, entry_point: str, *, namespace: str, max_episode_steps: int, instruction: str,
    arm_token: str | None = None, version: int = 0,
) -> EnvEntry:
    """Register your own task on an arm (`twinarm.register_arm` adds your own arm) as a sim id
    `<namespace>/<ArmToken>-<Task>-v<version>` and its real twin `...-Real-v<version>` (`RealArmEnv` on that arm,
    the same spaces), so that `gym.make`, `make_vec` and every `twinarm --env` take them, as twinarm's own.
    `entry_point` is your ArmEnv subclass (`"mytasks.push_cube:PushCubeEnv"`), whose `task_cls` is named `task`;
    `instruction` is the dataset's task text. Call it when your package is imported: the CLI and worker processes
    import the package named as the namespace (or the module of a `pkg:ns/Id` id) to find the ids. Idempotent;
    a task name is global, so one that names another entry point is refused."""
    from twinarm.arms import ARMS, get_arm

    spec = get_arm(arm)
    if ARMS.get(spec.name) != spec:
        raise ValueError(f"arm {spec.name!r} is not registered: call twinarm.register_arm(spec) first")
    if namespace == NAMESPACE:
        raise ValueError(f"namespace {NAMESPACE!r} is twinarm's own: register yours under your package's name")
    info = TaskInfo(task, entry_point, max_episode_steps, instruction)
    known = TASKS.get(task)
    if known is not None and known != info:
        raise ValueError(f"task {task!r} is registered already as {known}; give yours another name")
    token = arm_token or next((e.arm_token for e in ENV_ENTRIES if e.arm == spec.name), spec.name.upper())
    entry = EnvEntry(token, spec.name, task, version, namespace)
    TASKS[task] = info
    if entry not in ENV_ENTRIES:
        ENV_ENTRIES.append(entry)
    register_all()
    return entry


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
