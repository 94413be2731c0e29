"""An arm's servo and joint parameters (position gain, damping, armature, friction loss, torque limit, and the
mass of the link each joint moves) as a JSON file that sim envs load over the model's own values
(`gym.make(id, dynamics="so101_fit.json")`), e.g. the output of `twinarm fit-dynamics`, which fits them to a
real arm's recordings.

Values are in MuJoCo's units of each joint: kp in N*m/rad (N/m for a slide joint), damping in N*m*s/rad,
armature in kg*m^2, friction loss and the servo's torque limit (max_torque) in N*m, mass in kg (the link's
inertia scales with it, as a denser print would; a wrist camera is mass on the wrist roll's link, the gripper
body). Joints a file leaves out keep the model's values. A file may also
give the arm's command latency in control steps (`action_delay_steps`), which the env adds to any
randomization's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from twinarm.spec import ArmSpec

#: The parameters a file may set per joint, in this order in tables and fits.
PARAMS: tuple[str, ...] = ("kp", "damping", "armature", "frictionloss", "max_torque", "mass")
#: Parameters that must be > 0 (the others >= 0).
POSITIVE = ("kp", "mass")
#: What a fit fits unless told otherwise: a torque limit only shows in moves that saturate it, and a link's
#: mass trades off against the servo's gain unless the moves load it in different poses.
DEFAULT_FIT: tuple[str, ...] = ("kp", "damping", "armature", "frictionloss")
FORMAT = "twinarm-dynamics/1"


@dataclass(frozen=True)
class ArmDynamics:
    """Per-joint parameters of one arm: {joint: {param: value}}, its command latency in control steps, and
    (`fit`) how they were obtained."""

    arm: str
    joints: dict[str, dict[str, float]]
    action_delay_steps: int = 0
    fit: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "arm": self.arm, "action_delay_steps": self.action_delay_steps,
                               "joints": self.joints}
        if self.fit:
            out["fit"] = self.fit
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "dynamics") -> ArmDynamics:
        """Check a parsed file: known parameters, finite values, kp and mass > 0, the others >= 0 (errors name
        `source`)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("arm"), str) or not isinstance(data.get("joints"), Mapping):
            raise ValueError(f"{source}: expected {{'arm': NAME, 'joints': {{JOINT: {{PARAM: VALUE}}}}}}")
        if data.get("format", FORMAT) != FORMAT:
            raise ValueError(f"{source}: format {data['format']!r} is not {FORMAT!r}")
        delay = data.get("action_delay_steps", 0)
        if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
            raise ValueError(f"{source}: action_delay_steps = {delay!r}: must be a whole number of control steps >= 0")
        joints: dict[str, dict[str, float]] = {}
        for joint, params in data["joints"].items():
            if not isinstance(params, Mapping):
                raise ValueError(f"{source}: joints.{joint} must map parameters to values")
            unknown = sorted(set(params) - set(PARAMS))
            if unknown:
                raise ValueError(f"{source}: joints.{joint}: unknown parameters {unknown}; known: {list(PARAMS)}")
            for name, value in params.items():
                ok = isinstance(value, int | float) and math.isfinite(value) and (value > 0 if name in POSITIVE else value >= 0)
                if not ok:
                    bound = "> 0" if name in POSITIVE else ">= 0"
                    raise ValueError(f"{source}: joints.{joint}.{name} = {value!r}: must be a finite number {bound}")
            joints[str(joint)] = {p: float(params[p]) for p in PARAMS if p in params}
        return cls(data["arm"], joints, delay, dict(data.get("fit", {})))

    @classmethod
    def load(cls, path: str | Path) -> ArmDynamics:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"dynamics file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def coerce(cls, value: ArmDynamics | Mapping[str, Any] | str | Path) -> ArmDynamics:
        """An ArmDynamics, its dict form, or the path of its JSON file."""
        if isinstance(value, ArmDynamics):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        return cls.load(value)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


@dataclass(frozen=True)
class JointAddresses:
    """Where each spec joint's parameters live in a model: its dof, its position actuator and the body it moves."""

    dofs: np.ndarray
    actuators: np.ndarray
    bodies: np.ndarray

    @classmethod
    def of(cls, model: mujoco.MjModel, spec: ArmSpec) -> JointAddresses:
        dofs = np.array([model.jnt_dofadr[model.joint(n).id] for n in spec.joint_names])
        acts = np.array([model.actuator(n).id for n in spec.joint_names])
        for name, a in zip(spec.joint_names, acts, strict=True):
            is_position = (
                model.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
                and model.actuator_gainprm[a, 0] == -model.actuator_biasprm[a, 1]
            )
            if not is_position:
                raise ValueError(f"{spec.name}: actuator {name!r} is not a position servo (kp, -kp): no kp to set")
        bodies = np.array([model.jnt_bodyid[model.joint(n).id] for n in spec.joint_names])
        return cls(dofs, acts, bodies)

    def get(self, model: mujoco.MjModel, j: int, param: str) -> float | None:
        """The value, or None for max_torque where the actuator has no torque limit."""
        d, a = self.dofs[j], self.actuators[j]
        if param == "kp":
            return float(model.actuator_gainprm[a, 0])
        if param == "max_torque":
            return float(model.actuator_forcerange[a, 1]) if model.actuator_forcelimited[a] else None
        if param == "mass":
            return float(model.body_mass[self.bodies[j]])
        return float(getattr(model, f"dof_{param}")[d])

    def set(self, model: mujoco.MjModel, j: int, param: str, value: float) -> None:
        d, a = self.dofs[j], self.actuators[j]
        if param == "kp":
            model.actuator_gainprm[a, 0] = value
            model.actuator_biasprm[a, 1] = -value
        elif param == "max_torque":
            model.actuator_forcelimited[a] = True
            model.actuator_forcerange[a] = (-value, value)
        elif param == "mass":  # the inertia keeps its ratio to the mass (callers then run mj_setConst)
            b = self.bodies[j]
            if model.body_mass[b] > 0:
                model.body_inertia[b] *= value / model.body_mass[b]
            model.body_mass[b] = value
        else:
            getattr(model, f"dof_{param}")[d] = value


def read_dynamics(model: mujoco.MjModel, spec: ArmSpec) -> ArmDynamics:
    """The model's current values of every parameter of every joint (max_torque where the servo has a limit)."""
    where = JointAddresses.of(model, spec)
    values = ({p: where.get(model, j, p) for p in PARAMS} for j in range(spec.dof))
    return ArmDynamics(spec.name, {n: {p: v for p, v in vs.items() if v is not None} for n, vs in zip(spec.joint_names, values, strict=True)})


def apply_dynamics(model: mujoco.MjModel, spec: ArmSpec, dynamics: ArmDynamics | Mapping[str, Any] | str | Path) -> ArmDynamics:
    """Write `dynamics` into `model` (in place) and return it; refuses another arm's file or unknown joints."""
    dyn = ArmDynamics.coerce(dynamics)
    if dyn.arm != spec.name:
        raise ValueError(f"dynamics for arm {dyn.arm!r} cannot load into {spec.name!r} (fit them on this arm)")
    unknown = sorted(set(dyn.joints) - set(spec.joint_names))
    if unknown:
        raise ValueError(f"dynamics name joints {unknown} that {spec.name} lacks; its joints: {list(spec.joint_names)}")
    where = JointAddresses.of(model, spec)
    for j, name in enumerate(spec.joint_names):
        for param, value in dyn.joints.get(name, {}).items():
            where.set(model, j, param, value)
    # Armature and masses feed constants MuJoCo derives at compile time (dof_invweight0, the solver's
    # regularization, subtree masses).
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return dyn
