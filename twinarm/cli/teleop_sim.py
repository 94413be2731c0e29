"""`twinarm teleop --env SIM_ID`: a simulated arm as the follower of a leader arm or of the keyboard.

The sim steps at the arm's control rate on the real arm's clock, its targets are clamped as the real arm's
are, and `--view` shows its cameras in a window. Recordings have the features `twinarm record` writes at the
same image size, so teleoperated and scripted demonstrations can go into one dataset.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from twinarm.real.pacing import LoopClock
from twinarm.real.terminal_keys import KeyHub

#: The sim follower's camera size unless --image-size says otherwise: `twinarm record`'s default.
SIM_IMAGE_SIZE = (240, 320)
#: Key codes OpenCV's `waitKeyEx` gives for keys with names: X11 keysyms (Linux), Windows and macOS codes.
WINDOW_KEYS = {
    65361: "left", 65362: "up", 65363: "right", 65364: "down",
    2424832: "left", 2490368: "up", 2555904: "right", 2621440: "down",
    63234: "left", 63232: "up", 63235: "right", 63233: "down",
    27: "esc",
}  # fmt: skip


def window_key(code: int) -> str | None:
    """A `waitKeyEx` code as the key names `TerminalKeys` gives ("left", "esc", "q", ...); None for others."""
    if code in WINDOW_KEYS:
        return WINDOW_KEYS[code]
    return chr(code) if 32 <= code < 127 else None


def display_problem() -> str | None:
    """Why no window can open here (OpenCV's Qt needs an X display on Linux), or None."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        return "no display to open a window on (DISPLAY is not set): run it on the desktop, or over `ssh -X`"
    return None


class SimView:
    """A window showing the follower's camera images side by side, with a status line drawn on them; keys
    pressed in it go to `keys` (teleop's and the recording's listeners), as if typed in the terminal."""

    def __init__(self, title: str, keys: KeyHub | None = None) -> None:
        import cv2

        problem = display_problem()
        if problem:
            raise RuntimeError(problem)
        self.title, self.keys = title, keys
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    @staticmethod
    def tile(pixels: dict[str, np.ndarray], status: str = "") -> np.ndarray:
        """The camera images (RGB) left to right, padded to one height, as one BGR image with `status` on it."""
        import cv2

        frames = list(pixels.values())
        h = max(f.shape[0] for f in frames)
        padded = [np.pad(f, ((0, h - f.shape[0]), (0, 0), (0, 0))) for f in frames]
        image = np.ascontiguousarray(np.concatenate(padded, axis=1)[:, :, ::-1])
        if status:
            cv2.putText(image, status, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        return image

    def show(self, pixels: dict[str, np.ndarray], status: str = "") -> None:
        import cv2

        cv2.imshow(self.title, self.tile(pixels, status))
        code = cv2.waitKeyEx(1)  # lets the window draw, and takes a key pressed in it
        if code != -1 and self.keys is not None and (key := window_key(code)) is not None:
            self.keys.press(key)

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:  # gone already: closed by its own button (Qt's window also closes on Esc)
            pass


class SimFollower:
    """A sim env stepped in real time, with the follower interface teleop uses on a `RealArmEnv`
    (`safe_target`, `joint_positions`, `overruns`); `success` is the task's `is_success` after the last step.
    With `end_after_success_steps`, a step reports the episode terminated once the task has been done that
    many steps in a row (a recorded demonstration ends soon after the task is done)."""

    def __init__(self, env: gym.Env, max_relative_target: float | None = None, view: SimView | None = None,
                 pace: bool = True, end_after_success_steps: int | None = None) -> None:  # fmt: skip
        self.env = env
        self.spec_arm = env.unwrapped.spec_arm
        self.max_relative_target = max_relative_target
        self.view = view
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

    def status(self) -> str:
        return "task: done" if self.success else "task: not yet"

    def _seen(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self._q = np.asarray(obs["agent_pos"], dtype=np.float64)
        self.success = bool(info.get("is_success", False))
        if self.view is not None and obs.get("pixels"):
            self.view.show(obs["pixels"], self.status())

    def close(self) -> None:
        try:
            if self.view is not None:
                self.view.close()
        finally:
            self.env.close()


def make_sim_follower(env_id: str, image_size: tuple[int, int], max_relative_target: float | None,
                      episode_steps: int | None = None, view: bool = False,
                      randomization: dict[str, Any] | None = None, dynamics: dict[str, Any] | None = None,
                      end_after_success_steps: int | None = None, keys: KeyHub | None = None,
                      ) -> SimFollower:  # fmt: skip
    """The sim env `env_id` with cameras at `image_size` as a follower; `episode_steps` replaces the id's
    episode length (a recorded episode lasts --episode-time, not the scripted task's length);
    `randomization` and `dynamics` as `twinarm record` takes them (checked dicts); the view's keys go to `keys`."""
    import twinarm  # noqa: F401  (registers the ids)

    kwargs: dict[str, Any] = {"obs_type": "pixels_agent_pos", "image_size": tuple(image_size),
                              "randomization": randomization, "dynamics": dynamics}  # fmt: skip
    if episode_steps is not None:
        kwargs["max_episode_steps"] = episode_steps
    window = SimView(f"twinarm teleop: {env_id}", keys) if view else None  # fails before the env is built
    try:
        env = gym.make(env_id, **kwargs)
    except BaseException:
        if window is not None:
            window.close()
        raise
    return SimFollower(env, max_relative_target, window, end_after_success_steps=end_after_success_steps)
