"""Fast offscreen camera rendering: one reusable mujoco.Renderer per image size (cameras of one size share its GL
context, so the model's meshes are uploaded once, not once per camera), costly passes off.

Shadows, reflections and multisampling dominate software-GL cost (see the research notes), so they
are off by default (the scenes set `<quality shadowsize="0" offsamples="0"/>`); `high_quality=True` turns them back
on for pretty videos: shadows and reflections as scene flags, and MuJoCo's default shadow map size and number of
multisamples (`HQ_SHADOWSIZE`, `HQ_OFFSAMPLES`) for this renderer's GL contexts, which read them when made.
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


#: What `high_quality=True` gives a GL context when the model asks for less: MuJoCo's own defaults (its scenes
#: turn them off with `<quality shadowsize="0" offsamples="0"/>`, which leaves no shadow map and no multisampling).
HQ_SHADOWSIZE = 4096
HQ_OFFSAMPLES = 4

_LIVE: weakref.WeakSet[CameraRenderer] = weakref.WeakSet()
_ATEXIT_REGISTERED = [False]
#: [this process made an EGL context, this process is a fork of one that had]: EGL's driver threads do not
#: survive fork(), so a forked child's first context waits on them for ever.
_EGL_STATE = [False, False]


def _after_fork_in_child() -> None:
    _EGL_STATE[1] = _EGL_STATE[1] or _EGL_STATE[0]


os.register_at_fork(after_in_child=_after_fork_in_child)


class ForkedAfterEGLError(RuntimeError):
    """A renderer asked for in a process forked from one that had rendered with EGL (it would hang for ever)."""


def _check_not_forked_after_egl() -> None:
    if os.environ.get("MUJOCO_GL") != "egl":
        return
    if _EGL_STATE[1]:
        raise ForkedAfterEGLError(
            "this process was forked from one that had rendered with EGL, whose driver threads do not survive "
            "fork(): rendering here would hang for ever. Start worker processes with 'forkserver' or 'spawn', "
            "e.g. gym.make_vec(id, vectorization_mode='async', vector_kwargs={'context': 'forkserver'}) "
            "(twinarm eval and evaluate() do), or create the vector env before rendering in the parent"
        )
    _EGL_STATE[0] = True


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
    """Renders the named model cameras to uint8 HWC images, reusing one GL context per image size."""

    def __init__(self, model: mujoco.MjModel, cameras: tuple[CameraSpec, ...], high_quality: bool = False):
        ensure_gl_backend()
        _check_not_forked_after_egl()
        self.cameras = cameras
        for cam in cameras:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam.name) < 0:
                raise ValueError(f"model has no camera named {cam.name!r} (cameras must be named as in the arm spec)")
        vis = model.vis
        vis.global_.offwidth = max(vis.global_.offwidth, *(c.width for c in cameras))
        vis.global_.offheight = max(vis.global_.offheight, *(c.height for c in cameras))
        quality = vis.quality
        model_quality = (quality.shadowsize, quality.offsamples)
        if high_quality:
            # Read by each MjrContext when it is made (the shadow map's size, the offscreen buffer's samples) and
            # never again, so they are set for this renderer's contexts only and the model gets its own back below:
            # another renderer of the same model (a default one) does not inherit them.
            quality.shadowsize = max(quality.shadowsize, HQ_SHADOWSIZE)
            quality.offsamples = max(quality.offsamples, HQ_OFFSAMPLES)
        else:
            quality.offsamples = 0
        # A context per size: creating one uploads every mesh and texture (0.25 s for an SO-101 on software GL).
        by_size: dict[tuple[int, int], mujoco.Renderer] = {}
        self._renderers: dict[str, mujoco.Renderer] = {}
        try:
            for cam in cameras:
                size = (cam.height, cam.width)
                if size not in by_size:
                    r = mujoco.Renderer(model, cam.height, cam.width)
                    r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = high_quality
                    r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = high_quality
                    by_size[size] = r
                self._renderers[cam.name] = by_size[size]
        finally:
            if high_quality:
                quality.shadowsize, quality.offsamples = model_quality
        _LIVE.add(self)
        _register_atexit_once()

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """Fresh images of every camera for the current state (a new array each, so a shared context is safe)."""
        out = {}
        for name, r in self._renderers.items():
            r.update_scene(data, camera=name)
            out[name] = r.render()
        return out

    def close(self) -> None:
        for r in {id(r): r for r in self._renderers.values()}.values():
            r.close()
        self._renderers.clear()
