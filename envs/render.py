"""Fast offscreen camera rendering: one reusable mujoco.Renderer per camera, costly passes off.

Shadows, reflections and multisampling dominate software-GL cost (see the research notes), so they
are off by default; `high_quality=True` turns them back on for pretty videos.
"""

from __future__ import annotations

import atexit
import os
import weakref

import mujoco
import numpy as np

from twinarm.spec import CameraSpec


def ensure_gl_backend() -> None:
    """Default to headless EGL when no GL backend is chosen (GLFW fails without a display)."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


_LIVE: weakref.WeakSet[CameraRenderer] = weakref.WeakSet()
_ATEXIT_REGISTERED = [False]


def _close_live_renderers() -> None:
    # GL contexts freed by __del__ during interpreter shutdown raise EGL errors; free them first.
    for r in list(_LIVE):
        r.close()


def _register_atexit_once() -> None:
    # Registered after the first GL context exists, i.e. after MuJoCo's EGL module registered its own
    # display teardown, so (atexit runs last-in first-out) contexts are freed before the display goes.
    if not _ATEXIT_REGISTERED[0]:
        atexit.register(_close_live_renderers)
        _ATEXIT_REGISTERED[0] = True


class CameraRenderer:
    """Renders the named model cameras to uint8 HWC images, reusing one GL context per camera."""

    def __init__(self, model: mujoco.MjModel, cameras: tuple[CameraSpec, ...], high_quality: bool = False):
        ensure_gl_backend()
        self.cameras = cameras
        for cam in cameras:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam.name) < 0:
                raise ValueError(f"model has no camera named {cam.name!r} (cameras must be named as in the arm spec)")
        vis = model.vis
        vis.global_.offwidth = max(vis.global_.offwidth, *(c.width for c in cameras))
        vis.global_.offheight = max(vis.global_.offheight, *(c.height for c in cameras))
        if not high_quality:
            vis.quality.offsamples = 0
        self._renderers: dict[str, mujoco.Renderer] = {}
        for cam in cameras:
            r = mujoco.Renderer(model, cam.height, cam.width)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = high_quality
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = high_quality
            self._renderers[cam.name] = r
        _LIVE.add(self)
        _register_atexit_once()

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """Fresh images of every camera for the current state."""
        out = {}
        for name, r in self._renderers.items():
            r.update_scene(data, camera=name)
            out[name] = r.render()
        return out

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
