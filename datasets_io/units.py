"""A copy of a LeRobot v3 dataset with its joint values rescaled: LeRobot's -100..100 joint range to degrees,
or back.

LeRobot reports body joints either in degrees or, with `use_degrees=False` (the Koch follower's default in
LeRobot 0.6.1, an option for the SO arms), in a -100..100 range over each motor's calibrated span; twinarm reads
LeRobot datasets in degrees (`ArmSpec.to_lerobot`). Both modes centre on the middle of the span, so the
conversion is one factor per joint, which the arm's calibration gives (`real.calibration`,
`Calibration.degrees_per_range_unit`); the gripper is 0..100 in both. `observation.state` and `action` are
rescaled, their per-episode and global stats recomputed; everything else (videos, images, other features) is
copied as it is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twinarm.datasets_io import stats as st
from twinarm.datasets_io.layout import (
    DATA_DIR,
    EPISODES_DIR,
    INFO_PATH,
    LOCK_PATH,
    RECORD_PATH,
    STATS_PATH,
    DatasetError,
    load_json,
    read_parquet,
    sorted_parquet_files,
)

#: The features holding joint values in a LeRobot robot dataset.
JOINT_FEATURES = ("observation.state", "action")
#: LeRobot's range mode spans -100..100.
RANGE_LIMIT = 100.0
#: What `convert-units` leaves in a copy it writes: the joint units the copy is in (LeRobot keeps no such record).
UNITS_PATH = "meta/twinarm_units.json"


def known_units(root: str | Path) -> tuple[str, str] | None:
    """(units, how it is known) of a dataset's body joints, "degrees" or "range", where twinarm can tell: a copy
    `convert-units` wrote, or a twinarm recording; None for a LeRobot recording (nothing in it says)."""
    root = Path(root)
    if (root / UNITS_PATH).is_file():
        units = load_json(root / UNITS_PATH)
        return str(units.get("joints")), f"{UNITS_PATH} (written by {units.get('set_by', 'convert-units')})"
    if (root / RECORD_PATH).is_file():  # `twinarm record` and `teleop --record` write degrees
        return "degrees", "twinarm recorded it, in degrees"
    return None


def check_direction(src: str | Path, to: str, body: np.ndarray) -> None:
    """DatasetError when the dataset at `src` is known to be in `to` units already, or (to degrees) its body
    joints leave -100..100, which range mode never does: converting again would scale the joints twice."""
    src = Path(src)
    if (known := known_units(src)) is not None and known[0] == to:
        raise DatasetError(f"{src}: its joints are in {to} already ({known[1]}); nothing to convert")
    if to == "degrees" and (reach := reach_past_range(src, body)) is not None:
        raise DatasetError(f"{src}: observation.state reaches {reach:.1f} on a body joint, outside range mode's "
                           "-100..100: it is in degrees already")  # fmt: skip


def reach_past_range(src: str | Path, body: np.ndarray) -> float | None:
    """How far past -100..100 (which range mode never leaves) the body joints (`body`, a mask) of the dataset at
    `src` reach in its stats, so it is in degrees; None when they stay within (or it has no stats)."""
    src = Path(src)
    if not (src / STATS_PATH).is_file():
        return None
    state = load_json(src / STATS_PATH).get("observation.state", {})
    if "min" not in state or "max" not in state:
        return None
    reach = np.maximum(np.abs(np.asarray(state["min"], float)), np.abs(np.asarray(state["max"], float)))
    if len(reach) != len(body) or not np.any(reach[body] > RANGE_LIMIT + 1e-3):
        return None
    return float(reach[body].max())


def rescale_joints(
    src: str | Path, dst: str | Path, factors: np.ndarray, range_mask: np.ndarray | None = None,
    names: list[str] | None = None, to: str | None = None,
) -> Path:
    """Copy the dataset at `src` to `dst` with `observation.state` and `action` multiplied by `factors` (one per
    joint), then clipped to -100..100 on the joints of `range_mask` (LeRobot's range mode clips to the span),
    and their stats recomputed. Raises DatasetError naming the dataset and feature when a feature's width, or
    its joint names where `names` are given (the factors' order), do not match. With `to` ("degrees"/"range"),
    the copy records its units (UNITS_PATH), so it is not converted the same way twice."""
    from twinarm.datasets_io.edit import check_apart

    src, dst = Path(src), Path(dst)
    factors = np.asarray(factors, dtype=np.float64)
    if dst.exists():
        raise DatasetError(f"{dst} exists: give a new folder for the converted dataset")
    tmp = dst.with_name(dst.name + ".converting")
    check_apart(dst, [src], tmp)
    info = load_json(src / INFO_PATH)
    for key in JOINT_FEATURES:
        shape = info["features"].get(key, {}).get("shape")
        if shape != [len(factors)]:
            raise DatasetError(f"{src}: feature {key!r} has shape {shape}, the arm has {len(factors)} joints")
        found = info["features"][key].get("names")
        if names is not None and found is not None and list(found) != list(names):
            raise DatasetError(f"{src}: feature {key!r} names its joints {found}, the arm's are {list(names)}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(Path(LOCK_PATH).name))
        _rescale_copy(tmp, factors, range_mask)
        if to is not None:
            (tmp / UNITS_PATH).write_text(json.dumps({"joints": to, "converted_from": str(src)}, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the source is untouched; no half-converted copy is left
        raise
    tmp.rename(dst)
    return dst


def _rescale_copy(tmp: Path, factors: np.ndarray, range_mask: np.ndarray | None) -> None:
    """Rescale the joint features of the copy at `tmp` in place, then their stats."""
    values: dict[str, list[np.ndarray]] = {k: [] for k in JOINT_FEATURES}
    index: list[np.ndarray] = []
    for path in sorted_parquet_files(tmp / DATA_DIR):
        table = read_parquet(path)
        for key in JOINT_FEATURES:
            col = table.column(key)
            x = np.stack(col.to_numpy(zero_copy_only=False)).astype(np.float64) * factors
            if range_mask is not None:
                x[:, range_mask] = np.clip(x[:, range_mask], -RANGE_LIMIT, RANGE_LIMIT)
            x = x.astype(np.float32)
            values[key].append(x)
            arr = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])
            table = table.set_column(table.column_names.index(key), pa.field(key, col.type), arr.cast(col.type))
        index.append(table.column("index").to_numpy())
        pq.write_table(table, path)
    order = np.argsort(np.concatenate(index), kind="stable")
    joints = {k: np.concatenate(v)[order] for k, v in values.items()}  # by global frame index
    _rewrite_stats(tmp, joints)


def _rewrite_stats(root: Path, joints: dict[str, np.ndarray]) -> None:
    """Per-episode stats of the joint features from their frames, and the global ones as LeRobot aggregates them."""
    episode_stats = []
    for path in sorted_parquet_files(root / EPISODES_DIR):
        table = read_parquet(path)
        starts, ends = (table.column(c).to_numpy() for c in ("dataset_from_index", "dataset_to_index"))
        per_episode = [{k: st.vector_stats(v[a:b]) for k, v in joints.items()} for a, b in zip(starts, ends, strict=True)]
        episode_stats += per_episode
        for key in JOINT_FEATURES:
            for name in st.STAT_KEYS:
                column = f"stats/{key}/{name}"
                if column not in table.column_names:
                    continue
                data = pa.array([np.asarray(s[key][name]).tolist() for s in per_episode], type=table.schema.field(column).type)
                table = table.set_column(table.column_names.index(column), table.schema.field(column), data)
        pq.write_table(table, path)
    if not episode_stats:
        raise DatasetError(f"{root}: no episodes in meta/episodes")
    stats = load_json(root / STATS_PATH)
    stats.update(st.to_jsonable(st.aggregate(episode_stats)))
    (root / STATS_PATH).write_text(json.dumps(stats, indent=4))
