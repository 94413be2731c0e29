"""Where the sim's fixed cameras sit: per camera a pose and a vertical field of view (a `twinarm fit-camera`
file), applied to a model so the sim sees the table from where the real camera does.

The file is JSON, `{"cameras": {"front": {"pos": [x, y, z], "quat": [w, x, y, z], "fovy": deg}}, "fit": {...}}`:
`pos` in metres in the sim's world frame, `quat` the camera's orientation in MuJoCo's convention (it looks
along its -z axis, +y up in the image), `fovy` in degrees. `fit` records how each camera was fitted; only
`cameras` is read here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import numpy as np


@dataclass(frozen=True)
class CameraPose:
    """A fixed camera's placement: position (m, world), orientation (w, x, y, z; MuJoCo camera frame), fovy (deg)."""

    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]
    fovy: float

    @classmethod
    def from_dict(cls, d: Any, where: str) -> CameraPose:
        """Check one camera's entry; errors name `where` (the file and camera) and the field at fault."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected a mapping with pos, quat and fovy, got {type(d).__name__}")
        unknown = set(d) - {"pos", "quat", "fovy"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; a camera has pos, quat and fovy")
        pos = _vector(d, "pos", 3, where)
        quat = _vector(d, "quat", 4, where)
        norm = math.sqrt(sum(q * q for q in quat))
        if norm < 1e-9:
            raise ValueError(f"{where}: quat is zero; give the camera's orientation as [w, x, y, z]")
        fovy = d.get("fovy")
        if not isinstance(fovy, (int, float)) or isinstance(fovy, bool) or not 0.0 < fovy < 180.0:
            raise ValueError(f"{where}: fovy must be a number of degrees in (0, 180), got {fovy!r}")
        return cls(pos=pos, quat=tuple(q / norm for q in quat), fovy=float(fovy))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {"pos": list(self.pos), "quat": list(self.quat), "fovy": self.fovy}

    @property
    def rotation(self) -> np.ndarray:
        """The camera's axes as the columns of a world rotation matrix (x right, y up, z backwards)."""
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, np.asarray(self.quat, dtype=np.float64))
        return mat.reshape(3, 3)


def _vector(d: Mapping[str, Any], key: str, n: int, where: str) -> tuple[float, ...]:
    v = d.get(key)
    if (
        not isinstance(v, (list, tuple))
        or len(v) != n
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    ):
        raise ValueError(f"{where}: {key} must be a list of {n} finite numbers, got {v!r}")
    return tuple(float(x) for x in v)


def load_camera_poses(value: str | Path | Mapping[str, Any] | None) -> dict[str, CameraPose]:
    """Camera poses from a `twinarm fit-camera` file, its parsed content, or a mapping camera -> entry
    (`{"front": {...}}`); {} for None."""
    if value is None:
        return {}
    if isinstance(value, (str, Path)):
        path = Path(value)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"camera poses file {path} does not exist (write one with `twinarm fit-camera`)") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"camera poses file {path} is not JSON: {exc}") from None
        source = str(path)
    else:
        data, source = value, "camera_poses"
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a JSON object with a 'cameras' mapping")
    cameras = data["cameras"] if "cameras" in data else data
    if not isinstance(cameras, Mapping) or not cameras:
        raise ValueError(f"{source}: no cameras (expected {{'cameras': {{'front': {{'pos': ..., 'quat': ..., 'fovy': ...}}}}}})")
    return {str(name): CameraPose.from_dict(entry, f"{source}: camera {name!r}") for name, entry in cameras.items()}


def model_camera_pose(model: mujoco.MjModel, name: str) -> CameraPose:
    """The pose a model gives a camera fixed in the world (checked as `apply_camera_poses` checks it)."""
    cam = _world_camera(model, name)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)  # a camera aimed at a target body gets its orientation here
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, data.cam_xmat[cam])
    return CameraPose(pos=tuple(data.cam_xpos[cam].tolist()), quat=tuple(quat.tolist()), fovy=float(model.cam_fovy[cam]))  # type: ignore[arg-type]


def apply_camera_poses(model: mujoco.MjModel, poses: Mapping[str, CameraPose]) -> None:
    """Place each named camera (fixed in the world) as given; it stays there (a camera that tracked a body stops)."""
    for name, pose in poses.items():
        cam = _world_camera(model, name)
        model.cam_mode[cam] = mujoco.mjtCamLight.mjCAMLIGHT_FIXED
        model.cam_pos[cam] = pose.pos
        model.cam_quat[cam] = pose.quat
        model.cam_fovy[cam] = pose.fovy


def _world_camera(model: mujoco.MjModel, name: str) -> int:
    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cam < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise ValueError(f"camera poses: the sim has no camera {name!r}; its cameras are {names}")
    body = int(model.cam_bodyid[cam])
    if body != 0:
        owner = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body)
        raise ValueError(
            f"camera poses: camera {name!r} rides on body {owner!r}; only cameras fixed in the world can be placed "
            "(a wrist camera moves with the arm)"
        )
    return cam
