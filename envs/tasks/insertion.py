"""Insertion (ACT paper): the left arm picks up a socket, the right arm a peg, and they insert the peg in mid-air.

Peg (12 x 2 x 2 cm) starts at x in [0.1, 0.2], socket (a 12 cm square tube with a pin inside) at
x in [-0.2, -0.1], both at y in [0.4, 0.6] (ACT's ranges), upright. Reward is ACT's staged score, 0..4:
1 both grippers touch their object, 2 both objects lifted, 3 peg touches socket in the air, 4 peg reaches
the pin inside the socket while both grippers hold (success).
Observation `environment_state` (14): peg pose then socket pose (position, quaternion w x y z).
"""

from __future__ import annotations

from typing import Any, ClassVar

import mujoco
import numpy as np

from twinarm.arms import ALOHA
from twinarm.envs.arm_env import ArmEnv
from twinarm.envs.bimanual import (
    BimanualTask,
    body_geoms,
    contact_pairs,
    free_joint_adr,
    geoms_touching,
    place_free_body,
)
from twinarm.envs.physics import ArmPhysics

PEG_HALF = (0.06, 0.01, 0.01)
SOCKET_HALF_LENGTH = 0.06
SOCKET_INNER = 0.018
WALL = 0.002
PIN_HALF_LENGTH = 0.04
PEG_X, SOCKET_X, Y_RANGE = (0.1, 0.2), (-0.2, -0.1), (0.4, 0.6)
#: Resting heights of the two bodies' origins.
PEG_Z = PEG_HALF[2]
SOCKET_Z = SOCKET_INNER + 2 * WALL


def add_peg_and_socket(mjspec: mujoco.MjSpec) -> None:
    """A red peg and a blue square socket with a red pin in its middle, both free bodies."""
    contact = dict(condim=4, friction=[1.0, 0.02, 0.001], contype=1, conaffinity=1)
    peg = mjspec.worldbody.add_body(name="peg", pos=[0.15, 0.5, PEG_Z])
    peg.add_freejoint(name="peg_joint")
    peg.add_geom(
        name="peg",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=list(PEG_HALF),
        mass=0.05,
        rgba=[0.85, 0.15, 0.15, 1],
        **contact,
    )
    sock = mjspec.worldbody.add_body(name="socket", pos=[-0.15, 0.5, SOCKET_Z])
    sock.add_freejoint(name="socket_joint")
    L, inner = SOCKET_HALF_LENGTH, SOCKET_INNER
    walls = {
        "socket_bottom": ([0, 0, -inner - WALL], [L, inner + 2 * WALL, WALL]),
        "socket_top": ([0, 0, inner + WALL], [L, inner + 2 * WALL, WALL]),
        "socket_side_a": ([0, inner + WALL, 0], [L, WALL, inner]),
        "socket_side_b": ([0, -inner - WALL, 0], [L, WALL, inner]),
    }
    for name, (pos, size) in walls.items():
        sock.add_geom(
            name=name,
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=pos,
            size=size,
            mass=0.0125,
            rgba=[0.15, 0.3, 0.85, 1],
            **contact,
        )
    sock.add_geom(
        name="pin",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[PIN_HALF_LENGTH, 0.01, 0.01],
        mass=0.001,
        rgba=[0.85, 0.15, 0.15, 1],
        **contact,
    )


class Insertion(BimanualTask):
    name = "Insertion"
    env_state_dim = 14

    def build_scene(self, mjspec: mujoco.MjSpec) -> None:
        add_peg_and_socket(mjspec)

    def bind(self, physics: ArmPhysics) -> None:
        super().bind(physics)
        m = physics.model
        self.peg_geoms = body_geoms(m, "peg")
        self.socket_geoms = body_geoms(m, "socket")
        self.pin_geom = (m.geom("pin").id,)
        self._peg_set, self._socket_set = frozenset(self.peg_geoms), frozenset(self.socket_geoms)
        self.peg_adr = free_joint_adr(m, "peg_joint")
        self.socket_adr = free_joint_adr(m, "socket_joint")
        # resting heights of the body origins, scaled with the objects when object_size_scale drew their sizes
        self.peg_z = PEG_Z * (float(m.geom("peg").size[2]) / PEG_HALF[2])  # (x / x is 1.0 exactly: nominal unchanged)
        self.socket_z = SOCKET_Z * (float(m.geom("socket_bottom").size[2]) / WALL)
        q = physics.data.qpos
        self._poses = (
            q[self.peg_adr[0] : self.peg_adr[0] + 7],
            q[self.socket_adr[0] : self.socket_adr[0] + 7],
        )

    def initialize_episode(self, physics: ArmPhysics, rng: np.random.Generator) -> None:
        peg = rng.uniform([PEG_X[0], Y_RANGE[0]], [PEG_X[1], Y_RANGE[1]])
        sock = rng.uniform([SOCKET_X[0], Y_RANGE[0]], [SOCKET_X[1], Y_RANGE[1]])
        place_free_body(physics, self.peg_adr, np.array([peg[0], peg[1], self.peg_z]))
        place_free_body(physics, self.socket_adr, np.array([sock[0], sock[1], self.socket_z]))
        mujoco.mj_forward(physics.model, physics.data)

    def peg_pose(self, physics: ArmPhysics) -> np.ndarray:
        return physics.data.qpos[self.peg_adr[0] : self.peg_adr[0] + 7].copy()

    def socket_pose(self, physics: ArmPhysics) -> np.ndarray:
        return physics.data.qpos[self.socket_adr[0] : self.socket_adr[0] + 7].copy()

    def environment_state(self, physics: ArmPhysics) -> np.ndarray:
        return self._snapshot(physics, *self._poses)

    def stage(self, physics: ArmPhysics) -> tuple[int, dict[str, float]]:
        pairs = contact_pairs(physics)
        on_peg, on_socket = geoms_touching(pairs, self._peg_set), geoms_touching(pairs, self._socket_set)
        right = len(on_peg & self.right_pads)
        left = len(on_socket & self.left_pads)
        lifted = on_peg.isdisjoint(self.ground_geoms) and on_socket.isdisjoint(self.ground_geoms)
        peg_socket = not on_peg.isdisjoint(self._socket_set)
        pin = self.pin_geom[0] in on_peg
        both_touch = right > 0 and left > 0
        stage = 0
        if both_touch:
            stage = 1
        if both_touch and lifted:
            stage = 2
        if peg_socket and lifted:
            stage = 3
        if pin and lifted and right >= 2 and left >= 2:
            stage = 4
        terms = {
            "touch_right": float(right > 0),
            "touch_left": float(left > 0),
            "lifted": float(lifted),
            "peg_in_socket": float(peg_socket),
            "peg_on_pin": float(pin),
        }
        return stage, terms


class InsertionEnv(ArmEnv):
    """`twinarm/Aloha-Insertion-v0`."""

    task_cls = Insertion
    metadata: ClassVar[dict[str, Any]] = {**ArmEnv.metadata, "render_fps": ALOHA.control_hz}  # the instance's too
