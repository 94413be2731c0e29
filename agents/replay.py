"""Episode replay buffer for online TD-MPC: stores env transitions in dataset units and samples
(horizon+1)-step sequences in the batch layout of `TDMPCPolicy.forward`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from twinarm.agents.tdmpc.tdmpc import DONE, REWARD


class ReplayBuffer:
    """Fixed-capacity ring of steps; a sequence never crosses an episode boundary (a change of episode id), nor the
    write head. Each episode id must name one unbroken run of env steps: a new env reset takes a new id."""

    def __init__(self, capacity: int, obs_shapes: dict[str, tuple[int, ...]], action_dim: int, seed: int = 0) -> None:
        self.capacity = int(capacity)
        self.obs = {k: np.zeros((self.capacity, *s), np.uint8 if len(s) == 3 else np.float32) for k, s in obs_shapes.items()}
        self.next_obs = {k: np.zeros_like(v) for k, v in self.obs.items()}
        self.action = np.zeros((self.capacity, action_dim), np.float32)
        self.reward = np.zeros(self.capacity, np.float32)
        self.done = np.zeros(self.capacity, np.float32)
        self.episode = np.full(self.capacity, -1, np.int64)
        self.size = 0
        self.pos = 0
        self.rng = np.random.default_rng(seed)

    def add(self, obs: dict[str, np.ndarray], action: np.ndarray, reward: float, next_obs: dict[str, np.ndarray],
            terminated: bool, episode: int) -> None:
        for k in self.obs:
            self.obs[k][self.pos] = obs[k]
            self.next_obs[k][self.pos] = next_obs[k]
        self.action[self.pos] = action
        self.reward[self.pos] = reward
        self.done[self.pos] = float(terminated)
        self.episode[self.pos] = episode
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def newest_episode(self) -> int | None:
        """The episode id of the newest step stored (None while empty)."""
        return int(self.episode[(self.pos - 1) % self.capacity]) if self.size else None

    def resized(self, capacity: int) -> ReplayBuffer:
        """A buffer of `capacity` steps holding this one's newest `min(size, capacity)` steps, oldest first, and
        its sampling RNG: what a run with that capacity from the start would hold (online `--resume` with a
        larger `--steps`)."""
        out = ReplayBuffer.__new__(ReplayBuffer)
        out.capacity = int(capacity)
        n = min(self.size, out.capacity)
        order = (self.pos - n + np.arange(n)) % self.capacity  # the newest n steps, oldest first

        def moved(a: np.ndarray, fill: float = 0) -> np.ndarray:
            b = np.full((out.capacity, *a.shape[1:]), fill, a.dtype)
            b[:n] = a[order]
            return b

        out.obs = {k: moved(v) for k, v in self.obs.items()}
        out.next_obs = {k: moved(v) for k, v in self.next_obs.items()}
        out.action, out.reward, out.done = moved(self.action), moved(self.reward), moved(self.done)
        out.episode = moved(self.episode, -1)
        out.size, out.pos = n, n % out.capacity
        out.rng = self.rng
        return out

    def _valid_starts(self, horizon: int) -> np.ndarray:
        idx = np.arange(self.size)
        seq = (idx[:, None] + np.arange(horizon)[None]) % self.capacity
        ok = (seq[:, -1] < self.size) if self.size < self.capacity else np.ones(len(idx), bool)
        same = (self.episode[seq] == self.episode[idx][:, None]).all(1)
        # Do not run through the write head (the oldest and newest steps are not contiguous).
        newest = (self.pos - 1) % self.capacity
        crosses = ((newest - idx) % self.capacity) < horizon - 1
        return idx[ok & same & ~crosses]

    def sample(self, batch_size: int, horizon: int) -> dict[str, Tensor]:
        starts = self._valid_starts(horizon)
        if len(starts) == 0:
            raise RuntimeError("replay buffer holds no full sequence yet")
        s = self.rng.choice(starts, size=batch_size)
        seq = (s[:, None] + np.arange(horizon)[None]) % self.capacity  # (B, H)
        out: dict[str, Any] = {}
        for k in self.obs:
            o = np.concatenate((self.obs[k][seq], self.next_obs[k][seq[:, -1:]]), axis=1)  # (B, H+1, ...)
            t = torch.from_numpy(o)
            out[k] = t.float().div_(255.0) if o.dtype == np.uint8 else t
        out["action"] = torch.from_numpy(self.action[seq])
        out[REWARD] = torch.from_numpy(self.reward[seq])
        out[DONE] = torch.from_numpy(self.done[seq])
        return out
