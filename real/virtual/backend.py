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


class PhysicsBackend:
    """Adapter over `twinarm.envs.physics.ArmPhysics` (or any object with its methods, e.g. a sim env's physics)."""

    def __init__(self, physics: Any) -> None:
        self.physics = physics
        self.spec: ArmSpec = physics.spec

    @classmethod
    def from_arm(cls, arm: str) -> PhysicsBackend:
        from twinarm.envs.physics import ArmPhysics  # the virtual bus alone may import envs

        return cls(ArmPhysics.from_arm(arm))

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
        self.physics.set_targets(np.asarray(q, dtype=np.float64))

    def step(self) -> None:
        self.physics.step_control()

    def move_to(self, q: np.ndarray) -> None:
        """Set the arm's joints (and targets) to `q` at rest, leaving the rest of the scene as it is."""
        import mujoco

        p = self.physics
        x = np.asarray(q, dtype=np.float64)
        p.data.qpos[p.qpos_adr] = p.spec_to_qpos(x)
        p.data.qvel[p.dof_adr] = 0.0
        p.set_targets(x)
        mujoco.mj_forward(p.model, p.data)
