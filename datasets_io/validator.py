"""`check_dataset`: every rule LeRobot's v3 loader relies on, checked file by file with named problems."""

from __future__ import annotations

import string
import warnings
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twinarm.datasets_io import stats as st
from twinarm.datasets_io.depth import depth_format
from twinarm.datasets_io.features import (
    ALL_DTYPES,
    DEPTH_PIX_FMT,
    VISUAL_DTYPES,
    arrow_type,
    depth_keys,
    video_keys,
)
from twinarm.datasets_io.layout import (
    DEFAULT_FEATURES,
    INFO_PATH,
    JOURNAL_PATH,
    STATS_PATH,
    TASKS_PATH,
    TMP_MARK,
    DatasetError,
    frame_times,
    load_json,
    sorted_parquet_files,
)
from twinarm.datasets_io.meta import column_to_numpy, no_episode_yet, not_a_folder
from twinarm.datasets_io.video import build_index

INFO_KEYS = (
    "codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks", "chunks_size",
    "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path", "robot_type", "splits",
)
EPISODE_COLUMNS = (
    "episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index",
    "meta/episodes/chunk_index", "meta/episodes/file_index",
)
VIDEO_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")


class NoActionWarning(UserWarning):
    """A dataset without an `action` feature: valid (an observation-only recording), but no policy trains on it."""


class Report:
    """Problems found, each naming the file (relative to the root) it concerns."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []

    def add(self, path: Path | str, msg: str) -> None:
        rel = Path(path).relative_to(self.root) if Path(path).is_absolute() else Path(path)
        self.problems.append(f"{rel}: {msg}")

    @property
    def ok(self) -> bool:
        return not self.problems


def _template_fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def _check_info(rep: Report, info: dict[str, Any]) -> bool:
    p = rep.root / INFO_PATH
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        rep.add(p, f"missing key(s) {missing}")
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        rep.add(p, f"codebase_version {version!r} is not v3.x")
        return False
    feats = info.get("features")
    if not isinstance(feats, dict) or not feats:
        rep.add(p, "features must be a non-empty mapping")
        return False
    for name, ft in feats.items():
        if "/" in name:
            rep.add(p, f"feature {name!r}: names may not contain '/'")
        if not isinstance(ft, dict) or not {"dtype", "shape"} <= set(ft):
            rep.add(p, f"feature {name!r}: needs dtype and shape")
            continue
        if "names" not in ft:
            rep.add(p, f"feature {name!r}: missing 'names' (may be null)")
        if ft["dtype"] not in ALL_DTYPES:
            rep.add(p, f"feature {name!r}: unknown dtype {ft['dtype']!r}")
        shape = ft["shape"]
        if not isinstance(shape, list | tuple) or not shape or not all(isinstance(s, int) and s > 0 for s in shape):
            rep.add(p, f"feature {name!r}: shape must be a list of positive ints, got {shape!r}")
        elif ft["dtype"] in VISUAL_DTYPES and len(shape) != 3:
            rep.add(p, f"feature {name!r}: {ft['dtype']} shape must be (height, width, channels), got {shape}")
    for name, ft in DEFAULT_FEATURES.items():
        got = feats.get(name)
        if got is None:
            rep.add(p, f"default feature {name!r} is missing")
        elif got.get("dtype") != ft["dtype"] or list(got.get("shape", [])) != ft["shape"]:
            rep.add(p, f"default feature {name!r} must be {ft['dtype']} {ft['shape']}, got {got.get('dtype')} {got.get('shape')}")
    if not isinstance(info.get("fps"), int) or info["fps"] <= 0:
        rep.add(p, f"fps must be a positive int, got {info.get('fps')!r}")
    dp = info.get("data_path", "")
    if not isinstance(dp, str) or _template_fields(dp) != {"chunk_index", "file_index"}:
        rep.add(p, f"data_path must use {{chunk_index}} and {{file_index}}, got {dp!r}")
    vkeys = video_keys(feats)
    vp = info.get("video_path")
    if vkeys and (not isinstance(vp, str) or _template_fields(vp) != {"video_key", "chunk_index", "file_index"}):
        rep.add(p, f"video_path must use {{video_key}}, {{chunk_index}}, {{file_index}} when there are videos, got {vp!r}")
    for k in vkeys:
        if not isinstance(feats[k].get("info"), dict):
            rep.add(p, f"video feature {k!r} has no 'info' block")
    for k in depth_keys(feats):
        try:
            depth_format(feats[k])
        except (ValueError, TypeError) as exc:
            rep.add(p, f"depth feature {k!r}: {exc}")
    return rep.ok  # splits are checked once the episodes are counted (a wrong total_episodes comes first)


def _check_fps(rep: Report, info: dict[str, Any], episode_ts: list[np.ndarray], tol: float) -> float:
    """One problem when info.json's fps disagrees with its videos' video.fps or with the spacing every episode's
    timestamps share; returns the rate the per-episode checks then use (the timestamps', or fps)."""
    fps = info["fps"]
    diffs = np.concatenate([np.diff(ts.astype(np.float64)) for ts in episode_ts] or [np.zeros(0)])
    spacing = float(np.median(diffs)) if diffs.size else 0.0
    shared = spacing > 0 and abs(spacing - 1.0 / fps) > tol and bool(np.all(np.abs(diffs - spacing) <= tol))
    vfps = {k: ft["info"].get("video.fps") for k, ft in info["features"].items()
            if ft.get("dtype") == "video" and isinstance(ft.get("info"), dict)}
    off = sorted({v for v in vfps.values() if isinstance(v, int | float) and abs(v - fps) > 1e-6})
    if not shared and not off:
        return fps
    what = []
    if off:
        what.append("video.fps " + ", ".join(f"{v:g}" for v in off))
    if shared:
        what.append(f"the timestamps' spacing (1/{1.0 / spacing:.4g} s)")
    true = (1.0 / spacing) if shared else off[0]
    rep.add(rep.root / INFO_PATH, f"fps {fps} disagrees with {' and '.join(what)}: if the episodes were recorded at "
                                  f"{true:.4g} fps, set fps to {true:.4g} in {INFO_PATH}")
    return (1.0 / spacing) if shared else fps


def _read(rep: Report, path: Path, columns: list[str] | None = None) -> pa.Table | None:
    if not path.is_file():
        rep.add(path, "file not found")
        return None
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        rep.add(path, f"corrupt parquet ({exc})")
        return None


def _data_rows(files: list[Path]) -> int | None:
    """Rows in these parquet files, from their footers (None if one is unreadable: the data checks say why)."""
    try:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except (pa.ArrowInvalid, OSError):
        return None


def check_dataset(root: str | Path, deep: bool = False) -> list[str]:
    """Return the list of problems (empty if the dataset is valid). `deep` also decodes every image/video frame."""
    root = Path(root)
    if (why := not_a_folder(root)) is not None:
        return [why]
    rep = Report(root)
    if (root / JOURNAL_PATH).exists():
        rep.add(root / JOURNAL_PATH, "an episode commit was interrupted (run `twinarm dataset check --repair`)")
    for tmp in root.rglob(f"*{TMP_MARK}*"):
        rep.add(tmp, "leftover temp file of an interrupted write (run `twinarm dataset check --repair`)")
    try:
        info = load_json(root / INFO_PATH)
    except DatasetError as exc:
        rep.problems.append(f"{INFO_PATH}: {str(exc).split(': ', 1)[-1]}")
        return rep.problems
    if not _check_info(rep, info):
        return rep.problems
    if "action" not in info["features"]:
        warnings.warn(NoActionWarning(f"{root}: has no 'action' feature, so no LeRobot policy can train on it "
                                      "(fine for an observation-only dataset)"), stacklevel=2)
    if (why := no_episode_yet(root, info)) is not None:
        rep.problems.append(why)
        return rep.problems
    feats = info["features"]
    vkeys = video_keys(feats)
    dkeys = depth_keys(feats)

    # tasks
    tasks = _read(rep, root / TASKS_PATH)
    n_tasks = 0
    if tasks is not None:
        index = (tasks.schema.pandas_metadata or {}).get("index_columns")
        if not {"task_index", "task"} <= set(tasks.column_names):
            rep.add(root / TASKS_PATH, f"needs columns 'task' (pandas index) and 'task_index', has {tasks.column_names}")
        elif index != ["task"]:  # without it LeRobot's pandas read makes the task strings a column, not the index
            rep.add(root / TASKS_PATH, f"'task' must be the pandas index (schema metadata index_columns), got {index}")
        else:
            ti = np.sort(np.asarray(tasks.column("task_index")))
            n_tasks = len(ti)
            if not np.array_equal(ti, np.arange(n_tasks)):
                rep.add(root / TASKS_PATH, f"task_index must be 0..{n_tasks - 1}")
            names = tasks.column("task").to_pylist()
            if len(set(names)) != len(names):
                rep.add(root / TASKS_PATH, "task strings must be unique")
            if n_tasks != info["total_tasks"]:
                rep.add(root / INFO_PATH, f"total_tasks is {info['total_tasks']} but tasks.parquet has {n_tasks}")

    # episodes
    ep_files = sorted_parquet_files(root / "meta/episodes")
    if not ep_files:
        rep.add(root / "meta/episodes", "no episodes parquet files")
        return rep.problems
    need = list(EPISODE_COLUMNS) + [f"videos/{k}/{c}" for k in vkeys for c in VIDEO_COLUMNS]
    eps_parts = []
    file_of_ep: list[Path] = []  # the meta/episodes file of each episode row, to name it
    for f in ep_files:
        t = _read(rep, f)
        if t is None:
            continue
        missing = [c for c in need if c not in t.column_names]
        if missing:
            rep.add(f, f"missing column(s) {missing}")
            continue
        stat_cols = [c for c in t.column_names if c.startswith("stats/")]
        if not stat_cols:
            rep.add(f, "no per-episode stats/<feature>/<stat> columns")
        _check_finite_episode_stats(rep, f, t, stat_cols)
        eps_parts.append(t.select(need))
        file_of_ep += [f] * t.num_rows
        cf = t.select(["meta/episodes/chunk_index", "meta/episodes/file_index"]).to_pylist()
        expect = f"chunk-{cf[0]['meta/episodes/chunk_index']:03d}/file-{cf[0]['meta/episodes/file_index']:03d}.parquet"
        if cf and not str(f).endswith(expect):
            rep.add(f, f"rows say they live in meta/episodes/{expect}")
    if not eps_parts or not rep.ok:
        return rep.problems
    eps = pa.concat_tables(eps_parts)
    E = eps.num_rows
    col = {c: column_to_numpy(eps.column(c), f"meta/episodes:{c}") for c in need if c != "tasks"}
    if not np.array_equal(col["episode_index"], np.arange(E)):
        rep.add(root / "meta/episodes", "episode_index must run 0..E-1 in file order")
    if E != info["total_episodes"]:
        rep.add(root / INFO_PATH, f"total_episodes is {info['total_episodes']} but meta/episodes has {E} rows")
    splits = info.get("splits")
    if isinstance(splits, dict) and splits and E > 0 and splits.get("train") != f"0:{E}":
        rep.add(root / INFO_PATH, f"splits.train should be '0:{E}' (the {E} episodes), got {splits.get('train')!r}")
    frm, to, length = col["dataset_from_index"], col["dataset_to_index"], col["length"]
    bad = np.flatnonzero((to - frm != length) | (length <= 0))
    for e in bad[:3]:
        rep.add(file_of_ep[e], f"episode {e}: length {length[e]} but dataset_from_index..dataset_to_index is "
                               f"{frm[e]}..{to[e]} (length must be their difference, > 0)")
    if len(bad) > 3:
        rep.add(root / "meta/episodes", f"{len(bad) - 3} more episodes whose length is not dataset_to_index - "
                                        "dataset_from_index")
    if E and (frm[0] != 0 or np.any(frm[1:] != to[:-1])):
        rep.add(root / "meta/episodes", "episodes must tile the frames: dataset_from_index[e] == dataset_to_index[e-1]")
    total = int(to[-1]) if E else 0
    data_files = sorted_parquet_files(root / "data")
    n_rows = _data_rows(data_files) if data_files else None
    if n_rows is not None and total > n_rows and info["total_frames"] == total:
        rep.add(root / "data", f"the data files hold {n_rows} rows but meta/episodes and info.json total_frames "
                               f"say {total}: rows are missing from the data")
    elif n_rows is not None and total > n_rows:  # an episode row is wrong, not the data nor info.json
        for e in np.flatnonzero(to > n_rows):
            rep.add(file_of_ep[e], f"episode {e}: dataset_to_index {to[e]} runs past the data, whose files hold "
                                   f"{n_rows} rows")
    elif n_rows is not None and total < n_rows:
        rep.add(file_of_ep[-1], f"the episodes end at row {total} (episode {E - 1}) but the data files hold {n_rows} "
                                "rows")
    if total != info["total_frames"] and info["total_frames"] != n_rows:
        rep.add(root / INFO_PATH, f"total_frames is {info['total_frames']} but episodes end at {total}")
    task_names = set(tasks.column("task").to_pylist()) if tasks is not None and "task" in tasks.column_names else set()
    for e, tl in enumerate(eps.column("tasks").to_pylist()):
        unknown = [t for t in (tl or []) if t not in task_names]
        if unknown:
            rep.add(root / "meta/episodes", f"episode {e}: tasks {unknown} are not in tasks.parquet")

    # data files
    if not data_files:
        rep.add(root / "data", "no data parquet files")
        return rep.problems
    tab_keys = [k for k, ft in feats.items() if ft["dtype"] != "video"]
    num = {k: [] for k in ("index", "episode_index", "frame_index", "timestamp", "task_index")}
    file_of_row: list[np.ndarray] = []
    images: dict[str, list[pa.Array]] = {k: [] for k, ft in feats.items() if ft["dtype"] == "image"}
    undeclared: dict[str, Path] = {}  # column -> the first data file that has it
    for fi, f in enumerate(data_files):
        t = _read(rep, f)
        if t is None:
            continue
        for c in t.column_names:
            if c not in feats:
                undeclared.setdefault(c, f)
        for k in tab_keys:
            if k not in t.column_names:
                rep.add(f, f"missing column {k!r} (feature in info.json)")
                continue
            want, got = arrow_type(feats[k]), t.schema.field(k).type
            as_list = pa.types.is_list(got) or pa.types.is_large_list(got)
            if got != want and not (pa.types.is_fixed_size_list(want) and as_list and got.value_type == want.value_type):
                rep.add(f, f"column {k!r} has type {got}, expected {want} for {feats[k]['dtype']} {feats[k]['shape']}")
            elif as_list and t.num_rows:
                lens = np.unique(np.asarray(pc.list_value_length(t.column(k).combine_chunks())))
                if lens.tolist() != [feats[k]["shape"][0]]:
                    rep.add(f, f"column {k!r} rows have lengths {lens.tolist()}, expected {feats[k]['shape'][0]}")
        for k in num:
            if k in t.column_names:
                num[k].append(column_to_numpy(t.column(k), f"{f}:{k}"))
        for k in images:
            if k in t.column_names:
                c = t.column(k).combine_chunks()
                images[k].append(c.field("bytes") if pa.types.is_struct(c.type) else c)
        file_of_row.append(np.full(t.num_rows, fi))
    for c, f in undeclared.items():  # a reader going by info.json (LeRobot's, twinarm train's) never sees it
        rep.add(f, f"column {c!r} is not a feature in {INFO_PATH}, so readers leave it out: declare it under "
                   "features there, or remove the column")
    if not rep.ok:
        return rep.problems
    d = {k: np.concatenate(v) for k, v in num.items()}
    fof = np.concatenate(file_of_row)
    if len(d["index"]) != total:
        rep.add(root / "data", f"data files hold {len(d['index'])} rows but the episodes cover {total} frames")
        return rep.problems
    if not np.array_equal(d["index"], np.arange(total)):
        rep.add(root / "data", "column 'index' must run 0..N-1 across data files in sorted path order")
        return rep.problems
    tol = 1e-4
    rate = _check_fps(rep, info, [d["timestamp"][int(a):int(b)] for a, b in zip(frm, to, strict=True)], tol)
    for e in range(E):
        a, b = int(frm[e]), int(to[e])
        if np.any(d["episode_index"][a:b] != e):
            rep.add(root / "data", f"episode {e}: rows {a}..{b - 1} do not all have episode_index {e}")
        if not np.array_equal(d["frame_index"][a:b], np.arange(b - a)):
            rep.add(root / "data", f"episode {e}: frame_index must run 0..{b - a - 1}")
        ts = frame_times(d["timestamp"][a:b], np.arange(b - a), rate)
        if b - a > 1 and np.any(np.abs(np.diff(ts) - 1.0 / rate) > tol):
            rep.add(root / "data", f"episode {e}: timestamps are not spaced 1/fps = {1.0 / rate:.6f} s apart")
        files = {int(x) for x in np.unique(fof[a:b])}
        expect = root / info["data_path"].format(chunk_index=int(col["data/chunk_index"][e]),
                                                 file_index=int(col["data/file_index"][e]))
        if {data_files[i] for i in files} != {expect}:
            rep.add(expect, f"episode {e}: its rows are in {[str(data_files[i].relative_to(root)) for i in files]}")
    if np.any((d["task_index"] < 0) | (d["task_index"] >= max(n_tasks, 1))):
        rep.add(root / "data", f"task_index values outside 0..{n_tasks - 1}")

    # images embedded in parquet
    for k, parts in images.items():
        arr = pa.concat_arrays(parts)
        rows = range(total) if deep else sorted({int(x) for x in frm} | {int(x) - 1 for x in to})
        h, w, c = feats[k]["shape"]
        for r in rows:
            raw = arr[r].as_py()
            img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED) if raw else None
            if img is None:
                rep.add(root / "data", f"feature {k!r}, frame {r}: image bytes are missing or not decodable")
                break
            if img.shape[:2] != (h, w):
                rep.add(root / "data", f"feature {k!r}, frame {r}: image is {img.shape[:2]}, info.json says {(h, w)}")
                break

    # videos
    for k in vkeys:
        by_file: dict[Path, list[int]] = {}
        for e in range(E):
            p = root / info["video_path"].format(video_key=k, chunk_index=int(col[f"videos/{k}/chunk_index"][e]),
                                                 file_index=int(col[f"videos/{k}/file_index"][e]))
            by_file.setdefault(p, []).append(e)
        h, w, _ = feats[k]["shape"]
        for p, ep_list in by_file.items():
            if not p.is_file():
                rep.add(p, f"video of episodes {ep_list} not found")
                continue
            try:
                with av.open(str(p)) as cont:
                    s = cont.streams.video[0]
                    if (s.codec_context.height, s.codec_context.width) != (h, w):
                        rep.add(p, f"frames are {s.codec_context.height}x{s.codec_context.width}, info.json says {h}x{w}")
                    if k in dkeys and s.codec_context.pix_fmt != DEPTH_PIX_FMT:
                        rep.add(p, f"depth camera {k!r} (is_depth_map) is {s.codec_context.pix_fmt}; LeRobot writes "
                                   f"depth videos as {DEPTH_PIX_FMT} 12-bit codes")
                    idx = build_index(cont, p)
                    if deep:  # a decoding error is reported beside, not instead of, the per-episode frame checks
                        n_dec = 0
                        try:
                            for _ in cont.decode(s):
                                n_dec += 1
                        except av.error.FFmpegError as exc:
                            rep.add(p, f"decoding fails after {n_dec} of the {len(idx.times)} frames it lists ({exc})")
                        else:
                            if n_dec != len(idx.times):
                                rep.add(p, f"decoded {n_dec} frames, container lists {len(idx.times)}")
            except (av.error.FFmpegError, DatasetError, IndexError) as exc:
                rep.add(p, f"unreadable video ({exc})")
                continue
            for e in ep_list:
                a, b = int(frm[e]), int(to[e])
                f0, f1 = float(col[f"videos/{k}/from_timestamp"][e]), float(col[f"videos/{k}/to_timestamp"][e])
                if f1 - f0 < (b - a) / rate - tol:
                    rep.add(p, f"episode {e}: from/to_timestamp span {f1 - f0:.4f} s but it has {b - a} frames")
                q = f0 + frame_times(d["timestamp"][a:b], np.arange(b - a), rate)
                j = np.clip(np.searchsorted(idx.times, q), 1, max(len(idx.times) - 1, 1))
                near = np.minimum(np.abs(idx.times[j] - q), np.abs(idx.times[j - 1] - q)) if len(idx.times) > 1 \
                    else np.abs(idx.times[0] - q)
                bad = np.flatnonzero(near >= tol)
                if len(bad) and np.all(q[bad] > idx.times[-1]):
                    rep.add(p, f"episode {e}: {len(bad)} frame(s) from t={q[bad[0]]:.4f} s are past the video's end "
                               f"at t={idx.times[-1]:.4f} s: the video has fewer frames than the data (truncated?)")
                elif len(bad):
                    rep.add(p, f"episode {e}: {len(bad)} frame(s) have no video frame within {tol} s "
                               f"(first at t={q[bad[0]]:.4f} s)")

    # stats
    if not (root / STATS_PATH).is_file():
        rep.add(root / STATS_PATH, "file not found (LeRobot normalizes with it)")
    else:
        try:
            stats = load_json(root / STATS_PATH)
        except DatasetError as exc:  # the one problem: no feature's stats can be read
            rep.add(root / STATS_PATH, str(exc).split(": ", 1)[-1] + "; restore the file from a copy or the Hub "
                                       "(LeRobot normalizes with it)")
            return rep.problems
        for k, ft in feats.items():
            if ft["dtype"] == "string":
                continue
            s = stats.get(k)
            if s is None:
                rep.add(root / STATS_PATH, f"no stats for feature {k!r}")
                continue
            want = (ft["shape"][2], 1, 1) if ft["dtype"] in VISUAL_DTYPES else tuple(ft["shape"])
            for sk in ("min", "max", "mean", "std"):
                if sk not in s:
                    rep.add(root / STATS_PATH, f"{k}: missing {sk!r}")
                elif np.asarray(s[sk]).shape != want:
                    rep.add(root / STATS_PATH, f"{k}.{sk}: shape {np.asarray(s[sk]).shape}, expected {want}")
            if "count" in s and np.asarray(s["count"]).shape != (1,):
                rep.add(root / STATS_PATH, f"{k}.count: shape must be (1,)")
            _check_finite_stats(rep, root / STATS_PATH, k, s)
    return rep.problems


def _check_finite_episode_stats(rep: Report, path: Path, t: pa.Table, stat_cols: list[str]) -> None:
    """Name the per-episode stats columns holding NaN, inf or nulls, with the episodes: LeRobot aggregates them into
    meta/stats.json when it merges or splits datasets, so one such episode spoils the normalization."""
    episodes = t.column("episode_index").to_pylist() if "episode_index" in t.column_names else None
    for c in stat_cols:
        bad = []
        for row, value in enumerate(t.column(c).to_pylist()):
            try:
                ok = bool(np.isfinite(np.asarray(value, dtype=np.float64)).all())
            except (TypeError, ValueError):
                ok = False  # not numbers at all (strings, ragged lists)
            if not ok:
                bad.append(episodes[row] if episodes is not None else f"row {row}")
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            rep.add(path, f"{c}: episode(s) {', '.join(map(str, bad[:5]))}{more} hold NaN, inf or no numbers: "
                          "merging or splitting the dataset aggregates them into meta/stats.json, which a policy "
                          "normalizes with")


def _check_finite_stats(rep: Report, path: Path, key: str, s: dict[str, Any]) -> None:
    """Name the stats of `key` that are not all finite numbers: a policy normalized with a NaN mean or an
    inf std trains on NaN (the data behind them holds NaN or inf values)."""
    bad = []
    for sk in st.STAT_KEYS:
        if sk not in s:
            continue
        try:
            ok = bool(np.isfinite(np.asarray(s[sk], dtype=np.float64)).all())
        except (TypeError, ValueError):
            ok = False  # not numbers at all (strings, ragged lists)
        if not ok:
            bad.append(sk)
    if bad:
        rep.add(path, f"{key}: {', '.join(bad)} hold NaN or inf (or no numbers): a policy normalized with them "
                      "trains on NaN; the feature's data holds non-finite values")
