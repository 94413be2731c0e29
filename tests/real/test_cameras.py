"""Cameras on real media: PyAV-encoded video files through OpenCV, a RealSense recording played back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from real_media import make_realsense_recording, make_video

from twinarm.real.cameras import Camera, make_camera
from twinarm.real.cameras.base import CameraError
from twinarm.real.errors import NotConnectedError


def _index(frame: np.ndarray) -> int:
    """Recover the frame number encoded in the red channel by `frame_pattern` (lossy-coding tolerant)."""
    red = float(np.median(frame[:, :, 0][:, -40:]))
    return int(round(red / 20.0))


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_opencv_reads_pyav_video_in_order_and_loops(tmp_path: Path, codec: str) -> None:
    path = make_video(tmp_path / f"v_{codec}.mp4", n_frames=12, height=120, width=160, fps=60, codec=codec)
    cam = make_camera({"type": "opencv", "index_or_path": str(path)}, name="front")
    with cam:
        assert isinstance(cam, Camera) and cam.fps == 60
        frames = [cam.read(timeout_s=2.0) for _ in range(15)]  # 12 + 3: loops to the start
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    idx = [_index(f) for f in frames]
    # connect() consumed frame 0; then 1..11, then the file loops to 0, 1, 2, 3
    assert idx == [*range(1, 12), 0, 1, 2, 3]
    # RGB order: frame_pattern puts green at 128 everywhere but the white bar
    assert abs(float(np.median(frames[0][..., 1])) - 128) < 6


def test_read_latest_resize_rotation_and_errors(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.mp4", n_frames=5, height=120, width=160)
    cam = make_camera({"type": "opencv", "index_or_path": str(path), "width": 80, "height": 60, "rotation": 90})
    with pytest.raises(NotConnectedError):
        cam.read()
    with cam:
        a = cam.read_latest()
        b = cam.read_latest()
        assert a.shape == (80, 60, 3) and b.shape == a.shape  # resized to 60x80, then rotated
    with pytest.raises(CameraError):
        make_camera({"type": "opencv", "index_or_path": str(tmp_path / "missing.mp4")}).connect()
    finite = make_camera({"type": "opencv", "index_or_path": str(path), "loop": False})
    with finite:
        with pytest.raises(CameraError, match="end of stream"):
            for _ in range(10):
                finite.read(timeout_s=2.0)


def test_realsense_recording_playback_color_and_depth(tmp_path: Path) -> None:
    path = make_realsense_recording(tmp_path / "rec.db3", n_frames=20, height=120, width=160)
    cam = make_camera({"type": "realsense", "playback_file": str(path), "use_depth": True, "repeat": False,
                       "real_time": False}, name="wrist")
    frames, depths = [], []
    with cam:
        frames.append(cam.read_latest())
        depths.append(int(cam.read_depth()[0, 0]))
        while True:
            try:
                frames.append(cam.read(timeout_s=3.0))
                depths.append(int(cam.read_depth()[0, 0]))
            except CameraError:
                break
        grabbed = cam.frames_read
    # Not in real time, the camera's reader gets every frame of the recording, even when it starts late on a
    # busy machine; read() returns the newest, so this loop may skip some (all but the last, when the reader is
    # through the recording before the first read: seen once under CI load): order and content are checked below.
    assert grabbed == 20 and len(frames) >= 1
    assert all(f.shape == (120, 160, 3) for f in frames)
    assert depths[-1] == 1000 + 19 and frames[-1][0, 0, 0] == (19 * 20) % 256  # colour and depth of frame 19
    assert depths == sorted(depths)
    with pytest.raises(CameraError, match="not found"):
        make_camera({"type": "realsense", "playback_file": str(tmp_path / "none.db3")}).connect()


def test_unknown_camera_type() -> None:
    with pytest.raises(KeyError, match="unknown camera type"):
        make_camera({"type": "webcam9000"})
