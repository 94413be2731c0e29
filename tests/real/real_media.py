"""Test media made here: video files encoded with PyAV and a RealSense recording from a software device."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np


def frame_pattern(i: int, height: int, width: int) -> np.ndarray:
    """Frame i: a flat colour whose red channel encodes i (survives lossy coding), plus a moving bar."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[..., 0] = (i * 20) % 256
    img[..., 1] = 128
    img[..., 2] = 255 - (i * 20) % 256
    x = (i * 8) % width
    img[:, x: x + 8] = 255
    return img


def make_video(path: Path, n_frames: int = 30, height: int = 480, width: int = 640, fps: int = 30,
               codec: str = "libx264") -> Path:
    """Encode `n_frames` of `frame_pattern` into `path` (mp4, yuv420p)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, height, width), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_realsense_recording(path: Path, n_frames: int = 30, height: int = 480, width: int = 640,
                             fps: int = 30, frames: Callable[[int], np.ndarray] | None = None,
                             focal: float = 500.0) -> Path:  # fmt: skip
    """Record colour (rgb8; `frames(i)`, by default `frame_pattern`) + depth (z16) frames from a pyrealsense2
    software device whose pinhole has `focal` px and a centred principal point into `path` (.db3/.bag)."""
    import pyrealsense2 as rs

    frames = frames or (lambda i: frame_pattern(i, height, width))
    dev = rs.software_device()
    sensor = dev.add_sensor("camera")
    intr = rs.intrinsics()
    intr.width, intr.height, intr.ppx, intr.ppy = width, height, (width - 1) / 2, (height - 1) / 2
    intr.fx = intr.fy = focal
    intr.model = rs.distortion.none

    def stream(kind, fmt, bpp, index, uid):  # noqa: ANN001, ANN202
        vs = rs.video_stream()
        vs.type, vs.fmt, vs.bpp, vs.index, vs.uid = kind, fmt, bpp, index, uid
        vs.width, vs.height, vs.fps, vs.intrinsics = width, height, fps, intr
        return sensor.add_video_stream(vs)

    color = stream(rs.stream.color, rs.format.rgb8, 3, 0, 0)
    depth = stream(rs.stream.depth, rs.format.z16, 2, 0, 1)
    sensor.add_read_only_option(rs.option.depth_units, 0.001)
    recorder = rs.recorder(str(path), dev)
    sensor.open([color, depth])
    sensor.start(lambda f: None)
    for i in range(n_frames):
        for profile, pixels, bpp in (
            (color, frames(i), 3),
            (depth, np.full((height, width), 1000 + i, dtype=np.uint16), 2),
        ):
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = pixels.tobytes(), bpp, width * bpp
            f.timestamp, f.domain, f.frame_number = i * 1000.0 / fps, rs.timestamp_domain.system_time, i
            f.profile = profile.as_video_stream_profile()
            sensor.on_video_frame(f)
    sensor.stop()
    sensor.close()
    del recorder
    return path
