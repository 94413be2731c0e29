"""The camera interface and its registry; a background thread keeps the newest frame of every camera.

`read()` waits for a frame newer than the last one returned, `read_latest()` returns the newest frame
at once (possibly repeated), which is what a control loop wants. Frames are RGB uint8 (H, W, 3).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from twinarm.real.cameras.lens import Lens, Undistorter
from twinarm.real.errors import NotConnectedError, RealArmError

_ROTATIONS = {0: None, 90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, -90: cv2.ROTATE_90_COUNTERCLOCKWISE,
              270: cv2.ROTATE_90_COUNTERCLOCKWISE}


class CameraError(RealArmError):
    """A camera cannot be opened or stopped delivering frames."""


class Camera(ABC):
    """A frame source with a threaded latest-frame reader. Subclasses implement `_open`, `_grab`, `_close`."""

    def __init__(self, width: int | None = None, height: int | None = None, fps: int | None = None,
                 rotation: int = 0, name: str = "camera", lens: str | Path | Lens | None = None) -> None:
        if rotation not in _ROTATIONS:
            raise ValueError(f"rotation must be one of {sorted(_ROTATIONS)}, got {rotation}")
        self.width, self.height, self.fps, self.rotation, self.name = width, height, fps, rotation, name
        try:  # a lens file (`fit-camera --calibrate-lens`): frames come out as MuJoCo's pinhole renders them
            self._undistort = None if lens is None else Undistorter(lens)
        except (FileNotFoundError, ValueError) as exc:
            raise CameraError(f"camera {name!r}: {exc}") from None
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._count = 0
        self._seen = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frame_time = 0.0

    # ----- subclass hooks ------------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _grab(self) -> np.ndarray | None:
        """Block until the next RGB frame; None at the end of a finite source."""

    @abstractmethod
    def _close(self) -> None: ...

    def _intrinsics(self) -> dict[str, float] | None:
        """The sensor's pinhole intrinsics (fx, fy, ppx, ppy in pixels; width, height), where it reports them."""
        return None

    def intrinsics(self) -> dict[str, float] | None:
        """The delivered frames' intrinsics (after `rotation`), None where the device reports none (a webcam);
        read once connected."""
        if self._undistort is not None:  # the pinhole its frames are remapped to
            return self._undistort.lens.target_intrinsics()
        k = self._intrinsics()
        if k is None or self.rotation == 0:
            return k
        w, h = k["width"], k["height"]
        if self.rotation == 180:
            return {**k, "ppx": w - 1 - k["ppx"], "ppy": h - 1 - k["ppy"]}
        # A quarter turn swaps the axes: clockwise, pixel (x, y) lands at (h - 1 - y, x).
        ppx, ppy = (h - 1 - k["ppy"], k["ppx"]) if self.rotation == 90 else (k["ppy"], w - 1 - k["ppx"])
        return {"fx": k["fy"], "fy": k["fx"], "ppx": ppx, "ppy": ppy, "width": h, "height": w}

    # ----- lifecycle -----------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    def connect(self, timeout_s: float = 5.0) -> None:
        """Open the source, start the reader thread and wait for a first frame."""
        if self._thread is not None:
            return
        self._open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        try:
            self.read(timeout_s=timeout_s)
        except Exception:
            self.disconnect()
            raise

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._close()

    def __enter__(self) -> Camera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._grab()
                if frame is not None:
                    frame = self._postprocess(frame)
            except BaseException as exc:  # surfaced to the next read
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            if frame is None:
                with self._cond:
                    self._error = CameraError(f"camera {self.name!r}: end of stream")
                    self._cond.notify_all()
                return
            with self._cond:
                self._frame = frame
                self._count += 1
                self.frame_time = time.perf_counter()
                self._cond.notify_all()

    def _postprocess(self, frame: np.ndarray) -> np.ndarray:
        rot = _ROTATIONS[self.rotation]
        if rot is not None:
            frame = cv2.rotate(frame, rot)
        if self._undistort is not None:  # calibrated on the frames as delivered, i.e. rotated
            try:
                frame = self._undistort(frame)
            except ValueError as exc:  # a lens for another frame size: refused at the first frame
                raise CameraError(f"camera {self.name!r}: {exc}") from None
        return frame

    # ----- reads ---------------------------------------------------------------------------------
    def read(self, timeout_s: float = 1.0) -> np.ndarray:
        """The next frame newer than the last one returned (waits up to `timeout_s`)."""
        if self._thread is None:
            raise NotConnectedError(f"camera {self.name!r} is not connected")
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._count <= self._seen:
                if self._error is not None:
                    raise CameraError(str(self._error)) from self._error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"camera {self.name!r}: no new frame within {timeout_s:.2f} s")
                self._cond.wait(left)
            self._seen = self._count
            assert self._frame is not None
            return self._frame

    def read_latest(self, max_age_s: float | None = None) -> np.ndarray:
        """The newest frame at once (may be one already returned). Raises CameraError once the reader has
        stopped (end of stream, device unplugged) or when the newest frame is older than `max_age_s`, so a
        dead camera is never served as a frozen picture."""
        with self._cond:
            if self._error is not None:
                raise CameraError(str(self._error)) from self._error
            if self._frame is None:
                raise NotConnectedError(f"camera {self.name!r} has no frame yet; connect() first")
            age = time.perf_counter() - self.frame_time
            if max_age_s is not None and age > max_age_s:
                raise CameraError(f"camera {self.name!r}: no new frame for {age:.2f} s (limit {max_age_s:g} s); "
                                  "is it still connected?")
            self._seen = self._count
            return self._frame

    @property
    def frames_read(self) -> int:
        return self._count


CAMERAS: dict[str, type[Camera]] = {}


def register_camera(kind: str):  # noqa: ANN201 - decorator
    def deco(cls: type[Camera]) -> type[Camera]:
        CAMERAS[kind] = cls
        return cls

    return deco


def make_camera(config: dict[str, Any] | Camera, name: str = "camera") -> Camera:
    """A camera from `{"type": "opencv"|"realsense", ...kwargs}` (or an already built Camera)."""
    if isinstance(config, Camera):
        return config
    from twinarm.real.cameras import opencv_camera, realsense_camera  # noqa: F401 - fill the registry

    cfg = dict(config)
    kind = cfg.pop("type", "opencv")
    if kind not in CAMERAS:
        raise KeyError(f"unknown camera type {kind!r}; known: {sorted(CAMERAS)}")
    cfg.setdefault("name", name)
    return CAMERAS[kind](**cfg)
