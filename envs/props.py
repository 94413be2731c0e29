"""Task props added to a scene through MjSpec: a free cube, a plate, a visual target marker."""

from __future__ import annotations

import mujoco
import numpy as np

CUBE_HALF = 0.0125  # a 2.5 cm cube, the size LeRobot users print for pick tasks
PLATE_RADIUS = 0.045
PLATE_HALF_HEIGHT = 0.004


def add_cube(mjspec: mujoco.MjSpec, name: str = "cube", half: float = CUBE_HALF, rgba=(0.85, 0.15, 0.15, 1)) -> None:
    """A free-floating cube on the table, grippable by the finger pads."""
    body = mjspec.worldbody.add_body(name=name, pos=[0.2, 0.0, half])
    body.add_freejoint(name=f"{name}_joint")
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[half, half, half],
        mass=0.03,
        rgba=list(rgba),
        condim=4,
        friction=[1.0, 0.02, 0.001],
        contype=1,
        conaffinity=1,
    )


def add_plate(mjspec: mujoco.MjSpec, name: str = "plate") -> None:
    """A flat round plate, a mocap body so each episode can move it."""
    body = mjspec.worldbody.add_body(name=name, pos=[0.25, 0.1, PLATE_HALF_HEIGHT], mocap=True)
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[PLATE_RADIUS, PLATE_HALF_HEIGHT, 0],
        rgba=[0.9, 0.9, 0.92, 1],
        contype=1,
        conaffinity=1,
        friction=[0.8, 0.005, 0.0001],
    )


def add_target(mjspec: mujoco.MjSpec, name: str = "target", radius: float = 0.012) -> None:
    """A visible, non-colliding target sphere on a mocap body."""
    body = mjspec.worldbody.add_body(name=name, pos=[0.2, 0.0, 0.1], mocap=True)
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_SPHERE,
        size=[radius, 0, 0],
        rgba=[0.1, 0.8, 0.2, 0.8],
        contype=0,
        conaffinity=0,
    )


def yaw_quat(yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation about the world z axis."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_yaw(q: np.ndarray) -> float:
    """Yaw angle of a quaternion (w, x, y, z)."""
    w, x, y, z = q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
