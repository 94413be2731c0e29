"""Build a ready-to-serve virtual arm: spec + backend (MuJoCo arm, task scene, or in-memory) + bus + pty."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from twinarm.arms import get_arm
from twinarm.real.virtual.arm import StepMode, VirtualArm
from twinarm.real.virtual.backend import InMemoryBackend, JointBackend, PhysicsBackend
from twinarm.real.virtual.bus import VirtualBus
from twinarm.real.virtual.pty_server import PtyServer
from twinarm.spec import ArmSpec


def make_backend(
    spec: ArmSpec,
    backend: Literal["mujoco", "memory"] = "mujoco",
    task: str | None = None,
    seed: int | None = None,
    dynamics: Any = None,
) -> JointBackend:
    """The joints behind the servos: the MuJoCo arm alone, the arm in a task scene, or the in-memory stand-in;
    `dynamics` (a `twinarm fit-dynamics` file or its dict) replaces the MuJoCo arm's parameters and latency."""
    if backend == "memory":
        if task is not None or dynamics is not None:
            raise ValueError("a task scene or dynamics need the mujoco backend; the memory backend has no physics")
        return InMemoryBackend(spec)
    if task is None:
        return PhysicsBackend.from_arm(spec, dynamics)
    import gymnasium as gym

    import twinarm  # noqa: F401 - registers the ids
    from twinarm.registration import ENV_ENTRIES, entry_for

    if "/" in task:  # a sim id, e.g. of a task a user's package registers (mytasks/SO101-PushCube-v0)
        entry = entry_for(task)
        if entry.arm != spec.name:
            raise KeyError(f"{task} is the {entry.arm} arm's env, not {spec.name}'s")
    else:
        entry = next((e for e in ENV_ENTRIES if e.arm == spec.name and e.task == task), None)
    if entry is None:
        tasks = sorted({e.task for e in ENV_ENTRIES if e.arm == spec.name})
        raise KeyError(f"no sim env for arm {spec.name!r} and task {task!r}; its tasks: {', '.join(tasks) or 'none'}")
    env = gym.make(entry.sim_id, obs_type="state", dynamics=dynamics).unwrapped
    env.reset(seed=seed)
    return PhysicsBackend(env.physics, env.randomizer.cfg.action_delay_steps)


def leader_arm_spec(spec: ArmSpec) -> ArmSpec:
    """The leader set-up of `spec` as one spec (ALOHA: both leader arms, on `left`/`right` buses as the
    followers): the follower's joints, ids and limits with the leader's servo models (`teleop.leader_spec`)."""
    from twinarm.real.multi_bus import bus_groups
    from twinarm.real.teleop import leader_spec

    models = {j.name: j.motor_model for g in bus_groups(spec) for j in leader_spec(spec, g).joints}
    return replace(
        spec,
        name=f"{spec.name}_leader",
        display_name=f"{spec.display_name} leader",
        joints=tuple(replace(j, motor_model=models[j.name]) for j in spec.joints),
    )


def make_virtual_arm(arm: str | ArmSpec, **options: Any) -> PtyServer:
    """A not-yet-started PtyServer whose bus serves a virtual `arm` (single-bus arms); `options` are
    `make_virtual_buses`'s (e.g. `calibrated=True` pre-stores the ideal calibration in the servos, as if
    `twinarm calibrate` had run)."""
    servers = make_virtual_buses(arm, **options)
    if len(servers) != 1:
        for s in servers.values():
            s.stop()
        raise ValueError(f"arm {arm!r} spans several buses {sorted(servers)}; use make_virtual_buses")
    return next(iter(servers.values()))


def make_virtual_buses(
    arm: str | ArmSpec,
    backend: Literal["mujoco", "memory"] = "mujoco",
    task: str | None = None,
    step_mode: StepMode = "realtime",
    calibrated: bool = False,
    seed: int | None = None,
    wire_time: bool = False,
    check_baud: bool = True,
    leader: bool = False,
    dynamics: Any = None,
) -> dict[str, PtyServer]:
    """{bus group: PtyServer} for one virtual arm: one pty per bus (ALOHA: `left`, `right`; others: `""`).

    `leader` serves the arm's leader set-up instead (`leader_arm_spec`: the leader's servo models, torque off
    as every virtual servo starts) on the follower's joints; a leader has no task scene."""
    from twinarm.real.multi_bus import bus_groups

    spec = arm if isinstance(arm, ArmSpec) else get_arm(arm)
    if leader and task is not None:
        raise ValueError("a leader arm is moved by hand and has no task scene; leave out the task")
    if leader and dynamics is not None:
        raise ValueError("a leader arm is moved by hand: dynamics are for the follower")
    joints = make_backend(spec, backend, task, seed, dynamics)
    mirrored: tuple[str, ...] = ()
    if leader:
        from twinarm.real.teleop import leader_inverted_joints

        mirrored = tuple(n for g in bus_groups(spec) for n in leader_inverted_joints(spec, g))
        spec = leader_arm_spec(spec)
    varm = VirtualArm(spec, joints, step_mode=step_mode, mirrored=mirrored)
    if calibrated:
        cal = varm.ideal_calibration()
        for j, servo in enumerate(varm.servos):
            c = cal[spec.joints[j].name]
            if servo.model.bus == "dynamixel":
                servo.set("Drive_Mode", c.drive_mode)
            servo.set("Homing_Offset", c.homing_offset)
            servo.set("Min_Position_Limit", c.range_min)
            servo.set("Max_Position_Limit", c.range_max)
            varm.refresh(servo)
            servo.set("Goal_Position", servo.get("Present_Position"))
    groups = bus_groups(spec)
    last = list(groups)[-1]
    return {
        g: PtyServer(
            VirtualBus(varm, names if len(groups) > 1 else None, drives_lockstep=g == last),
            check_baud=check_baud,
            wire_time=wire_time,
        )
        for g, names in groups.items()
    }
