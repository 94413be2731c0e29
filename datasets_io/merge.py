"""Several LeRobot v3 datasets of one robot as one new dataset (recording sessions of different days, sim and real
demonstrations to publish together).

The first dataset is copied; each further one is appended file by file: its data, video and episode-metadata
files are copied under the next free file numbers, with episode indices, frame indices and task indices moved
past those before them (its tasks joined to the list by text). Videos are copied, never re-encoded, so every
frame stays as it was; a video feature must therefore share codec, pixel format and size across the datasets.
Stats are aggregated again from every episode's, as LeRobot does.
"""

from __future__ import annotations

import contextlib
import json
import operator
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twinarm.arms import same_robot
from twinarm.datasets_io import stats as st
from twinarm.datasets_io.edit import (
    aggregate_global_stats,
    check_apart,
    copy_unless_written,
    in_source_terms,
    read_tasks,
    renumbered_stats,
    with_columns,
)
from twinarm.datasets_io.features import joint_names, video_keys
from twinarm.datasets_io.layout import (
    DATA_DIR,
    DATA_PATH,
    EPISODES_DIR,
    EPISODES_PATH,
    INFO_PATH,
    JOURNAL_PATH,
    LOCK_PATH,
    TASKS_PATH,
    TMP_MARK,
    VIDEO_PATH,
    DatasetError,
    WriteLock,
    episode_seeds,
    load_json,
    next_chunk_file,
    read_parquet,
    set_episode_seeds,
    sorted_parquet_files,
)
from twinarm.datasets_io.writer import check_version, repair, tasks_table

#: What a video feature's files must share to sit in one dataset (one `info` block per feature).
VIDEO_KEYS = ("video.codec", "video.pix_fmt", "video.height", "video.width")


def merge_datasets(sources: Sequence[str | Path], dst: str | Path) -> Path:
    """Write the datasets `sources` (in order) as one new dataset at `dst`; they must agree on fps, robot type and
    features. Built beside `dst` and renamed into place only when complete; any failure leaves nothing."""
    srcs, dst = [Path(s) for s in sources], Path(dst)
    if len(srcs) < 2:
        raise DatasetError("merging needs two datasets or more")
    seen: dict[Path, Path] = {}
    for s in srcs:  # every episode would be in the merge twice: a slip, not a way to weight a dataset
        if s.resolve() in seen:
            raise DatasetError(f"{s.resolve()} is given more than once (as {seen[s.resolve()]} and {s}): each "
                               "dataset's episodes go in once")  # fmt: skip
        seen[s.resolve()] = s
    if dst.exists():
        raise DatasetError(f"{dst} exists: give a new folder for the merged dataset")
    infos = [load_json(s / INFO_PATH) for s in srcs]
    for s, info in zip(srcs, infos, strict=True):
        check_version(info, s / INFO_PATH)
    _check_compatible(srcs, infos)
    for s, info in zip(srcs, infos, strict=True):
        _check_frames(s, info)
    tmp = dst.with_name(dst.name + ".merging")
    check_apart(dst, srcs, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        copy_unless_written(srcs[0], tmp)
        repair(tmp)
        for src in srcs[1:]:
            with _reading(src):
                _append(tmp, src)
        aggregate_global_stats(tmp, load_json(tmp / INFO_PATH))
        # each merged episode's recorded sim seed where its source says it (`replay` reads them)
        known = [episode_seeds(src) for src in srcs]
        set_episode_seeds(tmp, [seeds.get(e) for seeds, info in zip(known, infos, strict=True)
                                for e in range(int(info["total_episodes"]))])  # fmt: skip
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        named = in_source_terms(exc, tmp, srcs[0], dst)  # the merge starts as a copy of the first source
        if named is exc:
            raise
        raise named from None
    tmp.rename(dst)
    return dst


@contextlib.contextmanager
def _reading(src: Path) -> Iterator[None]:
    """Hold `src`'s write lock (if twinarm ever wrote it) while its files are copied; refuse an unfinished commit."""
    if (src / JOURNAL_PATH).exists():
        raise DatasetError(f"{src}: a recording was interrupted mid-commit; run `twinarm dataset check --repair "
                           f"{src}` first")
    lock = WriteLock(src) if (src / LOCK_PATH).exists() else None
    if lock is not None and not lock.acquire():
        raise DatasetError(f"{src} is being written (a recording holds {src / LOCK_PATH}); merge it once that ends")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _check_frames(src: Path, info: dict[str, Any]) -> None:
    """Refuse a source whose meta/episodes or info.json disagrees with its data files' row count (read from
    the parquet footers): the merge would copy the corruption into a new dataset that train then refuses."""
    rows = 0
    for path in sorted_parquet_files(src / DATA_DIR):
        try:
            rows += pq.read_metadata(path).num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(f"{path}: corrupt parquet ({exc})") from None
    ends = [read_parquet(p, ["dataset_to_index"]).column(0).to_numpy() for p in sorted_parquet_files(src / EPISODES_DIR)]
    end = int(max((e.max() for e in ends if e.size), default=0))
    if end != rows:
        said = f"meta/episodes ends at {end}"
    elif int(info.get("total_frames", -1)) != rows:
        said = f"meta/info.json says total_frames {info.get('total_frames')}"
    else:
        return
    raise DatasetError(f"{src}: data files hold {rows} frames but {said}; run `twinarm dataset check {src}` (the "
                       "merge would copy this into the new dataset)")


def _signature(ft: dict[str, Any]) -> tuple:
    info = ft.get("info") or {}
    names = joint_names(ft.get("names")) if ft["dtype"] not in ("video", "image") else ft.get("names")
    return (ft["dtype"], tuple(ft["shape"]), tuple(names or ()),
            tuple(info.get(k) for k in VIDEO_KEYS) if ft["dtype"] == "video" else ())


def _check_compatible(srcs: list[Path], infos: list[dict[str, Any]]) -> None:
    first, a = srcs[0], infos[0]
    for src, b in zip(srcs[1:], infos[1:], strict=True):
        for key in ("fps", "robot_type"):
            if not (same_robot if key == "robot_type" else operator.eq)(a.get(key), b.get(key)):
                raise DatasetError(f"{src} has {key} {b.get(key)!r}, {first} has {a.get(key)!r}: they cannot be merged")
        fa, fb = a["features"], b["features"]
        if fa.keys() != fb.keys():
            raise DatasetError(f"{src} and {first} differ in features: {sorted(fa.keys() ^ fb.keys())}")
        for k in fa:
            if _signature(fa[k]) != _signature(fb[k]):
                raise DatasetError(_mismatch(k, (src, fb[k]), (first, fa[k])))


def _mismatch(key: str, b: tuple[Path, dict[str, Any]], a: tuple[Path, dict[str, Any]]) -> str:
    """Why feature `key` of dataset b cannot join a's, in words (each side described), with the way out."""
    kinds = {a[1]["dtype"]: a[0], b[1]["dtype"]: b[0]}
    if kinds.keys() == {"image", "video"}:
        img, vid = kinds["image"], kinds["video"]
        return (f"feature {key!r}: {img} stores it as images, {vid} as video; encode {img}'s images with "
                f"`twinarm dataset convert-to-video {img} OUT` and merge OUT instead")
    what = "video codec, pixel format or size" if a[1]["dtype"] == "video" else "dtype, shape or names"
    out = (f"feature {key!r}: {b[0]} and {a[0]} differ in {what} ({b[0]}: {_describe(b[1])}; {a[0]}: "
           f"{_describe(a[1])})")
    if a[1]["dtype"] != "video" or b[1]["dtype"] != "video":
        return out
    out += "; videos are copied, not re-encoded, so they must match"
    ia, ib = a[1].get("info") or {}, b[1].get("info") or {}
    size = ("video.height", "video.width")
    if [ia.get(k) for k in size] == [ib.get(k) for k in size]:  # a codec or pixel format: both still train
        out += f". Train on both without merging: `twinarm train --dataset {a[0]} --dataset {b[0]} ...`"
        codec = ia.get("video.codec")
        from twinarm.datasets_io.video import CODECS

        if codec != ib.get("video.codec") and codec in CODECS:
            out += f"; or record with `twinarm record --codec {codec}` so that a recording merges with {a[0]}"
    return out


def _describe(ft: dict[str, Any]) -> str:
    """A feature as a person reads it: `video h264 yuv420p 96x128`, `float32 [6] names [...]`."""
    if ft["dtype"] == "video":
        info = ft.get("info") or {}
        return (f"video {info.get('video.codec')} {info.get('video.pix_fmt')} "
                f"{info.get('video.height')}x{info.get('video.width')}")
    names = f" names {list(ft['names'])}" if ft.get("names") and ft["dtype"] != "image" else ""
    return f"{ft['dtype']} {list(ft['shape'])}{names}"


def _last_file(rows: list[dict[str, Any]], prefix: str) -> tuple[int, int] | None:
    pairs = [(r[f"{prefix}/chunk_index"], r[f"{prefix}/file_index"]) for r in rows]
    return max(pairs) if pairs else None


def _append(root: Path, src: Path) -> None:
    """Append the dataset `src` to the one at `root` (already merged so far)."""
    info = load_json(root / INFO_PATH)
    cs = int(info["chunks_size"])
    base_rows = [r for p in sorted_parquet_files(root / EPISODES_DIR)
                 for r in read_parquet(p).select(["episode_index", "data/chunk_index", "data/file_index",
                                                  "meta/episodes/chunk_index", "meta/episodes/file_index",
                                                  *_video_columns(info)]).to_pylist()]  # fmt: skip
    ep_offset, frame_offset = int(info["total_episodes"]), int(info["total_frames"])
    tasks = read_tasks(root)
    new_tasks = [t for t in read_tasks(src) if t not in tasks]
    all_tasks = tasks + new_tasks
    task_map = {i: all_tasks.index(t) for i, t in enumerate(read_tasks(src))}

    # Data files, then video files, each under the next free numbers; remember where each source file went.
    fix = DataFix(ep_offset, frame_offset, task_map)
    data_map = _copy_files(src, root, DATA_PATH, _last_file(base_rows, "data"), cs, "data", fix)
    video_maps = {
        key: _copy_files(src, root, VIDEO_PATH.replace("{video_key}", key), _last_file(base_rows, f"videos/{key}"),
                         cs, f"videos/{key}", None)
        for key in video_keys(info["features"])
    }
    meta_last = _last_file(base_rows, "meta/episodes")
    for path in sorted_parquet_files(src / EPISODES_DIR):
        table = read_parquet(path)
        meta_last = next_chunk_file(*meta_last, cs) if meta_last is not None else (0, 0)
        n = table.num_rows
        old_ep = table.column("episode_index").to_numpy()
        values: dict[str, list[Any]] = {
            "episode_index": (old_ep + ep_offset).tolist(),
            "dataset_from_index": (table.column("dataset_from_index").to_numpy() + frame_offset).tolist(),
            "dataset_to_index": (table.column("dataset_to_index").to_numpy() + frame_offset).tolist(),
            "meta/episodes/chunk_index": [meta_last[0]] * n,
            "meta/episodes/file_index": [meta_last[1]] * n,
        }
        for prefix, mapping in (("data", data_map), *((f"videos/{k}", m) for k, m in video_maps.items())):
            pairs = [mapping[(c, f)] for c, f in zip(table.column(f"{prefix}/chunk_index").to_pylist(),
                                                     table.column(f"{prefix}/file_index").to_pylist(), strict=True)]
            values[f"{prefix}/chunk_index"] = [p[0] for p in pairs]
            values[f"{prefix}/file_index"] = [p[1] for p in pairs]
        new_ep = np.asarray(values["episode_index"])
        starts, ends = np.asarray(values["dataset_from_index"]), np.asarray(values["dataset_to_index"])
        renumbered = {
            "episode_index": [st.vector_stats(np.full(b - a, e)) for e, a, b in zip(new_ep, starts, ends, strict=True)],
            "index": [st.vector_stats(np.arange(a, b)) for a, b in zip(starts, ends, strict=True)],
            "task_index": [st.vector_stats(fix.task_indices[int(e)]) for e in new_ep],
        }
        table = with_columns(table, {**values, **renumbered_stats(table, renumbered)})
        out = root / EPISODES_PATH.format(chunk_index=meta_last[0], file_index=meta_last[1])
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)
    src_info = load_json(src / INFO_PATH)
    pq.write_table(tasks_table(all_tasks), root / TASKS_PATH)
    total_eps = ep_offset + int(src_info["total_episodes"])
    info.update(total_episodes=total_eps, total_frames=frame_offset + int(src_info["total_frames"]),
                total_tasks=len(all_tasks), splits={"train": f"0:{total_eps}"})
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))


def _video_columns(info: dict[str, Any]) -> list[str]:
    return [f"videos/{k}/{c}" for k in video_keys(info["features"]) for c in ("chunk_index", "file_index")]


class DataFix:
    """A source's data table moved past the episodes and frames before it, its task indices into the joined
    list; keeps each (new) episode's task indices for its stats."""

    def __init__(self, ep_offset: int, frame_offset: int, task_map: dict[int, int]) -> None:
        self.ep_offset, self.frame_offset, self.task_map = ep_offset, frame_offset, task_map
        self.task_indices: dict[int, np.ndarray] = {}

    def __call__(self, table: pa.Table) -> pa.Table:
        ep = table.column("episode_index").to_numpy() + self.ep_offset
        task = np.asarray([self.task_map[int(t)] for t in table.column("task_index").to_numpy()], dtype=np.int64)
        for e in np.unique(ep):
            self.task_indices[int(e)] = np.concatenate([self.task_indices.get(int(e), task[:0]), task[ep == e]])
        return with_columns(table, {"episode_index": ep, "index": table.column("index").to_numpy() + self.frame_offset,
                                    "task_index": task})


def _copy_files(src: Path, root: Path, template: str, last: tuple[int, int] | None, cs: int, what: str,
                fix: Any) -> dict[tuple[int, int], tuple[int, int]]:
    """Copy every file of `src` named by `template` (in chunk/file order) to the next free numbers in `root`,
    passing parquet tables through `fix`; returns {(chunk, file) in src: (chunk, file) in root}."""
    mapping: dict[tuple[int, int], tuple[int, int]] = {}
    found = sorted(_files(src, template))
    if not found:
        raise DatasetError(f"{src}: no {what} files")
    for (chunk, file), path in found:
        last = next_chunk_file(*last, cs) if last is not None else (0, 0)
        mapping[(chunk, file)] = last
        out = root / template.format(chunk_index=last[0], file_index=last[1])
        out.parent.mkdir(parents=True, exist_ok=True)
        if fix is None:
            shutil.copyfile(path, out)
        else:
            pq.write_table(fix(read_parquet(path)), out)
    return mapping


def _files(root: Path, template: str) -> list[tuple[tuple[int, int], Path]]:
    """The files of `template` under `root`, with their (chunk, file) numbers."""
    folder = root / template.split("/chunk-")[0]
    out = []
    for path in folder.glob("chunk-*/file-*.*"):
        if path.suffix == Path(template).suffix and TMP_MARK not in path.name:
            out.append(((int(path.parent.name[6:]), int(path.stem[5:])), path))
    return out
