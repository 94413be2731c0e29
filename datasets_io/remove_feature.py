"""A copy of a LeRobot v3 dataset without some features: a camera the policy does not use (its videos go, so
the copy is smaller and quicker to load or upload), or an extra state key. Everything else is copied as it is.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

from twinarm.datasets_io.edit import edited_copy
from twinarm.datasets_io.features import video_keys
from twinarm.datasets_io.layout import (
    DATA_DIR,
    EPISODES_DIR,
    INFO_PATH,
    STATS_PATH,
    DatasetError,
    load_json,
    read_parquet,
    sorted_parquet_files,
)
from twinarm.datasets_io.writer import check_version

#: Every LeRobot frame has these; they cannot be removed.
REQUIRED = ("timestamp", "frame_index", "episode_index", "index", "task_index")
#: What every LeRobot policy learns to output: without it under this key, no policy trains on the dataset.
ACTION = "action"


def remove_features(src: str | Path, dst: str | Path, names: Iterable[str]) -> Path:
    """Copy `src` to `dst` without the features `names` (their data columns, videos, per-episode and global
    stats). Built beside `dst` and renamed into place when complete; the source is not changed."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise DatasetError(f"{dst} exists: give a new folder for the edited dataset")
    info = load_json(src / INFO_PATH)
    check_version(info, src / INFO_PATH)
    drop = list(dict.fromkeys(names))
    if not drop:
        raise DatasetError("no features to remove were given")
    unknown = [n for n in drop if n not in info["features"]]
    if unknown:
        raise DatasetError(f"{src}: no feature(s) {unknown}; its features: {sorted(info['features'])}")
    required = [n for n in drop if n in REQUIRED]
    if required:
        raise DatasetError(f"{required}: every LeRobot dataset has {list(REQUIRED)}; they cannot be removed")
    if ACTION in drop:
        raise DatasetError(f"{src}: cannot remove {ACTION!r}: it is what every LeRobot policy learns to output, "
                           "so no policy could train on the copy")
    edited_copy(src, dst, lambda root: _remove_in_copy(root, load_json(root / INFO_PATH), drop))
    return dst


def _remove_in_copy(root: Path, info: dict, drop: list[str]) -> None:
    videos = set(video_keys(info["features"]))
    for path in sorted_parquet_files(root / DATA_DIR):
        table = read_parquet(path)
        if any(n in table.column_names for n in drop):
            pq.write_table(table.drop_columns([n for n in drop if n in table.column_names]), path)
    prefixes = tuple(f"{kind}/{n}/" for n in drop for kind in ("stats", "videos"))
    for path in sorted_parquet_files(root / EPISODES_DIR):
        table = read_parquet(path)
        gone = [c for c in table.column_names if c.startswith(prefixes)]
        if gone:
            pq.write_table(table.drop_columns(gone), path)
    for n in drop:
        if n in videos:
            shutil.rmtree(root / "videos" / n, ignore_errors=True)
    if (root / STATS_PATH).is_file():
        stats = load_json(root / STATS_PATH)
        (root / STATS_PATH).write_text(json.dumps({k: v for k, v in stats.items() if k not in drop}, indent=4))
    features = {k: v for k, v in info["features"].items() if k not in drop}
    info = {**info, "features": features}
    if not video_keys(features):
        info["video_path"] = None  # as LeRobot and twinarm write a dataset without videos
        shutil.rmtree(root / "videos", ignore_errors=True)
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))
