"""The simulated arm: a compiled MuJoCo scene plus the mapping between spec units and MuJoCo state.

This is the only place that knows how spec joints map to qpos/ctrl (revolute joints 1:1 in radians,
grippers as an opening fraction of the jaw joint's range), so envs and the virtual servo bus share it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from operator import itemgetter
from pathlib import Path

import mujoco
import numpy as np

from twinarm.arms import get_arm
from twinarm.assets import scene_path
from twinarm.spec import ArmSpec

#: Physics timestep the substep count aims for; the exact timestep is control_period / n_substeps.
TARGET_TIMESTEP = 0.002

SceneHook = Callable[[mujoco.MjSpec], None]


def substeps_for(control_hz: int, target_timestep: float = TARGET_TIMESTEP) -> int:
    """Number of physics steps per control step, so that the timestep divides the period exactly."""
    return max(1, round(1.0 / (control_hz * target_timestep)))


def whole_substeps(n_substeps: object) -> int:
    """`n_substeps` if it is a whole number >= 1: zero would silently mean the default, a negative count a negative
    timestep (an arm that never moves), a fraction a period the timestep does not divide."""
    if isinstance(n_substeps, bool) or not isinstance(n_substeps, (int, np.integer)) or n_substeps < 1:
        raise ValueError(
            "n_substeps must be a whole number >= 1 (physics steps per control step; None for the default), "
            f"got {n_substeps!r}"
        )
    return int(n_substeps)


def spec_scene(spec: ArmSpec) -> Path:
    """The scene.xml of `spec.model`: the path of one, or a twinarm asset folder's (the arm's own by default)."""
    if spec.model.endswith(".xml"):
        path = Path(spec.model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"arm {spec.name!r}: its model {path} does not exist")
        return path
    return scene_path(spec.model or spec.name)


def load_scene(spec: ArmSpec, n_substeps: int, scene_hooks: tuple[SceneHook, ...] = ()) -> mujoco.MjModel:
    """Compile the arm's scene.xml after letting each hook add task objects to the MjSpec."""
    path = spec_scene(spec)
    try:
        mjspec = mujoco.MjSpec.from_file(str(path))
    except Exception as exc:  # mujoco raises ValueError with the parser message
        raise ValueError(f"cannot parse scene {path}: {exc}") from exc
    for hook in scene_hooks:
        hook(mjspec)
    mjspec.option.timestep = 1.0 / (spec.control_hz * n_substeps)
    return mjspec.compile()


class ArmPhysics:
    """A MuJoCo model/data pair driven in the arm spec's units, one control period at a time."""

    def __init__(self, spec: ArmSpec, model: mujoco.MjModel, n_substeps: int):
        self.spec = spec
        self.model = model
        self.data = mujoco.MjData(model)
        self.n_substeps = whole_substeps(n_substeps)
        period = self.model.opt.timestep * self.n_substeps
        if abs(period - spec.control_period) > 1e-9:
            raise ValueError(
                f"{spec.name}: {self.n_substeps} substeps of {self.model.opt.timestep} s do not divide the "
                f"control period {spec.control_period} s"
            )
        missing = [n for n in spec.joint_names if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) < 0]
        missing += [
            f"actuator {n}"
            for n in spec.joint_names
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, n) < 0
        ]
        if missing:
            raise ValueError(f"{spec.name}: model lacks joints/actuators named after the spec: {missing}")
        joint_ids = [model.joint(n).id for n in spec.joint_names]
        self.qpos_adr = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self.dof_adr = np.array([model.jnt_dofadr[j] for j in joint_ids])
        self.actuator_ids = np.array([model.actuator(n).id for n in spec.joint_names])
        # Spec value x maps to qpos as offset + scale * x: identity for revolute joints, the jaw's range for grippers.
        ranges = model.jnt_range[joint_ids].copy()
        limited = model.jnt_limited[joint_ids].astype(bool)
        self._travel = np.where(limited[:, None], ranges, [-np.inf, np.inf])  # qpos a reset may put a joint at
        for i, j in enumerate(spec.joints):  # a gripper whose 0..1 is not its joint's range (ALOHA: ACT's)
            if j.gripper_span is not None:
                ranges[i] = j.gripper_span
        grip = spec.gripper_mask
        self._offset = np.where(grip, ranges[:, 0], 0.0)
        self._scale = np.where(grip, ranges[:, 1] - ranges[:, 0], 1.0)
        self._home_key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "home")
        self._coupled = _coupled_joints(model, set(self.qpos_adr.tolist()))
        if spec.home and not np.allclose(self.home_joints(), spec.home, atol=1e-3):  # twinarm's own: a test
            warnings.warn(f"arm {spec.name!r}: its home {tuple(spec.home)} is not the model's home keyframe "
                          f"{tuple(np.round(self.home_joints(), 4))} (spec units), where sim episodes start; the real "
                          "arm starts eval episodes at the spec's home: make them one", stacklevel=3)  # fmt: skip
        # The per-step paths work on a handful of Python floats: on 6-14 joints a numpy call costs more than
        # its arithmetic. They do the array formulas' IEEE operations in the same order, and a conditional
        # expression is np.maximum/np.minimum (NaN passes through), so the results are bitwise equal.
        self._qpos_span, self._qpos_pick = _span_view(self.data.qpos, self.qpos_adr)
        ctrl_span, ctrl_pick = _span_view(self.data.ctrl, self.actuator_ids)
        self._ctrl_view = ctrl_span if ctrl_pick is None else None  # None: write through the index array
        offset, scale = self._offset.tolist(), self._scale.tolist()
        self._grippers = tuple((i, offset[i], scale[i]) for i in np.flatnonzero(grip).tolist())
        self._to_ctrl = tuple(zip(offset, scale, spec.lower.tolist(), spec.upper.tolist(), strict=True))

    @classmethod
    def from_arm(
        cls, arm: str | ArmSpec, n_substeps: int | None = None, scene_hooks: tuple[SceneHook, ...] = ()
    ) -> ArmPhysics:
        """Load an arm's scene (with optional task objects added by `scene_hooks`)."""
        spec = get_arm(arm)
        n = substeps_for(spec.control_hz) if n_substeps is None else whole_substeps(n_substeps)
        return cls(spec, load_scene(spec, n, scene_hooks), n)

    # ----- unit mapping -------------------------------------------------------------------------
    def spec_to_qpos(self, x: np.ndarray) -> np.ndarray:
        return self._offset + self._scale * np.asarray(x, dtype=np.float64)

    def qpos_to_spec(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, dtype=np.float64) - self._offset) / self._scale

    @property
    def qpos_scale(self) -> np.ndarray:
        """qpos units per spec unit, per joint (1 for revolute joints; a gripper's jaw range)."""
        return self._scale.copy()

    # ----- state --------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """Joint positions in spec units (rad; gripper opening 0..1), spec order."""
        return self.qpos_to_spec(self.data.qpos[self.qpos_adr])

    def joint_position_list(self) -> list[float]:
        """`joint_positions()` as Python floats, the cheap form for a per-step observation."""
        q = self._qpos_span.tolist()
        # A picker only where the arm's joints are not consecutive in qpos (ALOHA's second fingers).
        if self._qpos_pick is not None:
            q = list(self._qpos_pick(q))
        for i, offset, scale in self._grippers:  # revolute joints map 1:1: (q - 0) / 1 is q exactly
            q[i] = (q[i] - offset) / scale
        return q

    def joint_velocities(self) -> np.ndarray:
        """Joint velocities in spec units per second."""
        return self.data.qvel[self.dof_adr] / self._scale

    def actuator_efforts(self) -> np.ndarray:
        """Actuator torques (N*m) in spec order."""
        return self.data.actuator_force[self.actuator_ids].copy()

    def targets(self) -> np.ndarray:
        """The current joint targets in spec units."""
        return self.qpos_to_spec(self.data.ctrl[self.actuator_ids])

    def set_targets(self, x: np.ndarray | Sequence[float]) -> None:
        """Command absolute joint targets (spec units), clamped to the spec's limits."""
        vals = x.tolist() if isinstance(x, np.ndarray) else list(map(float, x))
        if len(vals) != len(self._to_ctrl):
            raise ValueError(
                f"{self.spec.name}: expected {len(self._to_ctrl)} joint targets, got {len(vals)}"
            )
        ctrl = [
            offset + scale * (lo if v < lo else hi if v > hi else v)
            for v, (offset, scale, lo, hi) in zip(vals, self._to_ctrl)  # noqa: B905 (length checked; strict= parses a keyword per call)
        ]
        if self._ctrl_view is not None:
            self._ctrl_view[:] = ctrl
        else:
            self.data.ctrl[self.actuator_ids] = ctrl

    def step_control(self) -> None:
        """Advance one control period."""
        mujoco.mj_step(self.model, self.data, self.n_substeps)  # nstep positionally: no keyword matching

    def reset(self, joints: np.ndarray | None = None) -> None:
        """Reset to the `home` keyframe (or qpos0), optionally with the arm at `joints` (spec units)."""
        if self._home_key >= 0:
            mujoco.mj_resetDataKeyframe(self.model, self.data, self._home_key)
        else:
            mujoco.mj_resetData(self.model, self.data)
        if joints is not None:
            # within the joints' travel (ALOHA's gripper 0..1 spans a little more than its finger moves)
            q = np.clip(self.spec_to_qpos(joints), self._travel[:, 0], self._travel[:, 1])
            self.data.qpos[self.qpos_adr] = q
            self.data.ctrl[self.actuator_ids] = q
            for adr, y0, x_adr, x0, coef in self._coupled:  # a mirrored finger follows its driven one at once
                dx = self.data.qpos[x_adr] - x0
                self.data.qpos[adr] = y0 + sum(c * dx**k for k, c in enumerate(coef))
        mujoco.mj_forward(self.model, self.data)

    def home_joints(self) -> np.ndarray:
        """The home keyframe's arm pose in spec units."""
        if self._home_key < 0:
            return self.qpos_to_spec(self.model.qpos0[self.qpos_adr])
        return self.qpos_to_spec(self.model.key_qpos[self._home_key][self.qpos_adr])

    def get_state(self) -> np.ndarray:
        """Full physics state (for pickling and exact replays)."""
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(self.model, spec))
        mujoco.mj_getState(self.model, self.data, state, spec)
        return state

    def set_state(self, state: np.ndarray) -> None:
        mujoco.mj_setState(
            self.model, self.data, np.asarray(state, dtype=np.float64), mujoco.mjtState.mjSTATE_INTEGRATION
        )
        mujoco.mj_forward(self.model, self.data)


def _coupled_joints(model: mujoco.MjModel, driven: set[int]) -> tuple[tuple[int, float, int, float, list[float]], ...]:
    """(qpos address, its qpos0, driver's address, driver's qpos0, polycoef) of each joint that a joint equality
    ties to a spec joint (ALOHA's mirrored fingers): a reset to given joints must move them too, or the equality
    drags the driven joint back over the first steps."""
    out = []
    for e in range(model.neq):
        if model.eq_type[e] != mujoco.mjtEq.mjEQ_JOINT or model.eq_obj2id[e] < 0 or not model.eq_active0[e]:
            continue
        adr, x_adr = int(model.jnt_qposadr[model.eq_obj1id[e]]), int(model.jnt_qposadr[model.eq_obj2id[e]])
        if x_adr in driven:
            out.append((adr, float(model.qpos0[adr]), x_adr, float(model.qpos0[x_adr]), model.eq_data[e, :5].tolist()))
    return tuple(out)


def _span_view(field: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, itemgetter | None]:
    """A view of `field` from the first to the last of `index` that follows the simulation, and the getter
    that picks `index` out of its list (None when the addresses are consecutive: the view is the entries)."""
    first, last = int(index.min()), int(index.max())
    rel = (index - first).tolist()
    return field[first : last + 1], None if rel == list(range(len(rel))) else itemgetter(*rel)
