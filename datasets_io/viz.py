"""Look at an episode: every camera side by side above live plots of state and action, as mp4 or PNG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from twinarm.datasets_io.edit import check_apart
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.video import EpisodeEncoder

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def plot_panel(values: np.ndarray, t: int, width: int, height: int, title: str) -> np.ndarray:
    """A line plot of (T, D) `values` (each dim min-max scaled) with a cursor at step `t`, RGB uint8."""
    img = np.full((height, width, 3), 255, np.uint8)
    n, d = values.shape
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi - lo > 1e-9, hi - lo, 1.0)
    xs = np.linspace(4, width - 5, max(n, 2)).astype(np.int32)
    for j in range(d):
        ys = (height - 6 - (values[:, j] - lo[j]) / span[j] * (height - 24)).astype(np.int32)
        pts = np.stack([xs[:n], ys], axis=1).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], False, COLORS[j % len(COLORS)], 1, cv2.LINE_AA)
    x = int(xs[min(t, n - 1)])
    cv2.line(img, (x, 14), (x, height - 2), (0, 0, 0), 1)
    cv2.putText(img, title, (4, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def camera_rgb(chw: np.ndarray, depth_range: tuple[float, float] | None = None) -> np.ndarray:
    """A camera frame (C, H, W) as RGB uint8: colour (floats in [0, 1]) as is, one-channel gray repeated, and a
    depth map (millimetres; `depth_range` given) through the turbo colour map, near red to far blue."""
    if depth_range is not None:
        lo, hi = depth_range
        scaled = np.clip((hi - chw[0]) / max(hi - lo, 1e-6), 0.0, 1.0)
        return cv2.cvtColor(cv2.applyColorMap(np.round(scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    img = np.round(chw.transpose(1, 2, 0) * 255).astype(np.uint8)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def _depth_range(ds: LeRobotDatasetReader, key: str) -> tuple[float, float]:
    """The millimetre span a depth camera's colours cover: its dataset stats (1st-99th percentile if recorded)."""
    st = (ds.stats or {}).get(key, {})
    lo, hi = st.get("q01", st.get("min")), st.get("q99", st.get("max"))
    if lo is None or hi is None:
        return 0.0, 4000.0  # no stats: 0-4 m, a tabletop depth camera's range
    return float(np.min(lo)), float(np.max(hi))


def episode_frames(ds: LeRobotDatasetReader, episode: int, plot_height: int = 120) -> list[np.ndarray]:
    """One RGB image per step of `episode`: cameras in a row, then a plot per numeric vector feature."""
    rows = ds.episode_rows(episode)
    vec_keys = [k for k in ("observation.state", "action", "observation.environment_state") if k in ds.features]
    series = {k: ds.column(k)[rows.start:rows.stop].reshape(len(rows), -1) for k in vec_keys}
    depth = {k: _depth_range(ds, k) for k in ds.meta.depth}
    out = []
    for t, r in enumerate(rows):
        item = ds[r] if ds.episodes is None else None
        if item is None:
            raise ValueError("episode_frames needs a reader over all episodes")
        cams = [camera_rgb(item[k].numpy(), depth.get(k)) for k in ds.meta.camera_keys]
        h = max((c.shape[0] for c in cams), default=0)
        cams = [cv2.resize(c, (int(c.shape[1] * h / c.shape[0]), h)) if c.shape[0] != h else c for c in cams]
        top = np.concatenate(cams, axis=1) if cams else np.zeros((0, 320, 3), np.uint8)
        width = max(top.shape[1], 320)
        if top.shape[1] < width:
            top = np.pad(top, ((0, 0), (0, width - top.shape[1]), (0, 0)), constant_values=255)
        panels = [plot_panel(v, t, width, plot_height, f"{k} ({v.shape[1]} dims)  step {t}") for k, v in series.items()]
        img = np.concatenate([top, *panels], axis=0)
        out.append(img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2])
    return out


def render_episode(root: str | Path, episode: int, out: str | Path) -> Path:
    """Write `out` as an mp4 of the whole episode (or, for .png, a contact sheet of 6 evenly spaced steps)."""
    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".png"):
        raise DatasetError(f"{out}: write a .mp4 (the whole episode) or a .png (a contact sheet)")
    ds = LeRobotDatasetReader(root)
    check_apart(out, [ds.root])  # a file inside the dataset could overwrite one of its own videos
    if not 0 <= episode < ds.num_episodes:
        raise DatasetError(f"{root}: episode {episode} does not exist (the dataset has episodes 0..{ds.num_episodes - 1})")
    frames = episode_frames(ds, episode)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        picks = [frames[i] for i in np.linspace(0, len(frames) - 1, min(6, len(frames))).astype(int)]
        sheet = np.concatenate([np.concatenate(picks[i:i + 3], axis=1) if len(picks[i:i + 3]) == 3 else
                                np.pad(np.concatenate(picks[i:i + 3], axis=1),
                                       ((0, 0), (0, frames[0].shape[1] * (3 - len(picks[i:i + 3]))), (0, 0)))
                                for i in range(0, len(picks), 3)], axis=0)
        cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        return out
    h, w, _ = frames[0].shape
    enc = EpisodeEncoder(w, h, ds.fps)
    for f in frames:
        enc.add(f)
    out.write_bytes(enc.finish())
    return out
