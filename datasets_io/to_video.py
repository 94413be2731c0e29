"""A copy of a LeRobot v3 dataset with its camera images (PNG bytes in the data files, `record --images`, LeRobot's
image datasets) encoded as videos, as the writer would have written them: each episode encoded on its own and
appended to the camera's current mp4 until it reaches `video_files_size_in_mb`. The copy is typically many times
smaller. Depth images stay as they are (LeRobot encodes those with its own depth codec); the per-episode and
global stats are kept as computed from the original images.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twinarm.datasets_io.edit import edited_copy
from twinarm.datasets_io.features import depth_keys
from twinarm.datasets_io.layout import (
    DATA_DIR,
    EPISODES_DIR,
    INFO_PATH,
    VIDEO_PATH,
    DatasetError,
    load_json,
    next_chunk_file,
    read_parquet,
    sorted_parquet_files,
)
from twinarm.datasets_io.video import (
    EpisodeEncoder,
    check_frame_size,
    concatenate,
    encoder_options,
    video_info,
)
from twinarm.datasets_io.writer import check_version

MB = 1024 * 1024


def images_to_video(src: str | Path, dst: str | Path, keys: Iterable[str] | None = None, codec: str = "h264",
                    crf: int | None = None) -> tuple[Path, list[str]]:  # fmt: skip
    """Copy `src` to `dst` with the image features `keys` (default: every colour one) as videos. Returns `dst` and
    the keys converted. Built beside `dst` and renamed into place when complete; the source is not changed."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise DatasetError(f"{dst} exists: give a new folder for the converted dataset")
    info = load_json(src / INFO_PATH)
    check_version(info, src / INFO_PATH)
    depth = set(depth_keys(info["features"]))
    images = [k for k, ft in info["features"].items() if ft["dtype"] == "image" and k not in depth]
    chosen = images if keys is None else list(dict.fromkeys(keys))
    wrong = [k for k in chosen if k not in images]
    if wrong:
        raise DatasetError(f"{src}: {wrong} are not colour image features (its image features: {images}; depth "
                           f"images stay images)")  # fmt: skip
    if not chosen:
        raise DatasetError(f"{src} has no colour image features to encode")
    opts = encoder_options(codec, crf)  # a bad codec fails before anything is copied
    for k in chosen:  # so does a size the codec refuses, naming the camera (the encoder only sees frames)
        ft = info["features"][k]
        shape, names = list(ft.get("shape") or []), list(ft.get("names") or ["height", "width", "channels"])
        if len(shape) == 3 and {"height", "width"} <= set(names):
            size = dict(zip(names, shape, strict=False))
            check_frame_size(codec, int(size["width"]), int(size["height"]), what=f"{src}: feature {k!r}")
    edited_copy(src, dst, lambda root: _convert_in_copy(root, load_json(root / INFO_PATH), chosen, codec, opts))
    return dst, chosen


def _decode(raw: bytes | None, where: str) -> np.ndarray:
    img = None if raw is None else cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{where}: not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _convert_in_copy(root: Path, info: dict[str, Any], keys: list[str], codec: str, opts: dict[str, str]) -> None:
    fps, cs = int(info["fps"]), int(info["chunks_size"])
    limit = float(info.get("video_files_size_in_mb", 200)) * MB
    placed: dict[str, dict[int, tuple[int, int, float, float]]] = {k: {} for k in keys}
    files: dict[str, list[tuple[bytes, int]]] = {k: [] for k in keys}
    where: dict[str, tuple[int, int]] = dict.fromkeys(keys, (0, 0))
    for path in sorted_parquet_files(root / DATA_DIR):
        table = read_parquet(path)
        eps = table.column("episode_index").to_numpy()
        split = [e for e in set(eps.tolist()) if e in placed[keys[0]]]
        if split:
            raise DatasetError(f"{path}: episode(s) {sorted(split)} continue from an earlier data file; twinarm converts "
                               "datasets whose episodes each lie in one data file (as LeRobot and twinarm write them)")
        for k in keys:
            raw = [cell["bytes"] if isinstance(cell, dict) else cell for cell in table.column(k).to_pylist()]
            for e in dict.fromkeys(eps.tolist()):
                rows = np.flatnonzero(eps == e)
                first = _decode(raw[rows[0]], f"{path.name} {k} frame {rows[0]}")
                enc = EpisodeEncoder(first.shape[1], first.shape[0], fps, codec, opts)
                for i, r in enumerate(rows):
                    enc.add(first if i == 0 else _decode(raw[r], f"{path.name} {k} frame {r}"))
                blob = enc.finish()
                if files[k] and sum(len(b) for b, _ in files[k]) + len(blob) > limit:
                    _write(root, k, where[k], files[k], fps)
                    where[k], files[k] = next_chunk_file(*where[k], cs), []
                start = sum(n for _, n in files[k])
                files[k].append((blob, rows.size))
                placed[k][int(e)] = (*where[k], start / fps, (start + rows.size) / fps)
        pq.write_table(table.drop_columns(keys), path)
    for k in keys:
        if files[k]:
            _write(root, k, where[k], files[k], fps)
    for path in sorted_parquet_files(root / EPISODES_DIR):
        table = read_parquet(path)
        eps = [int(e) for e in table.column("episode_index").to_numpy()]
        for k in keys:
            missing = [e for e in eps if e not in placed[k]]
            if missing:
                raise DatasetError(f"{path}: episode(s) {missing} have no frames in {root / DATA_DIR}")
            for i, (name, typ) in enumerate((("chunk_index", pa.int64()), ("file_index", pa.int64()),
                                             ("from_timestamp", pa.float64()), ("to_timestamp", pa.float64()))):
                table = table.append_column(f"videos/{k}/{name}", pa.array([placed[k][e][i] for e in eps], type=typ))
        pq.write_table(table, path)
    for k in keys:
        first = root / VIDEO_PATH.format(video_key=k, chunk_index=0, file_index=0)
        info["features"][k] = {**info["features"][k], "dtype": "video", "info": video_info(first)}
    info["video_path"] = VIDEO_PATH
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))


def _write(root: Path, key: str, chunk_file: tuple[int, int], episodes: list[tuple[bytes, int]], fps: int) -> None:
    path = root / VIDEO_PATH.format(video_key=key, chunk_index=chunk_file[0], file_index=chunk_file[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    concatenate(episodes, path, fps)
