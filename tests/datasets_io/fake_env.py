"""A tiny Gymnasium env with the twinarm observation layout (agent_pos + pixels/{front,wrist}) for recorder tests."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

H, W = 32, 48


class FakeArmEnv(gym.Env):
    """Joint targets move a 6-D state; images encode the state; success iff the reset seed is not a multiple of 3."""

    metadata = {"render_modes": [], "render_fps": 10}

    def __init__(self, length: int = 12) -> None:
        self.length = length
        self.action_space = spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)
        self.observation_space = spaces.Dict({
            "agent_pos": spaces.Box(-2.0, 2.0, shape=(6,), dtype=np.float32),
            "pixels": spaces.Dict({c: spaces.Box(0, 255, (H, W, 3), np.uint8) for c in ("front", "wrist")}),
        })

    def _obs(self) -> dict[str, Any]:
        level = int(self._t * 9 + self._seed * 20) % 256
        front = np.full((H, W, 3), level, np.uint8)
        front[:, : W // 2, 0] = 255 - level
        wrist = np.full((H, W, 3), (level + 128) % 256, np.uint8)
        return {"agent_pos": self._q.copy(), "pixels": {"front": front, "wrist": wrist}}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._seed = 0 if seed is None else seed
        self._t = 0
        self._q = self.np_random.uniform(-0.5, 0.5, 6).astype(np.float32)
        return self._obs(), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self._q = (0.5 * self._q + 0.5 * np.asarray(action, np.float32)).astype(np.float32)
        self._t += 1
        truncated = self._t >= self.length
        return self._obs(), 0.0, False, truncated, {"is_success": truncated and self._seed % 3 != 0}


class TowardsZero:
    """A policy callable with reset(): drive every joint halfway to zero."""

    def __init__(self, env: gym.Env) -> None:
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        self.calls += 1
        return (np.asarray(obs["agent_pos"]) * 0.5).astype(np.float32)


def make_env(length: int = 12) -> FakeArmEnv:
    return FakeArmEnv(length)


def make_policy(env: gym.Env) -> TowardsZero:
    return TowardsZero(env)


def features(use_videos: bool = True) -> dict[str, dict]:
    names = [f"j{i}.pos" for i in range(6)]
    dtype = "video" if use_videos else "image"
    return {
        "observation.state": {"dtype": "float32", "shape": [6], "names": names},
        "action": {"dtype": "float32", "shape": [6], "names": names},
        "observation.images.front": {"dtype": dtype, "shape": [H, W, 3], "names": ["height", "width", "channels"]},
        "observation.images.wrist": {"dtype": dtype, "shape": [H, W, 3], "names": ["height", "width", "channels"]},
    }
