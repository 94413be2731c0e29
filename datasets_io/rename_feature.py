"""A copy of a LeRobot v3 dataset with some features under new keys: a LeRobot recording's cameras (`laptop`,
`phone`, `up`, ...) named as the sim arm's (`front`, `wrist`), so a policy trained on it runs in `twinarm eval`.
Files are moved, never re-encoded; LeRobot's `rename_map` does the same at load time, this once for good."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pyarrow.parquet as pq

from twinarm.datasets_io.edit import edited_copy
from twinarm.datasets_io.features import image_keys, video_keys
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
from twinarm.datasets_io.remove_feature import ACTION, REQUIRED
from twinarm.datasets_io.writer import check_version

CAMERA_PREFIX = "observation.images."


def rename_features(src: str | Path, dst: str | Path, renames: Mapping[str, str]) -> Path:
    """Copy `src` to `dst` with each feature `old` of `renames` under its new key (data columns, videos, per-episode
    and global stats, info). A camera stays a camera (`observation.images.<name>`). Built beside `dst` and
    renamed into place when complete; the source is not changed."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise DatasetError(f"{dst} exists: give a new folder for the edited dataset")
    info = load_json(src / INFO_PATH)
    check_version(info, src / INFO_PATH)
    renames = {old: new for old, new in renames.items() if old != new}
    if not renames:
        raise DatasetError("no features to rename were given (OLD=NEW, with NEW other than OLD)")
    features = info["features"]
    problems = [f"{new!r}: feature keys cannot contain '/' (it would be a folder under videos/)" for new in
                renames.values() if "/" in new]  # fmt: skip
    problems += [f"{old!r} needs a new key (OLD=NEW)" for old, new in renames.items() if not new.strip()]
    problems += [f"no feature {old!r}" for old in renames if old not in features]
    problems += [f"{old!r} is one every LeRobot dataset has" for old in renames if old in REQUIRED]
    if ACTION in renames:
        problems.append(f"{ACTION!r} is what every LeRobot policy learns to output: under another key no policy "
                        "could train on the copy")
    cameras = set(video_keys(features)) | set(image_keys(features))
    problems += [f"{old!r} is a camera: its new key must start with {CAMERA_PREFIX!r}, got {new!r}"
                 for old, new in renames.items() if old in cameras and not new.startswith(CAMERA_PREFIX)]  # fmt: skip
    problems += [f"{old!r} is no camera: {new!r} would read as one" for old, new in renames.items()
                 if old in features and old not in cameras and new.startswith(CAMERA_PREFIX)]  # fmt: skip
    after = [renames.get(k, k) for k in features]
    problems += [f"two features would be {key!r}" for key in dict.fromkeys(after) if after.count(key) > 1]
    if problems:
        raise DatasetError(f"{src}: cannot rename: {'; '.join(problems)} (its features: {sorted(features)})")
    edited_copy(src, dst, lambda root: _rename_in_copy(root, load_json(root / INFO_PATH), renames))
    return dst


def _rename_in_copy(root: Path, info: dict, renames: dict[str, str]) -> None:
    for path in sorted_parquet_files(root / DATA_DIR):
        table = read_parquet(path)
        if any(old in table.column_names for old in renames):
            pq.write_table(table.rename_columns([renames.get(c, c) for c in table.column_names]), path)
    for path in sorted_parquet_files(root / EPISODES_DIR):  # stats/<key>/..., videos/<key>/... columns
        table = read_parquet(path)
        names = [_renamed_column(c, renames) for c in table.column_names]
        if names != table.column_names:
            pq.write_table(table.rename_columns(names), path)
    _move_video_folders(root / "videos", renames)
    if (root / STATS_PATH).is_file():
        stats = load_json(root / STATS_PATH)
        (root / STATS_PATH).write_text(json.dumps({renames.get(k, k): v for k, v in stats.items()}, indent=4))
    info = {**info, "features": {renames.get(k, k): v for k, v in info["features"].items()}}
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))


def _move_video_folders(videos: Path, renames: dict[str, str]) -> None:
    """Move each renamed camera's video folder to its new key, through a temporary name first, so a swap (front
    as wrist and wrist as front) never moves one folder onto the other."""
    moving = [(old, new) for old, new in renames.items() if (videos / old).is_dir()]
    for old, _ in moving:
        (videos / old).rename(videos / f"{old}.renaming")
    for old, new in moving:
        (videos / f"{old}.renaming").rename(videos / new)


def _renamed_column(column: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        for kind in ("stats", "videos"):
            if column.startswith(f"{kind}/{old}/"):
                return f"{kind}/{new}/" + column[len(f"{kind}/{old}/") :]
    return column
