"""OpenCV camera: a device index (/dev/videoN) or a video file, which is paced to its fps and looped."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

from twinarm.real.cameras.base import Camera, CameraError, register_camera


@register_camera("opencv")
class OpenCVCamera(Camera):
    """`index_or_path`: an int device index, a /dev/video path or a video file (files loop when `loop`)."""

    def __init__(self, index_or_path: int | str | Path = 0, width: int | None = None, height: int | None = None,
                 fps: int | None = None, rotation: int = 0, color_mode: str = "rgb", loop: bool = True,
                 fourcc: str | None = None, name: str = "camera", lens: str | Path | None = None) -> None:
        super().__init__(width, height, fps, rotation, name, lens)
        if color_mode not in ("rgb", "bgr"):
            raise ValueError(f"color_mode must be 'rgb' or 'bgr', got {color_mode!r}")
        self.source = index_or_path if isinstance(index_or_path, int) else str(index_or_path)
        self.is_file = isinstance(self.source, str) and Path(self.source).is_file()
        self.color_mode, self.loop, self.fourcc = color_mode, loop, fourcc
        self._cap: cv2.VideoCapture | None = None
        self._next_t = 0.0

    def _open(self) -> None:
        if isinstance(self.source, str) and not self.is_file and not self.source.startswith("/dev/"):
            raise CameraError(f"camera {self.name!r}: {self.source!r} is neither a device nor a video file")
        device = _video_device(self.source)
        if device is not None and not device.exists():
            index = f" (device index {self.source})" if isinstance(self.source, int) else ""
            raise CameraError(f"camera {self.name!r}: there is no {device}{index}; `twinarm find-cameras` lists the "
                              "cameras that open")
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"camera {self.name!r}: cannot open {self.source!r}; `twinarm find-cameras` lists "
                              "the cameras that open")
        if not self.is_file:
            if self.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                                (cv2.CAP_PROP_FPS, self.fps)):
                if value:
                    cap.set(prop, value)
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = self.fps or (int(round(file_fps)) if file_fps and file_fps > 0 else 30)
        self._cap = cap
        self._next_t = time.perf_counter()

    def _grab(self) -> np.ndarray | None:
        assert self._cap is not None
        ok, frame = self._cap.read()
        if not ok and self.is_file and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok:
            if self.is_file:
                return None
            raise CameraError(f"camera {self.name!r}: read from {self.source!r} failed")
        if self.is_file:  # a file plays at its frame rate, like a live camera
            self._next_t += 1.0 / self.fps
            delay = self._next_t - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            else:
                self._next_t = time.perf_counter()
        if self.width and self.height and frame.shape[:2] != (self.height, self.width):
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if self.color_mode == "rgb" else frame

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _video_device(source: int | str) -> Path | None:
    """The /dev/videoN a Linux device index (or /dev path) opens, None elsewhere (other systems number cameras
    their own way; a file is checked as a file)."""
    if isinstance(source, str):
        return Path(source) if source.startswith("/dev/") else None
    return Path(f"/dev/video{source}") if sys.platform.startswith("linux") else None


def find_opencv_cameras(max_index: int = 10) -> list[int]:
    """Device indices that open (`twinarm find-cameras`)."""
    found = []
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # an absent index is the answer, not news
    try:
        for i in range(max_index):
            cap = cv2.VideoCapture(i)
            if cap.isOpened():
                found.append(i)
            cap.release()
    finally:
        cv2.utils.logging.setLogLevel(level)
    return found
