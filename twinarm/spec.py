"""Arm specs: the single source of truth for joints, limits, units, control rate and cameras.

Sim envs, real envs, dataset features and the conversion to LeRobot's units are all derived from
an `ArmSpec`, so a policy trained on one side sees exactly the same spaces on the other.
Units are SI: revolute joints in radians, grippers as an opening fraction in [0, 1].
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

ObsType = Literal["state", "pixels", "pixels_agent_pos"]
OBS_TYPES: tuple[str, ...] = ("state", "pixels", "pixels_agent_pos")

#: Observations may stray a little past the joint limits (soft limits, encoder noise); the
#: observation box is widened by this margin so in-range arms always lie inside it.
STATE_MARGIN_RAD = 0.25
STATE_MARGIN_GRIPPER = 0.25
#: Finite bound for `environment_state` entries (metres / unit quaternions); Gymnasium warns on inf.
ENV_STATE_BOUND = 10.0
#: The env's observation keys as LeRobot names them (its `preprocess_observation`; camera `c` of `pixels` is
#: `observation.images.c`): the dataset features, the recorder and the LeRobot plugin all use these names.
LEROBOT_STATE = "observation.state"
LEROBOT_ENV_STATE = "observation.environment_state"
LEROBOT_IMAGES = "observation.images"


@dataclass(frozen=True)
class JointSpec:
    """One actuated joint: LeRobot motor name, SI limits, and the servo behind it on the real arm."""

    name: str
    lower: float
    upper: float
    kind: Literal["revolute", "gripper"] = "revolute"
    motor_id: int = 0
    motor_model: str = ""
    gripper_span: tuple[float, float] | None = None
    """Grippers only: the model's finger positions that 0 and 1 stand for, where they are not the model joint's
    range (ALOHA: ACT's normalization, which LeRobot's `aloha_sim_*` datasets are in)."""

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"joint {self.name!r}: lower limit {self.lower} must be below upper {self.upper}")
        if self.kind == "gripper" and (self.lower != 0.0 or self.upper != 1.0):
            raise ValueError(f"gripper joint {self.name!r} must span [0, 1], got [{self.lower}, {self.upper}]")
        if self.gripper_span is not None and (self.kind != "gripper" or not self.gripper_span[0] < self.gripper_span[1]):
            raise ValueError(f"joint {self.name!r}: gripper_span is for grippers, (closed, open) with closed < open; "
                             f"got {self.gripper_span} on a {self.kind} joint")


@dataclass(frozen=True)
class CameraSpec:
    """A camera by the name the real setup uses (`front`, `wrist`, `top`), with image size and rate."""

    name: str
    height: int = 480
    width: int = 640
    fps: int = 30

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)


@dataclass(frozen=True)
class ArmSpec:
    """Everything about an arm that sim and real must agree on.

    `robot_type` is what LeRobot's record writes for it (`robot.name`: one `so_follower` for both SO arms since
    LeRobot 0.4.3); `older_robot_types` are names earlier LeRobot versions (and twinarm) wrote, read but never
    written. `lerobot_units` says which units twinarm converts to for LeRobot: `"degrees"` (SO-100/101, Koch:
    revolute joints in degrees, gripper 0..100) or `"radians"` (ALOHA datasets: radians, gripper 0..1);
    `lerobot_default_mode` is how LeRobot's own follower records the body joints unless told otherwise: degrees
    (the SO arms, `use_degrees=True`) or its -100..100 range (the Koch, `use_degrees=False`, and always with
    LeRobot's Koch leader), which `twinarm dataset convert-units` turns into degrees. `home` is the pose
    (spec units) a sim episode starts from, the model's `home` keyframe (a test holds them equal for twinarm's
    arms, and the sim warns where yours differ), and where `eval` starts each episode on the real arm, so a policy
    starts from the same pose on both. `model` names the MuJoCo model (see the field).
    """

    name: str
    display_name: str
    robot_type: str
    joints: tuple[JointSpec, ...]
    control_hz: int
    cameras: tuple[CameraSpec, ...]
    lerobot_units: Literal["degrees", "radians"] = "degrees"
    lerobot_default_mode: Literal["degrees", "range"] = "degrees"
    older_robot_types: tuple[str, ...] = field(default=())
    motor_bus: Literal["feetech", "dynamixel"] = "feetech"
    optional_cameras: tuple[CameraSpec, ...] = field(default=())
    home: tuple[float, ...] = field(default=())
    #: The MuJoCo model: a twinarm asset folder's name ("" = `name`), or the path of your own scene.xml (an arm of
    #: your own, or a variant of one of twinarm's that keeps its model: `model="so101"`).
    model: str = ""

    def __post_init__(self) -> None:
        names = [j.name for j in self.joints]
        if len(set(names)) != len(names):
            raise ValueError(f"arm {self.name!r}: duplicate joint names {names}")
        if self.home and (len(self.home) != len(self.joints) or any(
                not j.lower <= h <= j.upper for j, h in zip(self.joints, self.home, strict=True))):
            raise ValueError(f"arm {self.name!r}: home {self.home} must give each of {names} within its limits")
        cams = list(self.camera_names)
        if len(set(cams)) != len(cams):
            raise ValueError(f"arm {self.name!r}: duplicate camera names {cams}")

    # ----- joints -------------------------------------------------------------------------------
    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def dof(self) -> int:
        return len(self.joints)

    @property
    def n_arms(self) -> int:
        """How many arms the spec drives: one gripper each (ALOHA 2, the others 1)."""
        return int(self.gripper_mask.sum())

    @cached_property
    def lower(self) -> np.ndarray:
        return _frozen(np.array([j.lower for j in self.joints], dtype=np.float64))

    @cached_property
    def upper(self) -> np.ndarray:
        return _frozen(np.array([j.upper for j in self.joints], dtype=np.float64))

    @cached_property
    def gripper_mask(self) -> np.ndarray:
        return _frozen(np.array([j.kind == "gripper" for j in self.joints], dtype=bool))

    @cached_property
    def home_pose(self) -> np.ndarray:
        """`home` as an array (all zeros, clipped to the limits, for an arm that names none)."""
        return _frozen(np.asarray(self.home, dtype=np.float64) if self.home else self.clip_action(np.zeros(self.dof)))

    @property
    def control_period(self) -> float:
        return 1.0 / self.control_hz

    def check_action(self, action: Any) -> np.ndarray:
        """`action` as this arm's float64 joint targets, or a ValueError naming the joints: the one check of what
        sim and real `step` are given (a tensor detached first, as a policy's output often requires grad; strings,
        bools or complex numbers, another shape, NaN or inf refused: clipped, an inf would drive the joint to its
        limit). A float array goes straight to the shape and finite checks (env.step's hot path)."""
        if type(action) is not np.ndarray or action.dtype.kind != "f":
            if hasattr(action, "detach"):
                action = action.detach().cpu()
            try:
                arr = np.asarray(action)
            except (TypeError, ValueError):  # a ragged list
                arr = None
            if arr is None or arr.dtype.kind not in "iuf":
                raise ValueError(f"action must be {self.dof} numbers (the arm's joint targets: {self.joint_names}), "
                                 f"got {action!r:.200}")  # fmt: skip
            action = arr.astype(np.float64, copy=False)
        if action.shape != (self.dof,):
            raise ValueError(f"action must have shape ({self.dof},) (joints {self.joint_names}), got {action.shape}")
        values = action.tolist()  # on 6-14 values, Python's isfinite is cheaper than np.isfinite(action).all()
        if not all(map(math.isfinite, values)):
            said = "; ".join(f"{kind} for joints {[n for n, v in zip(self.joint_names, values, strict=True) if bad(v)]}"
                             for kind, bad in (("NaN", math.isnan), ("inf", math.isinf))
                             if any(map(bad, values)))  # fmt: skip
            raise ValueError(f"action is {said} (NaN or inf is no joint target); the arm keeps its last target")
        return action

    def clip_action(self, action: np.ndarray) -> np.ndarray:
        """Clamp joint targets to the limits (the safety clamp shared by sim and real)."""
        return np.minimum(np.maximum(np.asarray(action, dtype=np.float64), self.lower), self.upper)

    def limit_target(self, action: np.ndarray, present: np.ndarray, max_step: float | np.ndarray) -> np.ndarray:
        """Clamp joint targets to the limits, then to at most `max_step` (scalar or per joint; rad, gripper
        fraction) from `present`: what a follower driven by a person is sent, real or simulated."""
        cur = np.asarray(present, dtype=np.float64)
        if not np.all(np.asarray(max_step) > 0):  # a negative step would pull every joint to its lower limit
            raise ValueError(f"max_step must be above 0 on every joint, got {max_step}")
        return np.clip(self.clip_action(action), cur - max_step, cur + max_step)

    def reset_joints(self, options: Mapping[str, Any] | None) -> np.ndarray | None:
        """The reset option the sim and real envs of this arm share, `{"joints": q}`: q (spec units) checked and
        clipped to the limits, or None when not given (sim: the home pose; real: wherever the arm is)."""
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(f"reset options must be a dict such as {{'joints': q}} or None, got {options!r}")
        unknown = set(options or {}) - {"joints"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; the one option is 'joints'")
        joints = (options or {}).get("joints")
        if joints is None:
            return None
        try:  # a tensor may require grad or live on a GPU; a string or dict gives a non-numeric dtype below
            q = np.asarray(joints.detach().cpu() if hasattr(joints, "detach") else joints)
        except (TypeError, ValueError):  # a ragged list
            q = None
        if q is None or q.dtype.kind not in "iuf" or q.shape != (self.dof,) or not np.all(np.isfinite(q)):
            raise ValueError(f"reset option 'joints' must be {self.dof} finite values, the joints {self.joint_names} "
                             f"in spec units (rad; gripper opening 0..1), got {joints!r}")
        clipped = self.clip_action(q)
        over = np.abs(clipped - q)
        if over.max() > min(STATE_MARGIN_RAD, STATE_MARGIN_GRIPPER):  # past any state an arm reports: wrong units?
            i = int(np.argmax(over))
            j = self.joints[i]
            warnings.warn(f"reset option 'joints': {j.name} = {float(q[i]):g} lies {over[i]:.3g} outside its limits "
                          f"[{j.lower:g}, {j.upper:g}] (spec units: rad, gripper 0..1; LeRobot's degrees convert "
                          "with ArmSpec.from_lerobot); the arm starts clipped to the limits", stacklevel=3)
        return clipped

    # ----- cameras ------------------------------------------------------------------------------
    @property
    def camera_names(self) -> tuple[str, ...]:
        """Every camera the arm can have, the optional ones (ALOHA's wrists) included."""
        return tuple(c.name for c in self.cameras + self.optional_cameras)

    def camera(self, name: str) -> CameraSpec:
        for cam in self.cameras + self.optional_cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"arm {self.name!r} has no camera {name!r}; known cameras: {list(self.camera_names)}")

    def resolve_cameras(
        self,
        names: tuple[str, ...] | list[str] | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> tuple[CameraSpec, ...]:
        """The cameras an env exposes: the default set (or `names`), optionally resized to (h, w)."""
        cams = self.cameras if names is None else tuple(self.camera(n) for n in names)
        if image_size is not None:
            if isinstance(image_size, str) or not hasattr(image_size, "__len__") or len(image_size) != 2:
                raise ValueError(f"image_size must be (height, width), got {image_size!r}")
            h, w = (int(v) for v in image_size)
            if h <= 0 or w <= 0:
                raise ValueError(f"image_size must be positive (height, width), got {image_size}")
            cams = tuple(replace(c, height=h, width=w) for c in cams)
        return cams

    # ----- Gymnasium spaces ---------------------------------------------------------------------
    def action_space(self) -> spaces.Box:
        """Absolute joint targets in SI units, bounded by the joint limits."""
        return spaces.Box(self.lower.astype(np.float32), self.upper.astype(np.float32), dtype=np.float32)

    def check_task_arms(self, task: str, arms: int) -> None:
        """Refuse a task made for another number of arms (a two-arm task on a one-arm spec, or the reverse), before
        a model is built or a port opened: the task would fail on a missing part of the other family."""
        if arms != self.n_arms:
            def word(n: int) -> str:
                return {1: "one", 2: "two"}.get(n, str(n))

            raise ValueError(f"{task} is a {word(arms)}-arm task and the {self.name} arm has {word(self.n_arms)}: use "
                             f"an id made for the {self.name} arm (`twinarm envs` lists them)")

    def state_space(self) -> spaces.Box:
        margin = np.where(self.gripper_mask, STATE_MARGIN_GRIPPER, STATE_MARGIN_RAD)
        low = (self.lower - margin).astype(np.float32)
        high = (self.upper + margin).astype(np.float32)
        return spaces.Box(low, high, dtype=np.float32)

    def observation_space(
        self,
        obs_type: str = "pixels_agent_pos",
        cameras: tuple[CameraSpec, ...] | None = None,
        env_state_dim: int | None = None,
    ) -> spaces.Dict:
        """The observation Dict for `obs_type`; `environment_state` exists only in the sim `state` variant."""
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be one of {OBS_TYPES}, got {obs_type!r}")
        cams = self.cameras if cameras is None else cameras
        out: dict[str, spaces.Space] = {}
        if obs_type in ("pixels", "pixels_agent_pos"):
            out["pixels"] = spaces.Dict(
                {c.name: spaces.Box(0, 255, shape=c.shape, dtype=np.uint8) for c in cams}
            )
        if obs_type in ("state", "pixels_agent_pos"):
            out["agent_pos"] = self.state_space()
        if obs_type == "state":
            if env_state_dim is None:
                raise ValueError(
                    f"arm {self.name!r}: obs_type='state' needs environment_state, which only a simulated "
                    "task provides; use 'pixels_agent_pos' or 'pixels' on the real arm"
                )
            out["environment_state"] = spaces.Box(
                -ENV_STATE_BOUND, ENV_STATE_BOUND, shape=(env_state_dim,), dtype=np.float32
            )
        return spaces.Dict(out)

    # ----- LeRobot units and features -----------------------------------------------------------
    @cached_property
    def lerobot_scale(self) -> np.ndarray:
        """Per-joint factor from SI units to LeRobot's units (the only unit conversion in twinarm)."""
        if self.lerobot_units == "radians":
            return _frozen(np.ones(self.dof))
        return _frozen(np.where(self.gripper_mask, 100.0, 180.0 / np.pi))

    @cached_property
    def lerobot_unit_labels(self) -> tuple[str, ...]:
        """Each joint's unit in LeRobot's data, for tables and plots: deg and 0..100, or rad and 0..1."""
        radians = self.lerobot_units == "radians"
        return tuple(("0..1" if radians else "0..100") if g else ("rad" if radians else "deg") for g in self.gripper_mask)

    def to_lerobot(self, x: np.ndarray) -> np.ndarray:
        """SI (rad, gripper 0..1) -> LeRobot (deg, gripper 0..100 for degree-reporting arms)."""
        x = np.asarray(x)
        self._check_last_dim(x, "to_lerobot")
        return (x.astype(np.float64) * self.lerobot_scale).astype(x.dtype if x.dtype.kind == "f" else np.float64)

    def from_lerobot(self, x: np.ndarray) -> np.ndarray:
        """LeRobot units -> SI units; inverse of `to_lerobot`."""
        x = np.asarray(x)
        self._check_last_dim(x, "from_lerobot")
        return (x.astype(np.float64) / self.lerobot_scale).astype(x.dtype if x.dtype.kind == "f" else np.float64)

    def _check_last_dim(self, x: np.ndarray, what: str) -> None:
        if x.ndim == 0 or x.shape[-1] != self.dof:
            raise ValueError(f"{what}: arm {self.name!r} has {self.dof} joints, got array of shape {x.shape}")

    @property
    def motor_feature_names(self) -> list[str]:
        """LeRobot's per-motor feature names, e.g. `shoulder_pan.pos`."""
        return [f"{n}.pos" for n in self.joint_names]

    def lerobot_features(
        self,
        cameras: tuple[CameraSpec, ...] | None = None,
        use_videos: bool = True,
        env_state_dim: int | None = None,
    ) -> dict[str, dict]:
        """Dataset features in LeRobot's `info.json` form (without the default index features)."""
        cams = self.cameras if cameras is None else cameras
        feats: dict[str, dict] = {
            LEROBOT_STATE: {"dtype": "float32", "shape": [self.dof], "names": self.motor_feature_names},
            "action": {"dtype": "float32", "shape": [self.dof], "names": self.motor_feature_names},
        }
        if env_state_dim:
            feats[LEROBOT_ENV_STATE] = {
                "dtype": "float32",
                "shape": [env_state_dim],
                "names": None,
            }
        for c in cams:
            feats[f"{LEROBOT_IMAGES}.{c.name}"] = {
                "dtype": "video" if use_videos else "image",
                "shape": [c.height, c.width, 3],
                "names": ["height", "width", "channels"],
            }
        return feats


def _frozen(a: np.ndarray) -> np.ndarray:
    """Mark a cached spec array read-only so no caller can change the spec by accident."""
    a.setflags(write=False)
    return a
