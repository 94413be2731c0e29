"""The task interface (dm_control-style): scene additions, episode initialisation, reward, success.

A task knows nothing about Gymnasium; `ArmEnv` glues a task to an arm's physics. Tasks read arm
geometry from named model elements (`tcp` site, `*_pad` finger geoms, `workspace` site) so one task
file serves every single-arm model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import mujoco
import numpy as np

from twinarm.envs.physics import ArmPhysics
from twinarm.spec import ArmSpec


class Task(ABC):
    """Base class of single-arm tasks; subclasses fill in the hooks below.

    Tasks keep no Python-side episode state: objects and targets live in MuJoCo (free joints, mocap
    bodies), so the physics state alone restores an episode.
    """

    name: ClassVar[str] = ""
    env_state_dim: ClassVar[int] = 0
    #: How many arms the task drives (the real env reads it off the arms the task's ids are registered on).
    arms: ClassVar[int] = 1

    def __init__(self, spec: ArmSpec):
        spec.check_task_arms(self.name or type(self).__name__, self.arms)
        self.spec = spec

    # ----- model --------------------------------------------------------------------------------
    @abstractmethod
    def build_scene(self, mjspec: mujoco.MjSpec) -> None:
        """Add the task's objects (bodies, sites) to the arm's scene before compilation."""

    def bind(self, physics: ArmPhysics) -> None:
        """Cache ids of named elements, and live views of their state for the per-step reward and observation.

        `evaluate` and `environment_state` read those views, so they take the physics the task was bound to.
        """
        m = physics.model
        self.tcp_site = _require(m, mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self._data = physics.data
        self._tcp_xpos = physics.data.site_xpos[self.tcp_site]
        ws = _require(m, mujoco.mjtObj.mjOBJ_SITE, "workspace")
        self.workspace_center = m.site_pos[ws].copy()
        self.workspace_half = m.site_size[ws].copy()
        self.pad_geoms = tuple(
            g
            for g in range(m.ngeom)
            if (mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or "").endswith("_pad")
        )
        self._pad_set = frozenset(self.pad_geoms)

    # ----- episode ------------------------------------------------------------------------------
    @abstractmethod
    def initialize_episode(self, physics: ArmPhysics, rng: np.random.Generator) -> None:
        """Place objects and targets for a new episode using only `rng`."""

    @abstractmethod
    def environment_state(self, physics: ArmPhysics) -> np.ndarray:
        """Object poses and targets: a new float32 array of length `env_state_dim` (the env returns it as is).

        Tasks build it with `_snapshot` from live views cached in `bind`.
        """

    @abstractmethod
    def reward(self, physics: ArmPhysics) -> tuple[float, dict[str, float]]:
        """Dense reward and its named terms."""

    @abstractmethod
    def is_success(self, physics: ArmPhysics) -> bool:
        """Whether the episode's goal holds in the current state."""

    def evaluate(self, physics: ArmPhysics) -> tuple[float, dict[str, float], bool]:
        """Reward, its terms and success in one pass (tasks override it to share work on the hot path)."""
        reward, terms = self.reward(physics)
        return reward, terms, self.is_success(physics)

    # ----- helpers shared by tasks ---------------------------------------------------------------
    def sample_in_workspace(self, rng: np.random.Generator, margin: float = 0.0) -> np.ndarray:
        """A uniform xy point in the arm's workspace rectangle (shrunk by `margin`)."""
        half = np.maximum(self.workspace_half[:2] - margin, 1e-3)
        return self.workspace_center[:2] + rng.uniform(-half, half)

    def tcp_pos(self, physics: ArmPhysics) -> np.ndarray:
        return physics.data.site_xpos[self.tcp_site].copy()

    def _check_bound(self, physics: ArmPhysics) -> None:
        """The per-step paths read views cached in `bind`: they are only right for that physics."""
        assert physics.data is self._data, "a task reads the physics it was bound to"

    def _snapshot(self, physics: ArmPhysics, *views: np.ndarray) -> np.ndarray:
        """Live `views` of the bound physics as one new float32 array (what `environment_state` returns).

        Built like agent_pos, `np.array(list, float32)`: one numpy construction per step instead of
        astype/concatenate, with the same float64 -> float32 rounding."""
        self._check_bound(physics)
        values = views[0].tolist()
        for view in views[1:]:
            values += view.tolist()
        return np.array(values, dtype=np.float32)

    def pads_touching(self, physics: ArmPhysics, geom_id: int) -> int:
        """How many finger pads are in contact with `geom_id` (2 means it is pinched)."""
        pads = self._pad_set
        touching = set()
        for g1, g2 in physics.data.contact.geom.tolist():  # the ncon active contacts; plain Python is fastest
            if g1 == geom_id and g2 in pads:
                touching.add(g2)
            elif g2 == geom_id and g1 in pads:
                touching.add(g1)
        return len(touching)


def point_distance(a: list[float], b: list[float]) -> float:
    """Distance of two 3-d points given as Python floats (the same value as `sqrt(d @ d)` in numpy)."""
    dx, dy, dz = a[0] - b[0], a[1] - b[1], a[2] - b[2]
    return math.sqrt(dx * dx + dy * dy + dz * dz)


def closeness(distance: float) -> float:
    """The shaped reward term for a distance: 1 at contact, ~0.24 at 10 cm."""
    return 1.0 - math.tanh(10.0 * distance)


def _require(model: mujoco.MjModel, objtype: mujoco.mjtObj, name: str) -> int:
    idx = mujoco.mj_name2id(model, objtype, name)
    if idx < 0:
        raise ValueError(
            f"model {model.names[:20]!r}... lacks the {objtype.name[6:].lower()} {name!r} tasks rely on"
        )
    return idx
