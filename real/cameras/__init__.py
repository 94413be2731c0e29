"""Cameras behind one interface: OpenCV (device index or video file) and Intel RealSense (device or recording)."""

from twinarm.real.cameras.base import CAMERAS, Camera, make_camera

__all__ = ["CAMERAS", "Camera", "make_camera"]
