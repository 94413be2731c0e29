"""Intel RealSense camera via pyrealsense2: a device by serial number, or a recording (.bag/.db3) played back.

Colour frames are RGB uint8; with `use_depth` the newest aligned depth frame (uint16, millimetres as the
device reports) is kept too and returned by `read_depth()`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from twinarm.real.cameras.base import Camera, CameraError, register_camera


def _rs():  # noqa: ANN202 - module
    try:
        import pyrealsense2 as rs
    except ImportError as exc:  # libusb-1.0 missing is the usual cause
        raise CameraError(f"pyrealsense2 cannot be imported ({exc}); install it and libusb-1.0-0") from None
    return rs


@register_camera("realsense")
class RealSenseCamera(Camera):
    """`serial_number` picks a device; `playback_file` plays a recording instead (`repeat` loops it)."""

    def __init__(self, serial_number: str | None = None, playback_file: str | Path | None = None,
                 width: int | None = 640, height: int | None = 480, fps: int | None = 30,
                 use_depth: bool = False, rotation: int = 0, repeat: bool = True, real_time: bool = True,
                 timeout_ms: int = 2000, name: str = "camera", lens: str | Path | None = None) -> None:
        super().__init__(width, height, fps, rotation, name, lens)
        self.serial_number = serial_number
        self.playback_file = None if playback_file is None else Path(playback_file)
        self.use_depth, self.repeat, self.real_time, self.timeout_ms = use_depth, repeat, real_time, timeout_ms
        self._pipeline = None
        self._depth: np.ndarray | None = None
        self._color_intrinsics: dict[str, float] | None = None

    def _open(self) -> None:
        rs = _rs()
        cfg = rs.config()
        if self.playback_file is not None:
            if not self.playback_file.is_file():
                raise CameraError(f"camera {self.name!r}: recording {self.playback_file} not found")
            cfg.enable_device_from_file(str(self.playback_file), repeat_playback=self.repeat)
            cfg.enable_stream(rs.stream.color)
            if self.use_depth:
                cfg.enable_stream(rs.stream.depth)
        else:
            self._check_present(rs)
            if self.serial_number:
                cfg.enable_device(str(self.serial_number))
            cfg.enable_stream(rs.stream.color, self.width or 640, self.height or 480, rs.format.rgb8, self.fps or 30)
            if self.use_depth:
                cfg.enable_stream(rs.stream.depth, self.width or 640, self.height or 480, rs.format.z16,
                                  self.fps or 30)
        pipeline = rs.pipeline()
        try:
            if self.playback_file is not None:
                # Set on the resolved device before streaming (start() reuses it): switched after start(), the
                # playback has already run in real time and dropped the frames nobody read yet (on a busy
                # machine, all but the last of a short recording).
                device = cfg.resolve(rs.pipeline_wrapper(pipeline)).get_device()
                device.as_playback().set_real_time(self.real_time)
            pipeline.start(cfg)
        except RuntimeError as exc:
            raise CameraError(f"camera {self.name!r}: cannot start RealSense "
                              f"{self.serial_number or self.playback_file or '(any)'}: {exc}") from None
        self._align = rs.align(rs.stream.color) if self.use_depth else None
        self._pipeline = pipeline
        k = pipeline.get_active_profile().get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self._color_intrinsics = {"fx": k.fx, "fy": k.fy, "ppx": k.ppx, "ppy": k.ppy, "width": k.width, "height": k.height}

    def _check_present(self, rs) -> None:  # noqa: ANN001 - module
        """Fail at once when the device is not connected: librealsense would wait ~15 s before saying so."""
        try:
            serials = [d["serial_number"] for d in find_realsense_cameras(rs)]
        except RuntimeError:  # no backend to list devices with: leave it to pipeline.start()
            return
        if self.serial_number and str(self.serial_number) not in serials:
            present = f"the ones connected: {', '.join(serials)}" if serials else "none is connected"
            raise CameraError(f"camera {self.name!r}: no RealSense with serial {self.serial_number} ({present}); "
                              "`twinarm find-cameras` lists them")  # fmt: skip
        if not serials:
            raise CameraError(f"camera {self.name!r}: no RealSense is connected; `twinarm find-cameras` lists "
                              "the cameras there are")  # fmt: skip

    def _grab(self) -> np.ndarray | None:
        assert self._pipeline is not None
        ok, frames = self._pipeline.try_wait_for_frames(self.timeout_ms)
        if not ok:
            if self.playback_file is not None and not self.repeat:
                return None
            raise CameraError(f"camera {self.name!r}: no RealSense frame within {self.timeout_ms} ms")
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return self._grab()
        image = np.asanyarray(color.get_data()).copy()
        fmt = str(color.get_profile().format())
        if fmt.endswith("bgr8"):
            image = image[..., ::-1].copy()
        if self.use_depth:
            depth = frames.get_depth_frame()
            if depth:
                self._depth = np.asanyarray(depth.get_data()).copy()
        return image

    def _intrinsics(self) -> dict[str, float] | None:
        return self._color_intrinsics

    def read_depth(self) -> np.ndarray:
        """The newest depth frame (uint16), aligned to colour."""
        if not self.use_depth:
            raise CameraError(f"camera {self.name!r} was opened without use_depth=True")
        if self._depth is None:
            raise CameraError(f"camera {self.name!r}: no depth frame yet")
        return self._depth

    def _close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
            self._pipeline = None


def find_realsense_cameras(rs=None) -> list[dict[str, str]]:  # noqa: ANN001 - module
    """Connected RealSense devices: name and serial number."""
    rs = rs or _rs()
    out = []
    for dev in rs.context().query_devices():
        out.append({"name": dev.get_info(rs.camera_info.name), "serial_number": dev.get_info(rs.camera_info.serial_number)})
    return out
