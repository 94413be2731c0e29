"""Feature normalization from dataset statistics (mean/std or min/max), saved inside every checkpoint.

Stats are flat `"<feature>.<stat>"` tensors (LeRobot's layout), held as buffers so they follow the
policy across devices, and written to their own `normalization.safetensors` beside the weights.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum

import numpy as np
import torch
from torch import Tensor, nn

#: Guards against zero spread (constant features such as an unused gripper).
EPS = 1e-8


def floor_spread(stats: Mapping[str, Mapping[str, object]], min_std: float, keys: Collection[str],
                 ) -> tuple[dict[str, dict[str, object]], dict[str, str]]:  # fmt: skip
    """Stats where every dimension of the input features `keys` whose spread is below `min_std` (its std, or half
    its min-max range, in the feature's own units) is centred but not scaled: std 1, or a range of mean +- 1.
    The demonstrations never varied it (a cube that never moves, a joint never used), so the policy learned
    nothing from it, and dividing by a near-zero spread would turn any deviation at deployment (a cube 2 mm
    smaller) into a huge input. Outputs keep their spread: un-normalized by it, a never-varied action comes out
    as its constant whatever the network predicts. Returns the new stats (the input is left as is) and a note
    for each feature changed."""
    out: dict[str, dict[str, object]] = {k: dict(v) for k, v in stats.items()}
    notes: dict[str, str] = {}
    for key, st in out.items():
        if key not in keys:
            continue
        flat = []
        if "std" in st:
            std = np.asarray(st["std"], dtype=np.float64)
            small = std < min_std
            if small.any():
                st["std"] = np.where(small, 1.0, std)
                flat = [(i, float(v)) for i, v in enumerate(std.ravel()) if v < min_std]
        if "min" in st and "max" in st:
            lo, hi = np.asarray(st["min"], dtype=np.float64), np.asarray(st["max"], dtype=np.float64)
            small = (hi - lo) / 2 < min_std
            if small.any():
                mid = (lo + hi) / 2
                st["min"], st["max"] = np.where(small, mid - 1.0, lo), np.where(small, mid + 1.0, hi)
                flat = flat or [(i, float(v)) for i, v in enumerate(((hi - lo) / 2).ravel()) if v < min_std]
        if flat:
            dims = ", ".join(f"[{i}] {v:.2g}" for i, v in flat[:8]) + (" ..." if len(flat) > 8 else "")
            notes[key] = (f"{key}: {len(flat)} dimension(s) with a spread below {min_std:g} in the dataset "
                          f"({dims}): centred, not scaled")
    return out, notes


class NormMode(StrEnum):
    """How one feature is normalized: `mean_std` -> zero mean unit std, `min_max` -> [-1, 1]."""

    MEAN_STD = "mean_std"
    MIN_MAX = "min_max"
    IDENTITY = "identity"


#: Which statistics each mode needs.
MODE_STATS: dict[NormMode, tuple[str, ...]] = {
    NormMode.MEAN_STD: ("mean", "std"),
    NormMode.MIN_MAX: ("min", "max"),
    NormMode.IDENTITY: (),
}


def _as_tensor(value: object) -> Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float32))


class Normalizer(nn.Module):
    """Normalizes (or, with `inverse=True`, un-normalizes) the features named in `modes`.

    `shapes` gives each feature's shape so an untrained policy can be built before stats exist
    (buffers start as identity stats: mean 0, std 1, min -1, max 1); `load_stats` fills them in.
    """

    def __init__(
        self,
        modes: Mapping[str, NormMode | str],
        shapes: Mapping[str, tuple[int, ...]],
        stats: Mapping[str, Mapping[str, object]] | None = None,
        inverse: bool = False,
    ) -> None:
        super().__init__()
        self.modes = {k: NormMode(v) for k, v in modes.items()}
        self.inverse = inverse
        self._names: dict[str, str] = {}
        for key, mode in self.modes.items():
            shape = tuple(shapes[key])
            # Images carry per-channel stats that broadcast over height and width.
            stat_shape = (shape[0], 1, 1) if len(shape) == 3 else shape
            for stat in MODE_STATS[mode]:
                init = torch.zeros(stat_shape) if stat in ("mean", "min") else torch.ones(stat_shape)
                if stat == "min":
                    init = -torch.ones(stat_shape)
                buf = self._buffer_name(key, stat)
                self.register_buffer(buf, init, persistent=False)
                self._names[f"{key}.{stat}"] = buf
        if stats is not None:
            self.load_stats(stats)

    @staticmethod
    def _buffer_name(key: str, stat: str) -> str:
        return f"{key.replace('.', '__')}__{stat}"

    def load_stats(self, stats: Mapping[str, Mapping[str, object]]) -> None:
        """Copy stats (`{feature: {stat: array}}`, e.g. LeRobot's `meta/stats.json`) into the buffers."""
        for key, mode in self.modes.items():
            for stat in MODE_STATS[mode]:
                if key not in stats or stat not in stats[key]:
                    raise KeyError(f"normalization needs stats[{key!r}][{stat!r}] for mode {mode.value}")
                buf: Tensor = getattr(self, self._buffer_name(key, stat))
                value = _as_tensor(stats[key][stat]).to(buf.device)
                buf.copy_(value.reshape(buf.shape))

    def flat_stats(self) -> dict[str, Tensor]:
        """The stats as flat `"<feature>.<stat>"` tensors (the on-disk layout)."""
        return {name: getattr(self, buf).detach().cpu().contiguous() for name, buf in self._names.items()}

    def load_flat_stats(self, flat: Mapping[str, Tensor]) -> None:
        nested: dict[str, dict[str, Tensor]] = {}
        for name, value in flat.items():
            key, stat = name.rsplit(".", 1)
            nested.setdefault(key, {})[stat] = value
        self.load_stats({k: v for k, v in nested.items() if k in self.modes})

    def rescale(self, key: str, factors: Tensor) -> None:
        """Stats of `key` for its values multiplied by `factors` (one per entry of the last dim, negative allowed):
        every stat scales alike, so a scaled value normalizes to what the unscaled one did (with a negative factor
        min exceeds max and std is negative; both transforms stay exact). No-op for a feature this normalizer does
        not hold; refused (ValueError) for one it holds in mode identity, whose values reach the network as they are,
        so that no stats could scale them."""
        mode = self.modes.get(key)
        if mode is NormMode.IDENTITY:
            raise ValueError(f"{key}: normalization mode identity has no stats to rescale; its values reach the "
                             "network unscaled")  # fmt: skip
        for stat in MODE_STATS[mode] if mode is not None else ():
            buf: Tensor = getattr(self, self._buffer_name(key, stat))
            buf.mul_(torch.as_tensor(factors, dtype=buf.dtype, device=buf.device))

    def transform(self, key: str, x: Tensor) -> Tensor:
        """Normalize (or un-normalize) one feature tensor."""
        mode = self.modes.get(key, NormMode.IDENTITY)
        if mode is NormMode.IDENTITY:
            return x
        if mode is NormMode.MEAN_STD:
            mean = getattr(self, self._buffer_name(key, "mean"))
            std = getattr(self, self._buffer_name(key, "std"))
            return x * (std + EPS) + mean if self.inverse else (x - mean) / (std + EPS)
        lo = getattr(self, self._buffer_name(key, "min"))
        hi = getattr(self, self._buffer_name(key, "max"))
        span = hi - lo + EPS
        return (x + 1) / 2 * span + lo if self.inverse else (x - lo) / span * 2 - 1

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out = dict(batch)
        for key in self.modes:
            if key in out:
                out[key] = self.transform(key, out[key])
        return out
