"""A twinarm env as LeRobot's own tools see it: joint state and actions in LeRobot's units, its task text.

`lerobot-eval` and `lerobot-train`'s periodic evaluation feed a policy trained on a LeRobot dataset, whose state and
actions are in LeRobot's units (degrees, gripper 0..100, `ArmSpec.to_lerobot`), and reset with a marker option
of their own. This wrapper converts at that boundary (with the spec's one conversion) and nowhere else; the env
underneath keeps SI units. `twinarm.lerobot_env` (the LeRobot plugin) builds its envs with `make_lerobot_view`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from twinarm.spec import LEROBOT_ENV_STATE, LEROBOT_IMAGES, LEROBOT_STATE

# What LeRobot's rollout passes in `reset(options=...)` to mark a new rollout (lerobot.envs.utils).
LEROBOT_RESET_MARKER = "lerobot_new_rollout"


class LeRobotView(gym.Wrapper):
    """`agent_pos` and actions in LeRobot's units; `task_description` is the task's instruction."""

    def __init__(self, env: gym.Env, task_description: str = ""):
        super().__init__(env)
        self.arm = env.unwrapped.spec_arm
        self.task_description = task_description
        low, high = self.arm.to_lerobot(self.arm.lower), self.arm.to_lerobot(self.arm.upper)
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        obs_space = dict(env.observation_space.spaces)
        if "agent_pos" in obs_space:
            box = obs_space["agent_pos"]
            obs_space["agent_pos"] = spaces.Box(
                self.arm.to_lerobot(box.low).astype(np.float32), self.arm.to_lerobot(box.high).astype(np.float32),
                dtype=np.float32,
            )
        self.observation_space = spaces.Dict(obs_space)

    def _view(self, obs: dict[str, Any]) -> dict[str, Any]:
        if "agent_pos" not in obs:
            return obs
        return {**obs, "agent_pos": self.arm.to_lerobot(np.asarray(obs["agent_pos"], dtype=np.float32))}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """LeRobot's new-rollout marker is its own bookkeeping: dropped; any other option goes to the env, a start
        pose `{"joints": q}` converted from this view's units (a LeRobot dataset's `observation.state`)."""
        rest = {k: v for k, v in (options or {}).items() if k != LEROBOT_RESET_MARKER}
        if rest.get("joints") is not None:
            q = rest["joints"]
            q = np.asarray(q.detach().cpu() if hasattr(q, "detach") else q)
            if q.dtype.kind in "iuf" and q.shape == (self.arm.dof,):  # else the env names what is wrong with it
                rest["joints"] = self.arm.from_lerobot(q.astype(np.float64))
        obs, info = self.env.reset(seed=seed, options=rest or None)
        return self._view(obs), info

    def inverse_action(self, action: np.ndarray) -> np.ndarray:
        """Joint targets in spec units (the env underneath's) -> this view's LeRobot units; what `make_expert`
        maps its actions with, so an expert made on the view answers in the view's units."""
        return self.arm.to_lerobot(np.asarray(action, dtype=np.float64)).astype(np.float32)

    def step(self, action: np.ndarray):
        si = self.arm.from_lerobot(np.asarray(action, dtype=np.float64))
        obs, reward, terminated, truncated, info = self.env.step(si.astype(np.float32))
        return self._view(obs), reward, terminated, truncated, info


def make_lerobot_view(env_id: str, task_description: str = "", **kwargs: Any) -> LeRobotView:
    """`gym.make(env_id, **kwargs)` seen through `LeRobotView`; a module-level function, so that
    `AsyncVectorEnv` workers can unpickle it without importing LeRobot (importing it imports `twinarm`, which
    registers the ids in a fresh worker)."""
    return LeRobotView(gym.make(env_id, **kwargs), task_description=task_description)


def lerobot_env_features(observation_space: spaces.Dict, action_dim: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The env's features as LeRobot's `EnvConfig.features` lists them: key -> (feature type, shape)."""
    feats: dict[str, tuple[str, tuple[int, ...]]] = {"action": ("ACTION", (action_dim,))}
    for name, box in observation_space.spaces.get("pixels", spaces.Dict({})).spaces.items():
        feats[f"pixels/{name}"] = ("VISUAL", tuple(box.shape))
    if "agent_pos" in observation_space.spaces:
        feats["agent_pos"] = ("STATE", tuple(observation_space["agent_pos"].shape))
    if "environment_state" in observation_space.spaces:
        feats["environment_state"] = ("ENV", tuple(observation_space["environment_state"].shape))
    return feats


def lerobot_features_map(features: dict[str, Any]) -> dict[str, str]:
    """Env feature key -> the policy feature key LeRobot's rollout gives it (`observation.images.front`, ...)."""
    names = {"action": "action", "agent_pos": LEROBOT_STATE, "environment_state": LEROBOT_ENV_STATE}
    return {k: names.get(k, f"{LEROBOT_IMAGES}.{k.removeprefix('pixels/')}") for k in features}
