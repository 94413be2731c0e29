"""`twinarm teleop --env SIM_ID`: a simulated arm as the follower of a leader arm or of the keyboard.

The sim steps at the arm's control rate on the real arm's clock and its targets are clamped as the real arm's
are. Recordings have the features `twinarm record` writes at the same image size, so teleoperated and scripted
demonstrations can go into one dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from twinarm.real.pacing import LoopClock


class SimFollower:
    """A sim env stepped in real time, with the follower interface teleop uses on a `RealArmEnv`
    (`safe_target`, `joint_positions`, `overruns`); `success` is the task's `is_success` after the last step.
    With `end_after_success_steps`, a step reports the episode terminated once the task has been done that
    many steps in a row (a recorded demonstration ends soon after the task is done)."""

    def __init__(self, env: gym.Env, max_relative_target: float | None = None, pace: bool = True,
                 end_after_success_steps: int | None = None) -> None:  # fmt: skip
        self.env = env
        self.spec_arm = env.unwrapped.spec_arm
        self.max_relative_target = max_relative_target
        self.clock = LoopClock(self.spec_arm.control_period, pace)
        self.success = False
        self.end_after_success_steps = end_after_success_steps
        self._done_steps = 0
        self._q: np.ndarray | None = None
        #: Called with the arm's pose after every reset (the keyboard starts again from it).
        self.on_reset: list[Callable[[np.ndarray], None]] = []

    @property
    def overruns(self) -> int:
        return self.clock.overruns

    def joint_positions(self) -> np.ndarray:
        """The arm's joint positions after the last reset or step (its start pose before the first)."""
        return self.spec_arm.home_pose.copy() if self._q is None else self._q.copy()

    def safe_target(self, action: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        """The real arm's clamp: joint limits, then at most `max_relative_target` from the present pose."""
        if self.max_relative_target is None:
            return self.spec_arm.clip_action(action)
        cur = self.joint_positions() if present is None else present
        return self.spec_arm.limit_target(action, cur, self.max_relative_target)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._seen(obs, info)
        self._done_steps = 0
        for callback in self.on_reset:
            callback(self.joint_positions())
        self.clock.restart()
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        target = self.safe_target(np.asarray(action, dtype=np.float64))
        obs, reward, terminated, truncated, info = self.env.step(target)
        self._seen(obs, info)
        self._done_steps = self._done_steps + 1 if self.success else 0
        if self.end_after_success_steps is not None and self._done_steps >= self.end_after_success_steps:
            terminated = True
        self.clock.tick()
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The first camera's image (for the view of a follower whose observations hold no cameras)."""
        return self.env.render()

    def status(self) -> str:
        return "task: done" if self.success else "task: not yet"

    def _seen(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self._q = np.asarray(obs["agent_pos"], dtype=np.float64)
        self.success = bool(info.get("is_success", False))

    def close(self) -> None:
        self.env.close()


def make_sim_follower(env_id: str, image_size: tuple[int, int], max_relative_target: float | None,
                      episode_steps: int | None = None,
                      randomization: dict[str, Any] | None = None, dynamics: dict[str, Any] | None = None,
                      end_after_success_steps: int | None = None, obs_type: str = "pixels_agent_pos",
                      camera_poses: dict[str, Any] | None = None) -> SimFollower:  # fmt: skip
    """The sim env `env_id` with cameras at `image_size` as a follower; `episode_steps` replaces the id's
    episode length (a recorded episode lasts --episode-time, not the scripted task's length);
    `randomization`, `dynamics` and `camera_poses` as `twinarm record` takes them (checked dicts); with `obs_type` "state" the
    observations hold the object poses instead of the cameras, and `render()` still draws the first camera."""
    import twinarm  # noqa: F401  (registers the ids)

    kwargs: dict[str, Any] = {"obs_type": obs_type, "image_size": tuple(image_size), "randomization": randomization,
                              "dynamics": dynamics, "camera_poses": camera_poses}  # fmt: skip
    if obs_type == "state":
        kwargs["render_mode"] = "rgb_array"  # the view's picture
    if episode_steps is not None:
        kwargs["max_episode_steps"] = episode_steps
    return SimFollower(gym.make(env_id, **kwargs), max_relative_target,
                       end_after_success_steps=end_after_success_steps)
