"""`twinarm teleop --view`: the follower's cameras in a window while teleoperating, simulated arm or real.

Keys typed in the window count as typed in the terminal (keyboard teleop, the recording keys), so with a
simulated arm the window alone will do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from twinarm.real.terminal_keys import KeyHub

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


class FollowerView:
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


class Viewed:
    """A follower (a `RealArmEnv` or a `SimFollower`) whose every observation is shown in `view`, with
    `status()` on it; everything else is the follower's."""

    def __init__(self, follower: Any, view: FollowerView, status: Callable[[], str] | None = None) -> None:
        self.follower, self.view, self._status = follower, view, status

    def __getattr__(self, name: str) -> Any:  # safe_target, joint_positions, on_reset, overruns, ...
        return getattr(self.follower, name)

    def reset(self, **kwargs: Any) -> tuple[dict, dict]:
        obs, info = self.follower.reset(**kwargs)
        self._show(obs)
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        out = self.follower.step(action)
        self._show(out[0])
        return out

    def _show(self, obs: dict[str, Any]) -> None:
        pixels = obs.get("pixels")
        if not pixels and hasattr(self.follower, "render"):  # state observations: the follower draws a camera
            frame = self.follower.render()
            pixels = {"render": frame} if frame is not None else None
        if pixels:
            self.view.show(pixels, self._status() if self._status is not None else "")

    def close(self) -> None:
        try:
            self.view.close()
        finally:
            self.follower.close()
