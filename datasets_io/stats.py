"""Per-episode and dataset statistics in LeRobot's form: min/max/mean/std/count and q01..q99 quantiles.

Images are sampled and downscaled, then reduced per channel in [0, 1] to shape (3, 1, 1); episode
stats are combined with count-weighted means and pooled variances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(round(q * 100)):02d}" for q in QUANTILES)
STAT_KEYS = ("min", "max", "mean", "std", "count") + QUANTILE_KEYS
#: Images are strided down so their longer side is at most about this many pixels before stats.
IMAGE_STATS_SIDE = 150


def image_stride(height: int, width: int) -> int:
    """Pixel stride that brings an image's longer side to about IMAGE_STATS_SIDE."""
    return max(1, int(np.ceil(max(height, width) / IMAGE_STATS_SIDE)))


def sample_positions(n: int) -> np.ndarray:
    """Which of an episode's n frames feed the image stats: all up to 100, then evenly spaced."""
    if n <= 100:
        return np.arange(n)
    k = int(min(max(100, n ** 0.75), 10_000))
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over axis 0 of a (T, D) array (or (T,) for scalar features, kept as shape (1,))."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    out = {
        "min": arr.min(axis=0),
        "max": arr.max(axis=0),
        "mean": arr.mean(axis=0),
        "std": arr.std(axis=0),
        "count": np.array([arr.shape[0]], dtype=np.int64),
    }
    qs = np.quantile(arr, QUANTILES, axis=0)
    for key, q in zip(QUANTILE_KEYS, qs, strict=True):
        out[key] = q
    return out


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of (N, H, W, C) uint8 frames, scaled to [0, 1], each of shape (C, 1, 1)."""
    arr = np.asarray(frames)
    c = arr.shape[-1]
    flat = arr.reshape(-1, c).astype(np.float32) / 255.0
    s = vector_stats(flat)
    out = {k: (v if k == "count" else v.reshape(c, 1, 1)) for k, v in s.items()}
    out["count"] = np.array([arr.shape[0]], dtype=np.int64)
    return out


def aggregate(stats_list: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Combine per-episode stats: global min/max, count-weighted mean, pooled variance; quantiles
    are count-weighted averages of the episode quantiles (an approximation, as in LeRobot)."""
    keys: list[str] = []
    for s in stats_list:
        keys += [k for k in s if k not in keys]
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        items = [s[key] for s in stats_list if key in s]
        counts = np.stack([np.asarray(i["count"], dtype=np.float64) for i in items])
        means = np.stack([np.asarray(i["mean"], dtype=np.float64) for i in items])
        w = counts.reshape(counts.shape + (1,) * (means.ndim - counts.ndim))
        total = counts.sum(axis=0)
        tw = total.reshape(total.shape + (1,) * (means.ndim - 1 - total.ndim))
        mean = (means * w).sum(axis=0) / tw
        var = ((np.stack([np.asarray(i["std"], dtype=np.float64) ** 2 for i in items]) + (means - mean) ** 2) * w).sum(
            axis=0
        ) / tw
        agg = {
            "min": np.min(np.stack([i["min"] for i in items]), axis=0),
            "max": np.max(np.stack([i["max"] for i in items]), axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": total.astype(np.int64),
        }
        for q in QUANTILE_KEYS:
            if all(q in i for i in items):
                agg[q] = (np.stack([np.asarray(i[q], dtype=np.float64) for i in items]) * w).sum(axis=0) / tw
        out[key] = agg
    return out


def to_jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Stats as nested lists (the `stats.json` form)."""
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def from_jsonable(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    return {k: {s: np.asarray(v) for s, v in d.items()} for k, d in stats.items()}
