"""Two-arm tasks (ALOHA): the single-arm `Task` generalised to a `left_` and a `right_` arm.

A bimanual model names its tool points `left_tcp` / `right_tcp` and its finger pads `<side>_..._pad`;
the env glue is the ordinary `ArmEnv` (the spec simply lists both arms' joints, left first).
"""

from __future__ import annotations

from abc import abstractmethod

import mujoco
import numpy as np

from twinarm.envs.physics import ArmPhysics
from twinarm.envs.task import Task, _require

SIDES: tuple[str, str] = ("left", "right")


class BimanualTask(Task):
    """A `Task` whose model has two tool points and two sets of finger pads."""

    arms = 2

    def bind(self, physics: ArmPhysics) -> None:
        m = physics.model
        self.tcp_sites = {s: _require(m, mujoco.mjtObj.mjOBJ_SITE, f"{s}_tcp") for s in SIDES}
        self.tcp_site = self.tcp_sites["left"]
        self._data = physics.data
        ws = _require(m, mujoco.mjtObj.mjOBJ_SITE, "workspace")
        self.workspace_center = m.site_pos[ws].copy()
        self.workspace_half = m.site_size[ws].copy()
        names = {g: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or "" for g in range(m.ngeom)}
        self.side_pads = {
            s: tuple(g for g, n in names.items() if n.startswith(f"{s}_") and n.endswith("_pad"))
            for s in SIDES
        }
        self.pad_geoms = self.side_pads["left"] + self.side_pads["right"]
        self.left_pads, self.right_pads = (
            frozenset(self.side_pads["left"]),
            frozenset(self.side_pads["right"]),
        )
        self._pad_set = frozenset(self.pad_geoms)  # `pads_touching` counts both arms' pads
        self.table_geom = _require(m, mujoco.mjtObj.mjOBJ_GEOM, "table")
        floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        #: What an object rests on when nobody holds it: the table, and the floor below it (a dropped object is
        #: not "lifted").
        self.ground_geoms = frozenset({self.table_geom} | ({floor} if floor >= 0 else set()))

    def tcp_pos(self, physics: ArmPhysics, side: str = "left") -> np.ndarray:
        """One arm's tool point (world frame); the left one unless `side="right"`."""
        if side not in self.tcp_sites:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        return physics.data.site_xpos[self.tcp_sites[side]].copy()

    #: gym-aloha's staged scoring: the reward is the stage reached (0..FINAL_STAGE); success is the last one.
    FINAL_STAGE = 4

    @abstractmethod
    def stage(self, physics: ArmPhysics) -> tuple[int, dict[str, float]]:
        """The stage this state has reached, and the reward terms that decided it."""

    def evaluate(self, physics: ArmPhysics) -> tuple[float, dict[str, float], bool]:
        stage, terms = self.stage(physics)
        return float(stage), terms, stage == self.FINAL_STAGE

    def reward(self, physics: ArmPhysics) -> tuple[float, dict[str, float]]:
        return self.evaluate(physics)[:2]

    def is_success(self, physics: ArmPhysics) -> bool:
        return self.stage(physics)[0] == self.FINAL_STAGE

    def side_tcp_pos(self, physics: ArmPhysics, side: str) -> np.ndarray:
        return physics.data.site_xpos[self.tcp_sites[side]].copy()

    def contacts(self, physics: ArmPhysics) -> set[tuple[int, int]]:
        """Every touching geom pair of the current state, each in both orders."""
        pairs = contact_pairs(physics)
        return {(a, b) for a, b in pairs} | {(b, a) for a, b in pairs}

    def pads_holding(self, contacts: set[tuple[int, int]], side: str, geoms: tuple[int, ...]) -> int:
        """How many of `side`'s pads touch any of `geoms` (2 means the object is pinched)."""
        return sum(any((p, g) in contacts for g in geoms) for p in self.side_pads[side])

    def touching(self, contacts: set[tuple[int, int]], a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        return any((x, y) in contacts for x in a for y in b)


def contact_pairs(physics: ArmPhysics) -> list[list[int]]:
    """The geom pairs of the current state's contacts, as plain ints (no numpy scalars)."""
    return physics.data.contact.geom.tolist()


def geoms_touching(pairs: list[list[int]], objects: frozenset[int]) -> set[int]:
    """Every geom in contact with one of `objects` (one pass over the contacts, for the per-step reward)."""
    touching = set()
    for a, b in pairs:
        if a in objects:
            touching.add(b)
        if b in objects:
            touching.add(a)
    return touching


def body_geoms(model: mujoco.MjModel, body: str) -> tuple[int, ...]:
    """All geoms of a body, e.g. the walls and pin of the socket."""
    bid = model.body(body).id
    return tuple(g for g in range(model.ngeom) if model.geom_bodyid[g] == bid)


def free_joint_adr(model: mujoco.MjModel, joint: str) -> tuple[int, int]:
    """(qpos address, dof address) of a free joint."""
    j = model.joint(joint).id
    return int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])


def place_free_body(physics: ArmPhysics, adr: tuple[int, int], pos: np.ndarray) -> None:
    """Put a free body at `pos`, upright and at rest."""
    qa, va = adr
    physics.data.qpos[qa : qa + 3] = pos
    physics.data.qpos[qa + 3 : qa + 7] = [1.0, 0.0, 0.0, 0.0]
    physics.data.qvel[va : va + 6] = 0.0
