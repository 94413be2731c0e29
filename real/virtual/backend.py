"""What moves the virtual servos' joints: the `JointBackend` interface, an in-memory stand-in with
first-order servo dynamics, and an adapter over the MuJoCo `ArmPhysics` of `twinarm.envs`."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from twinarm.spec import ArmSpec


@runtime_checkable
class JointBackend(Protocol):
    """Joint state in SI units in spec order (radians, gripper 0..1) and position targets."""

    spec: ArmSpec

    @property
    def control_period(self) -> float: ...

    def joint_positions(self) -> np.ndarray: ...

    def joint_velocities(self) -> np.ndarray: ...

    def actuator_efforts(self) -> np.ndarray: ...

    def set_targets(self, q: np.ndarray) -> None: ...

    def step(self) -> None: ...

    def move_to(self, q: np.ndarray) -> None:
        """Put the joints at `q` at rest (a hand moving a limp arm; also used to start an episode)."""
        ...


class InMemoryBackend:
    """Each joint slews toward its target at `max_speed` (rad/s or fraction/s); effort is a spring."""

    def __init__(self, spec: ArmSpec, max_speed: float = 6.0, stiffness: float = 2.0,
                 control_period: float | None = None, q0: np.ndarray | None = None) -> None:
        self.spec = spec
        self.max_speed = float(max_speed)
        self.stiffness = float(stiffness)
        self._dt = float(control_period if control_period is not None else spec.control_period)
        self._q = np.zeros(spec.dof) if q0 is None else np.asarray(q0, dtype=np.float64).copy()
        self._v = np.zeros(spec.dof)
        self._target = self._q.copy()

    @property
    def control_period(self) -> float:
        return self._dt

    def joint_positions(self) -> np.ndarray:
        return self._q.copy()

    def joint_velocities(self) -> np.ndarray:
        return self._v.copy()

    def actuator_efforts(self) -> np.ndarray:
        return self.stiffness * (self._target - self._q)

    def set_targets(self, q: np.ndarray) -> None:
        self._target = np.asarray(q, dtype=np.float64).copy()

    def step(self) -> None:
        delta = np.clip(self._target - self._q, -self.max_speed * self._dt, self.max_speed * self._dt)
        self._q = self._q + delta
        self._v = delta / self._dt

    def move_to(self, q: np.ndarray) -> None:
        self._q = np.asarray(q, dtype=np.float64).copy()
        self._v = np.zeros(self.spec.dof)
        self._target = self._q.copy()


def _delay_line(steps: int) -> Any:
    from twinarm.envs.randomization import DelayLine  # the virtual bus alone may import envs

    return DelayLine(steps)


class PhysicsBackend:
    """Adapter over `twinarm.envs.physics.ArmPhysics` (or any object with its methods, e.g. a sim env's physics).
    With `delay_steps`, a target takes effect that many control steps after it was written (the sim env's
    `action_delay_steps`, so a virtual arm can carry a dynamics file's command latency too)."""

    def __init__(self, physics: Any, delay_steps: int = 0) -> None:
        self.physics = physics
        self.spec: ArmSpec = physics.spec
        self.delay_steps = int(delay_steps)
        self._latest: np.ndarray | None = None  # the last target written, not yet sent down the delay line
        self._delay = _delay_line(self.delay_steps)

    @classmethod
    def from_arm(cls, arm: str | ArmSpec, dynamics: Any = None) -> PhysicsBackend:
        """The bare arm, with a dynamics file's parameters and latency (`twinarm.envs.dynamics`) if given."""
        from twinarm.envs.dynamics import ArmDynamics, apply_dynamics  # the virtual bus alone may import envs
        from twinarm.envs.physics import ArmPhysics

        physics = ArmPhysics.from_arm(arm)
        if dynamics is None:
            return cls(physics)
        dyn = apply_dynamics(physics.model, physics.spec, ArmDynamics.coerce(dynamics))
        return cls(physics, dyn.action_delay_steps)

    @property
    def control_period(self) -> float:
        return float(getattr(self.physics, "control_period", self.spec.control_period))

    def joint_positions(self) -> np.ndarray:
        return np.asarray(self.physics.joint_positions(), dtype=np.float64)

    def joint_velocities(self) -> np.ndarray:
        return np.asarray(self.physics.joint_velocities(), dtype=np.float64)

    def actuator_efforts(self) -> np.ndarray:
        return np.asarray(self.physics.actuator_efforts(), dtype=np.float64)

    def set_targets(self, q: np.ndarray) -> None:
        if self.delay_steps:
            self._latest = np.array(q, dtype=np.float64)
        else:
            self.physics.set_targets(np.asarray(q, dtype=np.float64))

    def step(self) -> None:
        if self.delay_steps and self._latest is not None and (due := self._delay.push(self._latest)) is not None:
            self.physics.set_targets(due)
        self.physics.step_control()

    def move_to(self, q: np.ndarray) -> None:
        """Set the arm's joints (and targets) to `q` at rest, leaving the rest of the scene as it is."""
        import mujoco

        p = self.physics
        x = np.asarray(q, dtype=np.float64)
        self._latest, self._delay = None, _delay_line(self.delay_steps)
        p.data.qpos[p.qpos_adr] = p.spec_to_qpos(x)
        p.data.qvel[p.dof_adr] = 0.0
        p.set_targets(x)
        mujoco.mj_forward(p.model, p.data)
