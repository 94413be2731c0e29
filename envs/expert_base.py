"""What every scripted expert shares: it plans at the first call of each episode (noticing the env's reset by itself),
and it answers in the action space of the env it was made for, wrappers included.

A wrapper that changes the action space can say how to map an action of the env it wraps into its own space by
defining `inverse_action(action)` (`agents.sb3.SB3Wrapper`, `envs.lerobot_view.LeRobotView`); an expert made
through it returns actions in the wrapper's space. Through any other action-space-changing wrapper it refuses.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

#: The method a wrapper that changes the action space defines to map its inner env's actions into its own space.
INVERSE_ACTION = "inverse_action"


def check_single_env(env: Any, what: str = "make_expert") -> None:
    """ValueError for a vector env: a scripted expert plans from one sim's state."""
    if isinstance(env, gym.vector.VectorEnv):
        raise ValueError(
            f"{what}: {type(env).__name__} is a vector env; a scripted expert drives one env (it plans from that sim's "
            "object poses). Make one expert per sub-env: [make_expert(e) for e in vec.envs] for a SyncVectorEnv, or "
            "inside each worker (in the env factory you pass to AsyncVectorEnv) for an async one"
        )


def action_map(env: gym.Env, what: str = "make_expert") -> Callable[[np.ndarray], np.ndarray] | None:
    """How to turn joint targets of `env.unwrapped` into actions of `env`: None when every wrapper keeps the arm's
    action space, else the wrappers' `inverse_action` maps from the innermost out. ValueError naming the wrapper
    that changes the action space without saying how (its actions would be misread: joint targets as [-1, 1])."""
    hooks: list[Callable[[np.ndarray], np.ndarray]] = []
    outer = env
    while isinstance(outer, gym.Wrapper):
        inner = outer.env
        if outer.action_space != inner.action_space:
            hook = getattr(outer, INVERSE_ACTION, None)
            if not callable(hook):
                raise ValueError(
                    f"{what}: the wrapper {type(outer).__name__} changes the action space ({inner.action_space} -> "
                    f"{outer.action_space}) and has no {INVERSE_ACTION}(action) to map the expert's joint targets into "
                    f"it. Make the expert on the env inside it and step that env with its actions (e.g. "
                    f"make_expert(env.unwrapped)), map them yourself, or give {type(outer).__name__} an "
                    f"{INVERSE_ACTION} method (twinarm.agents.sb3.SB3Wrapper has one)"
                )
            hooks.append(hook)
        outer = inner
    if not hooks:
        return None
    hooks.reverse()  # innermost first

    def to_env(action: np.ndarray) -> np.ndarray:
        for hook in hooks:
            action = hook(action)
        return action

    return to_env


class Expert(abc.ABC):
    """Base of the scripted experts: `_start()` plans from the sim state, `_act()` gives the next joint targets.

    The plan is made at the first call of each episode: the expert compares the env's `episode_count` (raised by
    every reset) with the one it planned in, so an expert kept across episodes re-plans by itself; `reset()` still
    forces a new plan. Actions come out in `env`'s action space (see `action_map`).
    """

    def __init__(self, env: gym.Env) -> None:
        check_single_env(env, type(self).__name__)
        self.env: Any = env.unwrapped
        self._to_env = action_map(env, type(self).__name__)
        self._plan: Any = None
        self._episode: int | None = None

    def reset(self) -> None:
        """Plan afresh at the next call (also done by itself when the env has been reset since the last plan)."""
        self._plan = None

    def __call__(self, obs: object = None) -> np.ndarray:
        """Next action, in the action space of the env the expert was made for; `obs` is accepted for the
        policy-callable API (the expert reads the sim state)."""
        episode = self.env.episode_count
        if self._plan is None or episode != self._episode:
            self._episode = episode
            self._start()
        action = self._act()
        return action if self._to_env is None else self._to_env(action)

    @abc.abstractmethod
    def _start(self) -> None:
        """Plan the episode from the sim state (each expert its own phases)."""

    @abc.abstractmethod
    def _act(self) -> np.ndarray:
        """The next joint targets of the plan, in the arm's units."""
