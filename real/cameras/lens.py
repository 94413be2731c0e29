"""A camera's lens: its calibrated matrix and distortion (a `twinarm fit-camera --calibrate-lens` file), and the
remap that turns its frames into the picture MuJoCo's pinhole renders at a chosen vertical field of view (square
pixels, principal point at the centre, no distortion), so a policy sees real frames as it saw sim ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class Lens:
    """`camera_matrix` (3x3, px) and `dist_coeffs` (OpenCV's k1 k2 p1 p2 k3) of frames of `image_size` (H, W);
    frames are remapped to a pinhole with `target_fovy` degrees vertically."""

    image_size: tuple[int, int]
    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    target_fovy: float
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    #: Where it was read from (errors name it).
    source: str = field(default="lens", compare=False)

    def __post_init__(self) -> None:
        """Refuse a lens that cannot map a frame: an all-zero matrix used to turn every frame black."""
        h, w = self.image_size
        k, where = self.camera_matrix, self.source
        if h <= 0 or w <= 0:
            raise ValueError(f"{where}: image_size {h}x{w} (H x W) must be positive")
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
        if not (np.isfinite(fx) and np.isfinite(fy) and fx > 0 and fy > 0):
            raise ValueError(f"{where}: camera_matrix focal lengths fx {fx:g}, fy {fy:g} must be finite and > 0 "
                             "(calibrate the lens again with `twinarm fit-camera --calibrate-lens`)")  # fmt: skip
        if not (0 <= cx < w and 0 <= cy < h):
            raise ValueError(f"{where}: camera_matrix principal point ({cx:g}, {cy:g}) lies outside its {w}x{h} "
                             "image (calibrate the lens again with `twinarm fit-camera --calibrate-lens`)")  # fmt: skip
        if not np.isfinite(self.dist_coeffs).all():
            raise ValueError(f"{where}: dist_coeffs {self.dist_coeffs.tolist()} must be finite numbers")

    @classmethod
    def load(cls, path: str | Path) -> Lens:
        """Read a lens file; errors name the file and the field at fault."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"lens file {path} does not exist (write one with `twinarm fit-camera "
                                    "--calibrate-lens`)") from None  # fmt: skip
        except json.JSONDecodeError as exc:
            raise ValueError(f"lens file {path} is not JSON: {exc}") from None
        try:
            size = tuple(int(v) for v in d["image_size"])
            k = np.asarray(d["camera_matrix"], dtype=np.float64)
            dist = np.asarray(d["dist_coeffs"], dtype=np.float64).ravel()
            fovy = float(d["target_fovy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"lens file {path}: missing or malformed {exc} (needs image_size, camera_matrix, "
                             "dist_coeffs, target_fovy)") from None  # fmt: skip
        if len(size) != 2 or k.shape != (3, 3) or dist.size not in (4, 5, 8) or not 0 < fovy < 180:
            raise ValueError(f"lens file {path}: image_size [H, W], a 3x3 camera_matrix, 4/5/8 dist_coeffs and a "
                             "target_fovy in (0, 180) degrees expected")  # fmt: skip
        info = {k: v for k, v in d.items() if k not in ("image_size", "camera_matrix", "dist_coeffs", "target_fovy")}
        return cls(size, k, dist, fovy, info, source=f"lens file {path}")

    def save(self, path: Path) -> None:
        data = {"image_size": list(self.image_size), "camera_matrix": self.camera_matrix.tolist(),
                "dist_coeffs": self.dist_coeffs.tolist(), "target_fovy": self.target_fovy, **self.info}  # fmt: skip
        path.write_text(json.dumps(data, indent=2) + "\n")

    @property
    def fovy(self) -> float:
        """The lens's own vertical field of view at its focal length (degrees)."""
        return math.degrees(2.0 * math.atan((self.image_size[0] / 2.0) / self.camera_matrix[1, 1]))

    def target_matrix(self, size: tuple[int, int]) -> np.ndarray:
        """The pinhole frames of `size` (H, W) are remapped to."""
        h, w = size
        f = (h / 2.0) / math.tan(math.radians(self.target_fovy) / 2.0)
        return np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])

    def target_intrinsics(self, size: tuple[int, int] | None = None) -> dict[str, float]:
        """That pinhole as a camera reports its intrinsics (fx, fy, ppx, ppy, width, height)."""
        h, w = size or self.image_size
        k = self.target_matrix((h, w))
        return {"fx": k[0, 0], "fy": k[1, 1], "ppx": k[0, 2], "ppy": k[1, 2], "width": w, "height": h}

    def maps(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Remap tables for frames of `size` (H, W): the calibration's matrix scaled to that size (a camera run
        at another resolution of the same sensor), the output the target pinhole at the same size."""
        h, w = size
        k = self.camera_matrix.copy()
        k[0] *= w / self.image_size[1]
        k[1] *= h / self.image_size[0]
        return cv2.initUndistortRectifyMap(k, self.dist_coeffs, None, self.target_matrix(size), (w, h), cv2.CV_16SC2)


class Undistorter:
    """Applies a lens to frames of the size it was calibrated on, or of another resolution of the same aspect ratio
    (the sensor binned or scaled: the matrix scales with it); another aspect ratio is another crop of the sensor,
    which would come out stretched or zoomed: it is refused, naming both sizes."""

    def __init__(self, lens: Lens | str | Path) -> None:
        self.lens = lens if isinstance(lens, Lens) else Lens.load(lens)
        self._maps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        size = frame.shape[:2]
        h, w = self.lens.image_size
        if size not in self._maps and abs(size[1] / size[0] - w / h) > 0.01 * (w / h):
            raise ValueError(f"{self.lens.source} is for frames of {w}x{h}, these are {size[1]}x{size[0]}, another aspect ratio: calibrate "
                             "the lens on this camera's frames (`twinarm fit-camera --calibrate-lens`)")  # fmt: skip
        if size not in self._maps:
            self._maps[size] = self.lens.maps(size)
        m1, m2 = self._maps[size]
        return cv2.remap(frame, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
