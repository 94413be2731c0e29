"""Stable-Baselines3 bridge: any twinarm env as an SB3-ready Gymnasium env.

SB3 wants a flat observation (Box, or a Dict without nesting) and, for SAC/TD3, actions in [-1, 1].
`SB3Wrapper` maps the joint-target action box to [-1, 1] and flattens observations: `state` envs
become one float32 vector (`agent_pos` then `environment_state`); pixel envs become a flat Dict
(`agent_pos`, `pixels_<cam>` as HxWx3 uint8, which SB3's CNN extractor recognises as images).
`normalize_action` maps joint targets back to [-1, 1], so `make_expert(make_sb3_env(...))` gives expert actions
in the wrapper's space (demonstrations for a replay buffer or behaviour cloning).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SB3Wrapper(gym.Wrapper):
    """Normalized actions and flat observations; the underlying env keeps SI units and its spaces."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        act: spaces.Box = env.action_space
        self._low = act.low.astype(np.float64)
        self._high = act.high.astype(np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=act.shape, dtype=np.float32)
        obs: spaces.Dict = env.observation_space
        self._vector_keys = [k for k in ("agent_pos", "environment_state") if k in obs.spaces]
        self._cams = list(obs["pixels"].spaces) if "pixels" in obs.spaces else []
        if not self._cams:
            lows = np.concatenate([obs[k].low for k in self._vector_keys]).astype(np.float32)
            highs = np.concatenate([obs[k].high for k in self._vector_keys]).astype(np.float32)
            self.observation_space = spaces.Box(lows, highs, dtype=np.float32)
        else:
            flat: dict[str, spaces.Space] = {k: obs[k] for k in self._vector_keys}
            flat.update({f"pixels_{c}": obs["pixels"][c] for c in self._cams})
            self.observation_space = spaces.Dict(flat)

    def observation(self, obs: dict[str, Any]) -> Any:
        if not self._cams:
            return np.concatenate([np.asarray(obs[k], np.float32) for k in self._vector_keys])
        out: dict[str, Any] = {k: np.asarray(obs[k], np.float32) for k in self._vector_keys}
        out.update({f"pixels_{c}": obs["pixels"][c] for c in self._cams})
        return out

    def action(self, action: np.ndarray) -> np.ndarray:
        """[-1, 1] -> the env's joint-target box (clipped first, as SB3's PPO may step outside)."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        return (self._low + (a + 1.0) * 0.5 * (self._high - self._low)).astype(np.float32)

    def normalize_action(self, joint_targets: np.ndarray) -> np.ndarray:
        """The inverse of `action`: the env's joint targets (spec units, e.g. a scripted expert's or a recorded
        dataset's) -> this wrapper's [-1, 1] actions, clipped into the box; to seed a replay buffer or clone."""
        q = np.asarray(joint_targets, np.float64)
        return np.clip(2.0 * (q - self._low) / (self._high - self._low) - 1.0, -1.0, 1.0).astype(np.float32)

    #: The hook `twinarm.envs.experts.make_expert` looks for: an expert made on this wrapper answers in [-1, 1].
    inverse_action = normalize_action

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return self.observation(obs), info

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self.action(action))
        return self.observation(obs), float(reward), terminated, truncated, info


def make_sb3_env(env_id: str, **kwargs: Any) -> SB3Wrapper:
    """`gymnasium.make(env_id, **kwargs)` wrapped for SB3 (e.g. `obs_type="state"`)."""
    return SB3Wrapper(gym.make(env_id, **kwargs))
