"""Depth maps in LeRobot datasets, read the way LeRobot 0.6 reads them: float32 (1, H, W) millimetres.

A depth camera is a feature flagged `is_depth_map` in its info. As a video it holds 12-bit codes (HEVC
`gray12le`, lossless) of depth quantized between `video.depth_min` and `video.depth_max` metres, on a log
scale shifted by `video.shift` metres by default; as images (TIFF in the parquet rows) it holds depth in
`info.depth_unit` ("mm" from integer frames, "m" from float frames). Stats are stored in the recorded unit.
The arithmetic follows LeRobot's `dequantize_depth` step for step in float32 torch ops, so values match its
loader exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

#: LeRobot's quantization defaults (metres), used where a depth video's info leaves one out.
DEFAULT_DEPTH_MIN = 0.01
DEFAULT_DEPTH_MAX = 10.0
DEFAULT_DEPTH_SHIFT = 3.5
DEFAULT_DEPTH_USE_LOG = True
#: The largest 12-bit code.
DEPTH_QMAX = (1 << 12) - 1
#: The unit depth comes out in (LeRobot's default `depth_output_unit`).
OUTPUT_UNIT = "mm"
MM_PER_METRE = 1000.0
_UINT16_MAX = 65535.0


@dataclass(frozen=True)
class DepthFormat:
    """How one depth feature is stored."""

    video: bool
    unit: str | None  # recorded unit, "m" or "mm"; None: not recorded (images then come out as stored)
    depth_min: float = DEFAULT_DEPTH_MIN
    depth_max: float = DEFAULT_DEPTH_MAX
    shift: float = DEFAULT_DEPTH_SHIFT
    use_log: bool = DEFAULT_DEPTH_USE_LOG

    def to_output(self, frames: np.ndarray) -> np.ndarray:
        """Decoded frames (N, H, W, 1), video codes or stored image values, as float32 (N, 1, H, W) mm."""
        import torch  # here, not at import: the dataset's metadata (`dataset info`) needs no torch

        x = torch.from_numpy(np.ascontiguousarray(frames[..., 0]))
        out = self._codes_to_mm(x) if self.video else self._image_to_mm(x)
        return out.unsqueeze(1).numpy()

    def _codes_to_mm(self, codes: torch.Tensor) -> torch.Tensor:
        import torch

        if self.use_log:
            if self.depth_min + self.shift <= 0:
                raise ValueError(f"depth_min + shift must be positive for log quantization, got {self.depth_min} + {self.shift}")
            lo, hi = math.log(self.depth_min + self.shift), math.log(self.depth_max + self.shift)
        else:
            lo, hi = self.depth_min, self.depth_max
        buf = codes.to(torch.float32).mul_((hi - lo) / DEPTH_QMAX).add_(lo)
        if self.use_log:
            buf.exp_().sub_(self.shift)
        buf.clamp_(self.depth_min, self.depth_max)
        return buf.mul_(MM_PER_METRE).round_().clamp_(0.0, _UINT16_MAX)

    def _image_to_mm(self, img: torch.Tensor) -> torch.Tensor:
        import torch

        out = img.to(torch.float32)
        return out * MM_PER_METRE if self.unit == "m" else out

    def stats_to_output(self, stats: dict[str, Any]) -> dict[str, Any]:
        """A feature's stats moved from the recorded unit to millimetres (`count` unchanged)."""
        if self.unit != "m":
            return stats
        return {k: v if k == "count" else np.asarray(v) * MM_PER_METRE for k, v in stats.items()}


def depth_format(feature: dict[str, Any]) -> DepthFormat:
    """The storage of a depth feature from its info.json entry (missing quantization keys: LeRobot's defaults)."""
    info = feature.get("info") or {}
    unit = info.get("depth_unit")
    if unit not in (None, "m", "mm"):
        raise ValueError(f"depth_unit must be 'm' or 'mm', got {unit!r}")
    if feature["dtype"] != "video":
        return DepthFormat(video=False, unit=unit)

    def get(name: str, default: Any) -> Any:
        value = info.get(f"video.{name}")
        return default if value is None else value

    return DepthFormat(
        video=True,
        unit=unit,
        depth_min=float(get("depth_min", DEFAULT_DEPTH_MIN)),
        depth_max=float(get("depth_max", DEFAULT_DEPTH_MAX)),
        shift=float(get("shift", DEFAULT_DEPTH_SHIFT)),
        use_log=bool(get("use_log", DEFAULT_DEPTH_USE_LOG)),
    )
