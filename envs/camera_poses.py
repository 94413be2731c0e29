"""Where the sim's cameras sit: per camera a pose and a vertical field of view (a `twinarm fit-camera` file),
applied to a model so the sim sees the scene from where the real camera does.

The file is JSON, `{"cameras": {"front": {"pos": [x, y, z], "quat": [w, x, y, z], "fovy": deg}}, "fit": {...}}`:
`pos` in metres and `quat` (MuJoCo's camera convention: it looks along its -z axis, +y up in the image) in the
frame of the body the camera is mounted on: the world for a fixed camera, the gripper's body for a wrist
camera; `fovy` in degrees. `fit` records how each camera was fitted; only `cameras` is read here.
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
    """A camera's placement on its body (the world for a fixed camera): position (m), orientation (w, x, y, z;
    MuJoCo's camera frame), fovy (deg)."""

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
        """The camera's axes (x right, y up, z backwards) as the columns of a rotation matrix in its body's frame."""
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, np.asarray(self.quat, dtype=np.float64))
        return mat.reshape(3, 3)

    def on(self, rot: np.ndarray, pos: np.ndarray) -> CameraPose:
        """This pose carried by a body at (`rot`, `pos`): where the camera is in the body's parent frame."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, (rot @ self.rotation).ravel())
        return CameraPose(tuple((rot @ np.asarray(self.pos) + pos).tolist()), tuple(quat.tolist()), self.fovy)  # type: ignore[arg-type]


def _vector(d: Mapping[str, Any], key: str, n: int, where: str) -> tuple[float, ...]:
    v = d.get(key)
    if (
        not isinstance(v, (list, tuple))
        or len(v) != n
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    ):
        raise ValueError(f"{where}: {key} must be a list of {n} finite numbers, got {v!r}")
    return tuple(float(x) for x in v)


def read_camera_poses_file(path: str | Path) -> Any:
    """A camera poses file's parsed JSON (checked by `load_camera_poses`); errors name the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"camera poses file {path} does not exist (write one with `twinarm fit-camera`)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"camera poses file {path} is not JSON: {exc}") from None


def load_camera_poses(value: str | Path | Mapping[str, Any] | None, source: str = "camera_poses") -> dict[str, CameraPose]:
    """Camera poses from a `twinarm fit-camera` file, its parsed content, or a mapping camera -> entry
    (`{"front": {...}}`); {} for None. Errors name the file, or `source` for a mapping."""
    if value is None:
        return {}
    if isinstance(value, (str, Path)):
        data, source = read_camera_poses_file(value), str(value)
    else:
        data = value
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a JSON object with a 'cameras' mapping")
    cameras = data["cameras"] if "cameras" in data else data
    if not isinstance(cameras, Mapping) or not cameras:
        raise ValueError(f"{source}: no cameras (expected {{'cameras': {{'front': {{'pos': ..., 'quat': ..., 'fovy': ...}}}}}})")
    return {str(name): CameraPose.from_dict(entry, f"{source}: camera {name!r}") for name, entry in cameras.items()}


def camera_body(model: mujoco.MjModel, name: str) -> str | None:
    """The body a camera is mounted on, None for a camera fixed in the world."""
    body = int(model.cam_bodyid[camera_id(model, name)])
    return None if body == 0 else mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body)


def model_camera_pose(model: mujoco.MjModel, name: str) -> CameraPose:
    """The pose a model gives a camera on its body, as `apply_camera_poses` takes it (a camera aimed at a
    target body: where it points at the model's reference pose)."""
    cam = camera_id(model, name)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    body = int(model.cam_bodyid[cam])
    rot_b, pos_b = data.xmat[body].reshape(3, 3), data.xpos[body]
    local = rot_b.T @ data.cam_xmat[cam].reshape(3, 3)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, local.ravel())
    pos = rot_b.T @ (data.cam_xpos[cam] - pos_b)
    return CameraPose(pos=tuple(pos.tolist()), quat=tuple(quat.tolist()), fovy=float(model.cam_fovy[cam]))  # type: ignore[arg-type]


def apply_camera_poses(model: mujoco.MjModel, poses: Mapping[str, CameraPose]) -> None:
    """Place each named camera on its body as given; it stays there (a camera that tracked a body stops)."""
    for name, pose in poses.items():
        cam = camera_id(model, name)
        model.cam_mode[cam] = mujoco.mjtCamLight.mjCAMLIGHT_FIXED
        model.cam_pos[cam] = pose.pos
        model.cam_quat[cam] = pose.quat
        model.cam_fovy[cam] = pose.fovy


def camera_id(model: mujoco.MjModel, name: str) -> int:
    """A camera's id; an unknown name raises, listing the model's cameras."""
    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cam < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        raise ValueError(f"camera poses: the sim has no camera {name!r}; its cameras are {names}")
    return cam
