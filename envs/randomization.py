"""Sim-to-real knobs: domain randomization, observation noise, action latency and control-period jitter.

One frozen dataclass, `Randomization`, configures them all and is off by default; envs take it (or the
equivalent dict, so it stays JSON-able) as the `randomization=` kwarg. Every draw comes from the env's
`np_random`, so a seed reproduces the randomized episode exactly. `domain_randomize(model, rng, cfg)`
works on one model or a batch (a list of models), always relative to the nominal values, never compounding.

Ranges named `*_scale` are multiplicative (lo, hi) draws; `*_std` are Gaussian std devs; `*_jitter`
are uniform +/- half-widths.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import mujoco
import numpy as np

Scale = tuple[float, float]
OFF: Scale = (1.0, 1.0)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool) and math.isfinite(x)


def _shown(v: Any) -> str:
    return json.dumps(list(v)) if isinstance(v, tuple) else repr(v)


def _check_amount(key: str, v: Any) -> None:
    """A std dev, jitter or fraction: a finite number >= 0 (NaN used to switch a knob off without a word)."""
    if not _is_number(v) or v < 0:
        raise ValueError(f"{key} must be a finite number >= 0, got {_shown(v)}")


@dataclass(frozen=True)
class VisualRandomization:
    """What the cameras see. Object colours are the geoms of free bodies (the task's cube, peg, socket)."""

    light_pos_std: float = 0.0
    """Std dev (m) of Gaussian noise added to each light's position (x, y, z). MuJoCo lights a directional light
    (every scene's, e.g. `top`) by its direction alone, so a moved directional light is also turned to aim at the
    point its nominal ray did: where that ray meets the table top (z = 0; a light of the world body aimed down),
    else the point of the ray as far from the light as the light is from the origin. Its `light_dir` becomes the
    unit vector from the moved position to that point (a light 1.2 m above the table moved 0.3 m sideways turns by
    ~14 deg). Other lights (spot lights) are only moved."""
    light_intensity_scale: Scale = OFF
    """Multiplier range for each light's diffuse colour."""
    table_rgb_jitter: float = 0.0
    """Uniform +/- added to each RGB channel of the table (its material if it has one)."""
    object_rgb_jitter: float = 0.0
    """Uniform +/- added to each RGB channel of every object geom."""
    camera_pos_std: float = 0.0
    """Std dev (m) added to each camera's position."""
    camera_rot_std: float = 0.0
    """Std dev (rad) of a random small rotation applied to each camera."""
    camera_fovy_jitter: float = 0.0
    """Uniform +/- (degrees) added to each camera's vertical field of view."""


@dataclass(frozen=True)
class PhysicalRandomization:
    """How the world and the arm behave. Joint/actuator knobs apply to the arm's joints, not free bodies."""

    object_mass_scale: Scale = OFF
    object_size_scale: Scale = OFF
    """Uniform scale of each object body (geom sizes and offsets together)."""
    object_friction_scale: Scale = OFF
    joint_damping_scale: Scale = OFF
    armature_scale: Scale = OFF
    actuator_gain_scale: Scale = OFF
    """Scales a position actuator's kp (gain and matching bias together)."""


@dataclass(frozen=True)
class Randomization:
    """All sim-to-real knobs of one env; `Randomization()` changes nothing."""

    visual: VisualRandomization = field(default_factory=VisualRandomization)
    physical: PhysicalRandomization = field(default_factory=PhysicalRandomization)
    obs_noise_std: float = 0.0
    """Gaussian noise (spec units: rad, gripper fraction) on `agent_pos`."""
    action_delay_steps: int = 0
    """Actions take effect this many control steps after they are sent."""
    control_jitter: float = 0.0
    """Each control period lasts n + k physics substeps instead of the nominal n (`ArmPhysics.n_substeps`), k drawn
    uniformly from the whole numbers -s..s, s = round(control_jitter * n) (Python's round: half to even), and at
    least one substep: the fraction rounded to whole substeps, so a period varies by up to s / n of nominal, which
    may be more or less than this fraction (0.1 at 17 substeps, SO/Koch at 30 Hz: s = 2, +/-11.8 %; at ALOHA's 10:
    s = 1, +/-10 %). Under half a substep (0.05 at 10 substeps: s = 0) it varies nothing, and the env warns
    (UserWarning) at its first reset or step."""

    def __post_init__(self) -> None:
        """Every knob checked by name and type here, where the env is made: a scale given as one number (or a
        delay of 1.5 steps, a NaN) used to pass and fail at the first reset, hours into a training run."""
        delay = self.action_delay_steps
        if isinstance(delay, bool) or not isinstance(delay, int | np.integer) or delay < 0:
            raise ValueError(f"action_delay_steps must be a whole number of control steps >= 0, got {delay!r}")
        _check_amount("obs_noise_std", self.obs_noise_std)
        _check_amount("control_jitter", self.control_jitter)
        if not self.control_jitter < 1:
            raise ValueError(f"control_jitter must be below 1 (a fraction of the control period), got {self.control_jitter}")
        for name, group in (("visual", self.visual), ("physical", self.physical)):
            for f in fields(group):
                v, key = getattr(group, f.name), f"{name}.{f.name}"
                if isinstance(f.default, tuple):
                    if not (isinstance(v, tuple) and len(v) == 2 and all(_is_number(x) for x in v) and 0 < v[0] <= v[1]):
                        raise ValueError(f"{key} must be a [lo, hi] scale with 0 < lo <= hi, got {_shown(v)}")
                else:
                    _check_amount(key, v)

    @classmethod
    def coerce(cls, value: Randomization | dict[str, Any] | str | None) -> Randomization:
        """Accept a Randomization, a (JSON) dict of its fields, a preset name (`sim2real`, or a perturbation's:
        `servos`, `latency-1`, ...; `perturbations.named_randomization`), or None (= off)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            from twinarm.envs.perturbations import named_randomization  # it builds on this module

            return named_randomization(value)
        if not isinstance(value, dict):
            raise TypeError(f"randomization must be a Randomization, a dict of its fields or a preset name, "
                            f"got {type(value).__name__}")  # fmt: skip
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown randomization keys {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(value)
        kw["visual"] = _group(VisualRandomization, kw.get("visual", {}))
        kw["physical"] = _group(PhysicalRandomization, kw.get("physical", {}))
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; `Randomization.coerce(r.to_dict()) == r`."""
        return asdict(self)

    @property
    def model_enabled(self) -> bool:
        """Whether any knob changes the MjModel (visual or physical)."""
        return self.visual != VisualRandomization() or self.physical != PhysicalRandomization()


#: Ready-made settings, by name (`--randomization sim2real` on the CLI). `sim2real`: the spread a desk set-up
#: differs by from the model and from day to day: lights, colours, a camera nudged by a centimetre and a degree
#: or two, objects 30 % lighter or 50 % heavier and more or less slippery, servos +/-15 % stiff, joints
#: +/-25 % damped, 0.3 degrees of encoder noise, a control period that wanders by ~10 % (in whole physics
#: substeps: +/-2 of 17 at 30 Hz, +/-1 of 10 at 50 Hz).
PRESETS: dict[str, Randomization] = {
    "sim2real": Randomization(
        visual=VisualRandomization(
            light_pos_std=0.1, light_intensity_scale=(0.7, 1.3), table_rgb_jitter=0.1, object_rgb_jitter=0.1,
            camera_pos_std=0.01, camera_rot_std=0.02, camera_fovy_jitter=2.0,
        ),
        physical=PhysicalRandomization(
            object_mass_scale=(0.7, 1.5), object_friction_scale=(0.7, 1.3), joint_damping_scale=(0.8, 1.25),
            armature_scale=(0.8, 1.25), actuator_gain_scale=(0.85, 1.15),
        ),
        obs_noise_std=0.005,
        control_jitter=0.1,
    ),
}


def _group(cls: type, value: Any) -> Any:
    if isinstance(value, cls):
        return value
    known = {f.name for f in fields(cls)}
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


# ----- model randomization ----------------------------------------------------------------------
_FIELDS = (
    "light_pos", "light_dir", "light_diffuse", "geom_rgba", "mat_rgba", "cam_pos", "cam_quat", "cam_fovy",
    "body_mass", "body_inertia", "geom_size", "geom_pos", "geom_rbound", "geom_aabb", "geom_friction",
    "dof_damping", "dof_armature", "actuator_gainprm", "actuator_biasprm",
)  # fmt: skip


@dataclass
class ModelNominal:
    """The unrandomized values of every model field `domain_randomize` touches, and which elements are what."""

    values: dict[str, np.ndarray]
    object_bodies: np.ndarray
    object_geoms: np.ndarray
    table_geoms: np.ndarray
    arm_dofs: np.ndarray
    position_actuators: np.ndarray

    @classmethod
    def capture(cls, model: mujoco.MjModel) -> ModelNominal:
        free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        bodies = np.array(sorted({int(model.jnt_bodyid[j]) for j in free}), dtype=int)
        geoms = np.array(
            [g for g in range(model.ngeom) if model.geom_bodyid[g] in set(bodies.tolist())], dtype=int
        )
        table = np.array([g for g in range(model.ngeom) if model.geom(g).name == "table"], dtype=int)
        free_dofs = {int(model.jnt_dofadr[j]) + k for j in free for k in range(6)}
        dofs = np.array([d for d in range(model.nv) if d not in free_dofs], dtype=int)
        pos_act = np.array(
            [a for a in range(model.nu) if model.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
             and model.actuator_gainprm[a, 0] == -model.actuator_biasprm[a, 1]],
            dtype=int,
        )  # fmt: skip
        values = {name: np.array(getattr(model, name), copy=True) for name in _FIELDS}
        return cls(values, bodies, geoms, table, dofs, pos_act)

    def restore(self, model: mujoco.MjModel) -> None:
        for name, v in self.values.items():
            getattr(model, name)[:] = v


def _scale(rng: np.random.Generator, rng_range: Scale, n: int) -> np.ndarray:
    lo, hi = rng_range
    return rng.uniform(lo, hi, size=n)


def _light_aims(model: mujoco.MjModel, pos: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """The point each light's nominal ray aims at (see `VisualRandomization.light_pos_std`), in the light's frame."""
    unit = dirs / np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
    down = (model.light_bodyid == 0) & (unit[:, 2] < -1e-9) & (pos[:, 2] > 0)
    reach = np.where(down, -pos[:, 2] / np.where(down, unit[:, 2], -1.0), np.linalg.norm(pos, axis=1))
    return pos + reach[:, None] * unit


def _move_lights(model: mujoco.MjModel, rng: np.random.Generator, std: float, n: dict[str, np.ndarray]) -> None:
    """Move every light by N(0, std) per coordinate (one draw of shape light_pos, as always) and turn each
    directional one to aim where it did: moving alone changes nothing a directional light shows."""
    model.light_pos[:] = n["light_pos"] + rng.normal(0.0, std, size=n["light_pos"].shape)
    aims = _light_aims(model, n["light_pos"], n["light_dir"])
    for i in np.flatnonzero(model.light_type == mujoco.mjtLightType.mjLIGHT_DIRECTIONAL):
        to_aim = aims[i] - model.light_pos[i]
        length = np.linalg.norm(to_aim)
        if length > 1e-9:  # a light moved onto its aim point keeps its nominal direction
            model.light_dir[i] = to_aim / length


def _small_rotation(rng: np.random.Generator, std: float) -> np.ndarray:
    """A unit quaternion turning by N(0, std) rad about a random axis. The axis must be a unit vector:
    `mju_axisAngle2Quat` does not normalise it, and a non-unit camera quat scales the camera's frame."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    q = np.zeros(4)
    mujoco.mju_axisAngle2Quat(q, axis, rng.normal(0.0, std))
    return q


def _randomize_one(
    model: mujoco.MjModel, rng: np.random.Generator, cfg: Randomization, nom: ModelNominal
) -> None:
    nom.restore(model)
    v, p, n = cfg.visual, cfg.physical, nom.values
    if v.light_pos_std > 0:
        _move_lights(model, rng, v.light_pos_std, n)
    if v.light_intensity_scale != OFF:
        model.light_diffuse[:] = np.clip(
            n["light_diffuse"] * _scale(rng, v.light_intensity_scale, model.nlight)[:, None], 0, 1
        )
    if v.table_rgb_jitter > 0:
        for g in nom.table_geoms:
            mat = model.geom_matid[g]
            rgba = model.mat_rgba[mat] if mat >= 0 else model.geom_rgba[g]
            rgba[:3] = np.clip(rgba[:3] + rng.uniform(-v.table_rgb_jitter, v.table_rgb_jitter, 3), 0, 1)
    if v.object_rgb_jitter > 0 and len(nom.object_geoms):
        g = nom.object_geoms
        jitter = rng.uniform(-v.object_rgb_jitter, v.object_rgb_jitter, size=(len(g), 3))
        model.geom_rgba[g, :3] = np.clip(n["geom_rgba"][g, :3] + jitter, 0, 1)
    if v.camera_pos_std > 0:
        model.cam_pos[:] = n["cam_pos"] + rng.normal(0.0, v.camera_pos_std, size=n["cam_pos"].shape)
    if v.camera_rot_std > 0:
        for c in range(model.ncam):
            q = np.zeros(4)
            mujoco.mju_mulQuat(q, n["cam_quat"][c], _small_rotation(rng, v.camera_rot_std))
            model.cam_quat[c] = q
    if v.camera_fovy_jitter > 0:
        model.cam_fovy[:] = n["cam_fovy"] + rng.uniform(
            -v.camera_fovy_jitter, v.camera_fovy_jitter, model.ncam
        )

    b, g = nom.object_bodies, nom.object_geoms
    if len(b):
        mass = _scale(rng, p.object_mass_scale, len(b)) if p.object_mass_scale != OFF else np.ones(len(b))
        size = _scale(rng, p.object_size_scale, len(b)) if p.object_size_scale != OFF else np.ones(len(b))
        model.body_mass[b] = n["body_mass"][b] * mass
        model.body_inertia[b] = n["body_inertia"][b] * (mass * size**2)[:, None]
        per_geom = size[np.searchsorted(b, model.geom_bodyid[g])]
        for name in ("geom_size", "geom_pos", "geom_aabb"):
            getattr(model, name)[g] = n[name][g] * per_geom[:, None]
        model.geom_rbound[g] = n["geom_rbound"][g] * per_geom
        if p.object_friction_scale != OFF:
            model.geom_friction[g, 0] = n["geom_friction"][g, 0] * _scale(
                rng, p.object_friction_scale, len(g)
            )
    d = nom.arm_dofs
    if p.joint_damping_scale != OFF:
        model.dof_damping[d] = n["dof_damping"][d] * _scale(rng, p.joint_damping_scale, len(d))
    if p.armature_scale != OFF:
        model.dof_armature[d] = n["dof_armature"][d] * _scale(rng, p.armature_scale, len(d))
    a = nom.position_actuators
    if p.actuator_gain_scale != OFF and len(a):
        k = _scale(rng, p.actuator_gain_scale, len(a))
        model.actuator_gainprm[a, 0] = n["actuator_gainprm"][a, 0] * k
        model.actuator_biasprm[a, 1] = n["actuator_biasprm"][a, 1] * k
    if p != PhysicalRandomization():
        # Masses, inertias and armatures feed constants MuJoCo derives at compile time (dof/body invweight0,
        # which scale the contact solver's regularization); stale ones made a lighter cube blow up mid-grasp
        # (NaN in QACC, PickPlace seed 9 with object_mass_scale (0.7, 1.5)). Recompute them for this draw.
        mujoco.mj_setConst(model, mujoco.MjData(model))


def domain_randomize(
    models: mujoco.MjModel | Sequence[mujoco.MjModel],
    rng: np.random.Generator,
    cfg: Randomization | dict[str, Any],
    nominal: ModelNominal | Sequence[ModelNominal] | None = None,
) -> None:
    """Draw the visual and physical knobs of `cfg` into one model or each model of a batch, in place.

    Values are set from `nominal` (captured from the model when not given), so calling it again re-draws
    instead of compounding. Models of a batch get independent draws, in order, from `rng`.
    """
    cfg = Randomization.coerce(cfg)
    batch = [models] if isinstance(models, mujoco.MjModel) else list(models)
    if nominal is None:
        noms = [ModelNominal.capture(m) for m in batch]
    else:
        noms = [nominal] if isinstance(nominal, ModelNominal) else list(nominal)
    if len(noms) != len(batch):
        raise ValueError(f"{len(batch)} models but {len(noms)} nominal records")
    for m, nom in zip(batch, noms, strict=True):
        _randomize_one(m, rng, cfg, nom)


# ----- the env side: latency, jitter, noise -----------------------------------------------------
class DelayLine:
    """Targets that take effect `steps` control steps after they are sent (a command latency): `push(x)`, once
    per control step, returns the target due now, or None while the first ones are still on their way."""

    def __init__(self, steps: int) -> None:
        self.steps = int(steps)
        self.queue: deque[np.ndarray] = deque()

    def push(self, target: np.ndarray) -> np.ndarray | None:
        self.queue.append(target)
        return self.queue.popleft() if len(self.queue) > self.steps else None


class Randomizer:
    """Applies a `Randomization` inside an env: per-episode model draws, delayed actions, jittered periods, noisy state."""

    def __init__(self, cfg: Randomization | dict[str, Any] | None, model: mujoco.MjModel):
        self.cfg = Randomization.coerce(cfg)
        self.nominal = ModelNominal.capture(model) if self.cfg.model_enabled else None
        self._delay = DelayLine(self.cfg.action_delay_steps)
        self._jitter: tuple[int, int] | None = None  # (nominal substeps, jitter span in substeps) once known

    def jitter_span(self, physics: Any) -> int:
        """How many whole substeps `control_jitter` lengthens or shortens a period by at most (0 when off). A
        non-zero jitter that rounds to none warns once: it used to be accepted and to do nothing, silently."""
        n = physics.n_substeps
        if self._jitter is None or self._jitter[0] != n:
            jitter = self.cfg.control_jitter
            span = int(round(jitter * n))
            if jitter and not span:
                warnings.warn(
                    f"control_jitter={jitter:g} rounds to no jitter at all: a control period is {n} physics substeps "
                    f"of {physics.model.opt.timestep * 1e3:.4g} ms and only varies by whole ones, and {jitter:g} x {n} "
                    f"= {jitter * n:.3g} substep rounds to 0; give more than half a substep (> {0.5 / n:.4g}) or 0",
                    UserWarning, stacklevel=3,
                )  # fmt: skip
            self._jitter = (n, span)
        return self._jitter[1]

    def on_reset(self, physics: Any, rng: np.random.Generator) -> bool:
        """New episode: re-draw the model knobs and forget queued actions; True if object sizes changed."""
        self._delay.queue.clear()
        self.jitter_span(physics)  # warns here, at the first reset, if the jitter rounds to none
        if self.nominal is not None:
            domain_randomize(physics.model, rng, self.cfg, self.nominal)
        return self.cfg.physical.object_size_scale != OFF

    def act(self, physics: Any, action: np.ndarray, rng: np.random.Generator) -> None:
        """Send `action` and advance one (possibly jittered) control period; a delayed action waits in a queue."""
        cfg = self.cfg
        if cfg.action_delay_steps:
            due = self._delay.push(np.array(action, copy=True))
            if due is not None:
                physics.set_targets(due)
        else:
            physics.set_targets(action)
        n = physics.n_substeps
        if cfg.control_jitter:
            span = self.jitter_span(physics)
            n = max(1, n + (int(rng.integers(-span, span + 1)) if span else 0))
        # One call for the whole period: neither latency nor jitter needs anything between substeps.
        mujoco.mj_step(physics.model, physics.data, n)

    def observe(self, agent_pos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.cfg.obs_noise_std:
            return (agent_pos + rng.normal(0.0, self.cfg.obs_noise_std, size=agent_pos.shape)).astype(
                agent_pos.dtype
            )
        return agent_pos

    def get_state(self, model: mujoco.MjModel) -> dict[str, Any]:
        """What pickling needs to resume: queued actions and the current draw of the model knobs."""
        drawn = (
            {name: np.array(getattr(model, name), copy=True) for name in _FIELDS} if self.nominal else None
        )
        return {"queue": [a.copy() for a in self._delay.queue], "model": drawn}

    def set_state(self, model: mujoco.MjModel, state: dict[str, Any] | None) -> None:
        """Restore `get_state` into this env's freshly built model (the draw of the episode being resumed)."""
        if not state:
            return
        self._delay.queue = deque(np.asarray(a) for a in state["queue"])
        if state["model"] is not None:
            for name, v in state["model"].items():
                getattr(model, name)[:] = v
            if self.cfg.physical != PhysicalRandomization():
                # As after a draw (`_randomize_one`): the restored masses, inertias, armatures and sizes feed the
                # constants MuJoCo derives at compile time (dof/body invweight0, ...), which the fresh model has
                # for the nominal values; without this a copied env stepped differently from the original.
                mujoco.mj_setConst(model, mujoco.MjData(model))
