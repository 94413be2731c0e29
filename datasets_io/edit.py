"""A copy of a LeRobot v3 dataset without some episodes (a botched demonstration, a person in the frame).

The kept episodes are renumbered from 0 in their order; their frames, indices, tasks and stats follow, and the
global stats are aggregated again from the kept episodes (as LeRobot's `delete_episodes` does). Videos are
not re-encoded: where every kept episode of a file starts on a keyframe (twinarm and LeRobot encode each episode
on its own, so theirs do), the file is remuxed with only the kept episodes' packets, back to back, and the
deleted footage is gone; otherwise the file is copied whole and its deleted stretches stay unreferenced.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twinarm.datasets_io import stats as st
from twinarm.datasets_io.features import video_keys
from twinarm.datasets_io.layout import (
    DATA_DIR,
    EPISODES_DIR,
    INFO_PATH,
    LOCK_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    WRITE_ERRNOS,
    DatasetError,
    WriteLock,
    episode_seeds,
    load_json,
    read_parquet,
    set_episode_seeds,
    sorted_parquet_files,
)
from twinarm.datasets_io.writer import check_version, repair, tasks_table

T = TypeVar("T")

#: Columns renumbered by a deletion, so their per-episode stats are computed again.
RENUMBERED = ("episode_index", "index", "task_index")


def with_columns(table: pa.Table, values: Mapping[str, Sequence[Any] | np.ndarray]) -> pa.Table:
    """`table` with the named columns' values replaced, each keeping its field and type."""
    for name, v in values.items():
        i = table.column_names.index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(v, type=table.schema.field(i).type))
    return table


def renumbered_stats(table: pa.Table, stats: Mapping[str, Sequence[dict[str, np.ndarray]]]) -> dict[str, list[Any]]:
    """Values for an episodes table's `stats/<feature>/<stat>` columns of the renumbered `stats` features (one
    stats dict per row), for `with_columns`."""
    out: dict[str, list[Any]] = {}
    for c in table.column_names:
        feature, _, stat = c.removeprefix("stats/").rpartition("/")
        if c.startswith("stats/") and feature in stats:
            out[c] = [np.asarray(s[stat]).tolist() for s in stats[feature]]
    return out


def delete_episodes(src: str | Path, dst: str | Path, episodes: Iterable[int]) -> tuple[Path, list[str]]:
    """Copy the dataset at `src` to `dst` without `episodes` (indices in `src`). Returns `dst` and one line per
    video file whose deleted footage could not be cut out by remuxing (kept whole, unreferenced). The copy is
    built beside `dst` and renamed into place only when complete; any failure leaves no partial copy."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise DatasetError(f"{dst} exists: give a new folder for the edited dataset")
    check_version(load_json(src / INFO_PATH), src / INFO_PATH)
    drop = sorted({int(e) for e in episodes})
    if not drop:
        raise DatasetError("no episodes to delete were given")

    def edit(root: Path) -> list[str]:
        info = load_json(root / INFO_PATH)
        total = int(info["total_episodes"])
        bad = [e for e in drop if not 0 <= e < total]
        if bad:
            raise DatasetError(f"{src}: episode(s) {bad} do not exist (it has episodes 0..{total - 1})")
        if len(drop) == total:
            raise DatasetError(f"{src}: deleting all {total} episodes would leave an empty dataset")
        keep = [e for e in range(total) if e not in set(drop)]
        return _delete_in_copy(root, info, {old: new for new, old in enumerate(keep)})

    return dst, edited_copy(src, dst, edit)


def edited_copy(src: Path, dst: Path, edit: Callable[[Path], T]) -> T:
    """Copy `src` beside `dst` (under its write lock), finish an interrupted commit in the copy the way `dataset
    check --repair` would, run `edit(copy)`, and rename the copy to `dst` once it returns; on any failure (the
    copy itself included) no partial copy is left. Returns what `edit` returns."""
    tmp = dst.with_name(dst.name + ".editing")
    check_apart(dst, [src], tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        copy_unless_written(src, tmp)
        repair(tmp)
        result = edit(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        named = in_source_terms(exc, tmp, src, dst)
        if named is exc:
            raise
        raise named from None
    tmp.rename(dst)
    return result


def in_source_terms(exc: BaseException, tmp: Path, src: Path, dst: Path | None = None) -> BaseException:
    """`exc` naming the source `src` where it named its temp copy `tmp` (a folder the user never sees, gone by
    the time they read it), as a DatasetError; an error that does not name `tmp` is returned as it is. A write
    that failed in `tmp` (read-only, full) names the output `dst` instead: the source is not at fault."""
    if not isinstance(exc, DatasetError | OSError):
        return exc
    text = str(exc)
    names = sorted({str(tmp), str(tmp.resolve())}, key=len, reverse=True)
    why = _write_failure(exc, names)
    if why is not None and dst is not None:
        return DatasetError(f"{dst}: cannot write the result there ({why}); its folder {tmp.parent} must be "
                            f"writable, with room for a copy of {src}")
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):  # copytree: (from, to, why)
        text = f"{src}: cannot copy it: " + "; ".join(str(why) for *_, why in exc.args[0])
    elif not any(n in text for n in names):
        return exc
    for n in names:
        text = text.replace(n, str(src))
    return DatasetError(text)


def _write_failure(exc: BaseException, tmp_names: list[str]) -> str | None:
    """The reason (e.g. "Read-only file system") when `exc` is a failed write into the temp copy, else None."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):  # copytree: (from, to, why)
        whys = [why for _, to, why in exc.args[0] if any(str(to).startswith(n) for n in tmp_names)]
        hits = [w for w in whys if any(f"[Errno {e}]" in str(w) for e in WRITE_ERRNOS)]
        return str(hits[0]).split("] ", 1)[-1].split(":", 1)[0] if hits else None
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS and any(
            str(exc.filename or "").startswith(n) for n in tmp_names):
        return exc.strerror
    return None


def check_apart(out: str | Path, sources: Iterable[str | Path], tmp: Path | None = None) -> None:
    """Refuse an output equal to, inside or holding a source dataset (and a temp folder `tmp` that is one): the
    copy would be written into the data it is read from, or the source wiped with the temp folder."""
    o = Path(out).resolve()
    for s in sources:
        r = Path(s).resolve()
        if o == r:
            raise DatasetError(f"{out} is the source dataset {s}: write the result to a new path outside it")
        if r in o.parents:
            raise DatasetError(f"{out} is inside the source dataset {s}: write the result outside {s}")
        if o in r.parents:
            raise DatasetError(f"{out} holds the source dataset {s}: write the result to a path that does not "
                               f"contain {s}")
        t = tmp.resolve() if tmp is not None else None
        if t is not None and (t == r or t in r.parents):
            raise DatasetError(f"{out}: its temp folder {tmp} would replace the source dataset {s}; give the "
                               "result another name")


def copy_unless_written(src: Path, tmp: Path) -> None:
    """Copy the dataset, holding its write lock so no recording appends meanwhile (a dataset that twinarm never
    wrote has no lock file, and none is made in it)."""
    lock = WriteLock(src) if (src / LOCK_PATH).exists() else None
    if lock is not None and not lock.acquire():
        raise DatasetError(f"{src} is being written (a recording holds {src / LOCK_PATH}); edit it once that ends")
    try:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(Path(LOCK_PATH).name))
    finally:
        if lock is not None:
            lock.release()


def _delete_in_copy(root: Path, info: dict[str, Any], mapping: dict[int, int]) -> list[str]:
    episodes = _episode_rows(root)
    if [r["episode_index"] for r in episodes] != list(range(int(info["total_episodes"]))):
        raise DatasetError(f"{root / EPISODES_DIR}: episode rows are not 0..{info['total_episodes'] - 1}; "
                           "run `twinarm dataset check`")
    kept_rows = [episodes[old] for old in mapping]
    task_order = read_tasks(root)
    used = {t for r in kept_rows for t in r["tasks"]}
    new_tasks = [t for t in task_order if t in used]
    task_map = {task_order.index(t): i for i, t in enumerate(new_tasks)}
    spans, renumbered_stats = _rewrite_data(root, mapping, task_map)
    notes = _compact_videos(root, info, episodes, mapping)
    _rewrite_episodes(root, mapping, spans, renumbered_stats, {old: episodes[old] for old in mapping})
    pq.write_table(tasks_table(new_tasks), root / TASKS_PATH)
    aggregate_global_stats(root, info)
    info = {**info, "total_episodes": len(mapping), "total_frames": sum(b - a for a, b in spans.values()),
            "total_tasks": len(new_tasks), "splits": {"train": f"0:{len(mapping)}"}}
    (root / INFO_PATH).write_text(json.dumps(info, indent=4))
    seeds = episode_seeds(root)  # each kept episode's recorded sim seed, under its new index (`replay` reads them)
    set_episode_seeds(root, [seeds.get(old) for old in sorted(mapping, key=mapping.__getitem__)])
    return notes


def _episode_rows(root: Path) -> list[dict[str, Any]]:
    """Every episode's row of meta/episodes (without its stats), by episode index."""
    rows: list[dict[str, Any]] = []
    for path in sorted_parquet_files(root / EPISODES_DIR):
        table = read_parquet(path)
        rows += table.select([c for c in table.column_names if not c.startswith("stats/")]).to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


def read_tasks(root: Path) -> list[str]:
    t = read_parquet(root / TASKS_PATH)
    order = np.argsort(np.asarray(t.column("task_index")))
    return [t.column("task")[int(i)].as_py() for i in order]


def _rewrite_data(root: Path, mapping: dict[int, int], task_map: dict[int, int]
                  ) -> tuple[dict[int, tuple[int, int]], dict[int, dict[str, dict[str, np.ndarray]]]]:
    """Drop the deleted episodes' rows, renumber the rest; returns each new episode's [from, to) frame span and
    the stats of its renumbered columns."""
    start = 0
    spans: dict[int, tuple[int, int]] = {}
    stats: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    last = -1
    for path in sorted_parquet_files(root / DATA_DIR):
        table = read_parquet(path)
        old_ep = table.column("episode_index").to_numpy()
        if old_ep.size and (np.any(np.diff(old_ep) < 0) or old_ep[0] < last):
            raise DatasetError(f"{path}: frames are not in episode order; twinarm edits datasets whose data files "
                               "hold episodes in order (as LeRobot and twinarm write them)")
        last = int(old_ep[-1]) if old_ep.size else last
        rows = np.flatnonzero(np.isin(old_ep, list(mapping)))
        if rows.size == 0:
            path.unlink()
            continue
        table = table.take(pa.array(rows))
        new_ep = np.asarray([mapping[int(e)] for e in old_ep[rows]], dtype=np.int64)
        index = np.arange(start, start + rows.size, dtype=np.int64)
        task = np.asarray([task_map[int(t)] for t in table.column("task_index").to_numpy()], dtype=np.int64)
        table = with_columns(table, {"episode_index": new_ep, "index": index, "task_index": task})
        pq.write_table(table, path)
        for e in np.unique(new_ep):
            sel = new_ep == e
            pos = index[sel]
            spans[int(e)] = (int(pos[0]), int(pos[-1]) + 1)
            stats[int(e)] = {name: st.vector_stats(v[sel]) for name, v in
                             (("episode_index", new_ep), ("index", index), ("task_index", task))}
        start += rows.size
    return spans, stats


def _rewrite_episodes(root: Path, mapping: dict[int, int], spans: dict[int, tuple[int, int]],
                      renumbered: dict[int, dict[str, dict[str, np.ndarray]]], kept: dict[int, dict[str, Any]]) -> None:
    """Keep the kept episodes' rows, renumbered, with their frame spans, video times and renumbered stats."""
    for path in sorted_parquet_files(root / EPISODES_DIR):
        table = read_parquet(path)
        old = table.column("episode_index").to_numpy()
        rows = [i for i, e in enumerate(old) if int(e) in mapping]
        if not rows:
            path.unlink()
            continue
        table = table.take(pa.array(rows, type=pa.int64()))
        news = [mapping[int(old[i])] for i in rows]
        values: dict[str, list[Any]] = {
            "episode_index": news,
            "dataset_from_index": [spans[n][0] for n in news],
            "dataset_to_index": [spans[n][1] for n in news],
        }
        for c in table.column_names:
            if c.startswith("videos/") and c.endswith("_timestamp"):
                values[c] = [kept[int(old[i])][c] for i in rows]
        values.update(renumbered_stats(table, {name: [renumbered[n][name] for n in news] for name in RENUMBERED}))
        pq.write_table(with_columns(table, values), path)


def aggregate_global_stats(root: Path, info: dict[str, Any]) -> None:
    """Global stats: LeRobot's aggregate of the kept episodes' stats (features without per-episode stats keep theirs)."""
    per_episode: list[dict[str, dict[str, np.ndarray]]] = []
    for path in sorted_parquet_files(root / EPISODES_DIR):
        table = read_parquet(path)
        cols = [c for c in table.column_names if c.startswith("stats/")]
        data = {c: table.column(c).to_pylist() for c in cols}
        for r in range(table.num_rows):
            ep: dict[str, dict[str, np.ndarray]] = {}
            for c in cols:
                feature, stat = c[len("stats/"):].rsplit("/", 1)
                ep.setdefault(feature, {})[stat] = np.asarray(data[c][r])
            per_episode.append(ep)
    stats = load_json(root / STATS_PATH) if (root / STATS_PATH).is_file() else {}
    stats.update(st.to_jsonable({k: v for k, v in st.aggregate(per_episode).items() if k in info["features"]}))
    (root / STATS_PATH).write_text(json.dumps(stats, indent=4))


def _compact_videos(root: Path, info: dict[str, Any], episodes: list[dict[str, Any]], mapping: dict[int, int]) -> list[str]:
    """Remux every video file to hold only its kept episodes, back to back, updating their rows' timestamps in
    `episodes`; files with nothing kept are removed. Returns a line per file kept whole."""
    notes: list[str] = []
    fps = int(info["fps"])
    for key in video_keys(info["features"]):
        files: dict[tuple[int, int], list[int]] = {}
        for r in episodes:
            files.setdefault((r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]), []).append(r["episode_index"])
        for (chunk, file), eps in files.items():
            path = root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            kept = sorted((e for e in eps if e in mapping), key=lambda e: episodes[e][f"videos/{key}/from_timestamp"])
            if len(kept) == len(eps):
                continue
            if not kept:
                path.unlink()
                continue
            times = [(episodes[e][f"videos/{key}/from_timestamp"], episodes[e][f"videos/{key}/to_timestamp"]) for e in kept]
            starts = _remux_segments(path, times, [episodes[e]["length"] for e in kept], fps)
            if starts is None:
                notes.append(f"{path.relative_to(root)}: an episode does not start on a keyframe; the file is kept "
                             "whole (the deleted episodes' frames stay in it, unreferenced)")
                continue
            for e, s, (a, b) in zip(kept, starts, times, strict=True):
                episodes[e][f"videos/{key}/from_timestamp"] = s
                episodes[e][f"videos/{key}/to_timestamp"] = s + (b - a)
    return notes


def _remux_segments(path: Path, times: list[tuple[float, float]], lengths: list[int], fps: int) -> list[float] | None:
    """Rewrite `path` with only the packets of `times` ([from, to) seconds), back to back, without re-encoding.
    Returns each segment's new start in seconds, or None (file untouched) unless every segment starts on a
    keyframe and holds exactly its episode's frame count."""
    import av

    half = 0.5 / fps
    tmp = path.with_name(path.name + ".remux.mp4")
    with av.open(str(path)) as inp:
        ist = inp.streams.video[0]
        tb = ist.time_base
        segments: list[list[Any]] = [[] for _ in times]
        for pkt in inp.demux(ist):
            if pkt.pts is None or pkt.dts is None:
                continue
            t = float(pkt.pts * tb)
            for k, (a, b) in enumerate(times):
                if a - half <= t < b - half:
                    segments[k].append(pkt)
        for seg, n in zip(segments, lengths, strict=True):
            if len(seg) != n or not min(seg, key=lambda p: p.pts).is_keyframe:
                return None
        starts: list[float] = []
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as out:
            ost = out.add_stream_from_template(ist, opaque=True)  # remux: no codec is opened
            offset = 0
            for seg, (a, _), n in zip(segments, times, lengths, strict=True):
                start = Fraction(offset, fps)
                shift = int(round((start - Fraction(a)) / tb))
                for pkt in seg:
                    pkt.pts += shift
                    pkt.dts += shift
                    pkt.stream = ost
                    out.mux(pkt)
                starts.append(float(start))
                offset += n
    tmp.replace(path)
    return starts
