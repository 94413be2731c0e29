"""`DatasetWriter`: records episodes into a LeRobot v3.0 dataset, one crash-safe commit per episode.

Each `save_episode()` writes every changed file (video, data, episodes, tasks, stats, info) under a temp
name (fsynced), records the planned renames in a journal, renames them into place (tasks, data, videos,
episodes, stats, info.json last) and removes the journal. A kill or power cut at any moment leaves either the
previous episode's state or a journal that `repair()` rolls forward, so twinarm always reads the finished
episodes: every twinarm reader and `DatasetWriter.resume()` runs `repair()` on open.

LeRobot does not know the journal. Outside a commit, and after a kill before the journal was written, the
dataset is a plain LeRobot v3 dataset. After a kill inside the rename window (journal present) it may not be:
the data parquet can already hold the new episode's rows while meta/episodes and info.json do not list it,
and LeRobot, which counts frames by the data files' rows, then fails on those rows. Such a dataset must be
repaired by twinarm (`twinarm dataset check --repair`, or opening it with any twinarm reader or writer)
before LeRobot reads it; no rename order makes both sides consistent without the journal.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from twinarm.datasets_io import stats as st
from twinarm.datasets_io.features import (
    camera_keys,
    check_features,
    check_no_depth,
    data_schema,
    image_keys,
    validate_frame,
    video_keys,
    with_default_features,
)
from twinarm.datasets_io.layout import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILES_SIZE_IN_MB,
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    INFO_PATH,
    JOURNAL_PATH,
    STATS_PATH,
    TASKS_PATH,
    TMP_MARK,
    VIDEO_FILES_SIZE_IN_MB,
    VIDEO_PATH,
    DatasetError,
    WriteLock,
    fsync_dir,
    fsync_file,
    json_bytes,
    load_json,
    next_chunk_file,
    read_parquet,
    sorted_parquet_files,
    tmp_path_for,
    write_bytes_tmp,
    write_json_atomic,
    write_parquet_tmp,
)
from twinarm.datasets_io.video import (
    CODECS,
    EpisodeEncoder,
    ThreadedEncoder,
    check_frame_size,
    concatenate,
    encoder_options,
    video_info,
)

MB = 1024 * 1024


def check_version(info: dict[str, Any], where: Path) -> None:
    """Raise DatasetError unless the dataset is LeRobot format v3.x."""
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        root = where.parent.parent if where.name == "info.json" and where.parent.name == "meta" else where
        hint = (" (v2.x: convert it in place with LeRobot: `python -m lerobot.scripts.convert_dataset_v21_to_v30 "
                f"--repo-id OWNER/NAME --root {root} --push-to-hub=false`)") if version.startswith("v2") else ""
        raise DatasetError(f"{where}: unknown dataset version {version!r}; twinarm reads LeRobot v3.x{hint}")


def check_fps(fps: Any) -> int:
    """`fps` as the positive int LeRobot's info.json holds; refuses 29.97 rather than store 29 (the videos and
    timestamps would then run at another rate than the recording)."""
    if isinstance(fps, (bool, np.bool_)) or not isinstance(fps, (int, float, np.integer, np.floating)) \
            or not np.isfinite(fps) or fps != int(fps):
        raise DatasetError(f"fps must be a whole number of frames per second (LeRobot stores an int), got {fps!r}")
    if fps <= 0:
        raise DatasetError(f"fps must be positive, got {fps!r}")
    return int(fps)


def check_folder(root: Path) -> None:
    """Raise DatasetError naming the path when `root`, or a folder above it, is a file: a dataset is a folder."""
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == root else f"is inside {p}, which is a file"
                raise DatasetError(f"{root} {what}; give a folder (new, or empty) for the dataset")
            return


def resume_codec(info: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The video codec and encoder options that appending to a dataset with this info.json keeps."""
    vkeys = video_keys(info["features"])
    if not vkeys:
        return "h264", encoder_options("h264")
    vinfo = info["features"][vkeys[0]].get("info", {})
    codec = {"libx264": "h264", "libsvtav1": "av1", "libaom-av1": "av1", "libx265": "hevc"}.get(
        vinfo.get("video.codec", "h264"), vinfo.get("video.codec", "h264"))
    if codec not in CODECS:
        codec = "h264"
    return codec, encoder_options(codec, crf=vinfo.get("video.crf"), gop=vinfo.get("video.g"),
                                  preset=None if codec != vinfo.get("video.codec") else vinfo.get("video.preset"))


def repair(root: Path) -> bool:
    """Finish an interrupted commit (roll the journal forward) and delete stray temp files.

    Returns True if anything was changed. Safe to call on any dataset root. A dataset that cannot be written
    (a read-only copy or mount) is left exactly as it is, so nothing is lost: with a journal whose renames have
    not started (or all happened), it reads as the last complete commit and a warning says how to finish the
    interrupted one; a commit stopped halfway through its renames leaves files that disagree, and that raises a
    DatasetError saying to run `twinarm dataset check --repair` on a writable copy.
    """
    root = Path(root)
    if not (root / JOURNAL_PATH).exists() and not any(root.rglob(f"*{TMP_MARK}*")):
        return False  # nothing to do: never write into a dataset that is only being read
    lock = WriteLock(root)
    try:
        if not (root / "meta").is_dir() or not lock.acquire():
            return False  # not a dataset, or a live writer owns it: its temp files are in use
    except OSError as exc:  # cannot create the lock file: read-only
        _check_read_only(root, exc)
        return False
    try:
        return _repair_locked(root)
    finally:
        lock.release()


def _check_read_only(root: Path, exc: OSError) -> None:
    """What a dataset that cannot be written (`exc`) with a leftover journal still allows: warn when it reads
    consistently as it is, raise DatasetError when a commit stopped halfway through its renames."""
    journal = root / JOURNAL_PATH
    if not journal.is_file():
        return  # stray temp files only: readers never look at them
    how = (f"copy the dataset somewhere writable and run `twinarm dataset check --repair` on the copy "
           f"(it cannot be repaired in place: {exc.strerror or exc})")
    try:
        plan = json.loads(journal.read_text())
        pending = [(root / tmp).exists() for tmp, _ in plan["renames"]]
    except (OSError, ValueError, KeyError, TypeError):
        warnings.warn(f"{root}: {JOURNAL_PATH} is unreadable and the dataset is read-only; reading it as it is. "
                      f"To clean up, {how}", stacklevel=3)
        return
    if all(pending):
        warnings.warn(f"{root}: an episode commit was interrupted before any of its files were swapped in; the "
                      f"dataset is read-only, so it reads as it was before that episode. To add that episode, "
                      f"{how}", stacklevel=3)
    elif any(pending):
        raise DatasetError(f"{root}: an episode commit was interrupted halfway (its journal {JOURNAL_PATH} lists "
                           f"{sum(pending)} of {len(pending)} files not yet swapped in), so its files disagree, and "
                           f"the dataset is read-only; nothing was changed. To read it, {how}")


def _repair_locked(root: Path) -> bool:
    changed = False
    journal = root / JOURNAL_PATH
    if journal.is_file():
        try:
            plan = json.loads(journal.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            plan = None  # the journal itself is written atomically, so this only happens on disk damage
        if plan is not None:
            for tmp, dst in plan["renames"]:
                if (root / tmp).exists():
                    os.replace(root / tmp, root / dst)
            for d in {(root / dst).parent for _, dst in plan["renames"]}:
                fsync_dir(d)
        journal.unlink()
        changed = True
    for p in root.rglob(f"*{TMP_MARK}*"):
        if p.is_file():
            p.unlink()
            changed = True
    return changed


def _dirs_up_to(root: Path, paths: list[Path]) -> list[Path]:
    """The folders holding `paths` and every folder between them and `root` (root included), deepest first."""
    out: dict[Path, None] = {}
    for p in paths:
        d = p.parent
        while d != root and root in d.parents:
            out[d] = None
            d = d.parent
    out[root] = None
    return list(out)


def tasks_table(tasks: list[str]) -> pa.Table:
    """`meta/tasks.parquet` as pandas writes it: column task_index, index column `task`."""
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    schema = pa.schema([("task_index", pa.int64()), ("task", pa.string())],
                       metadata={"pandas": json.dumps(pandas_meta)})
    return pa.table({"task_index": list(range(len(tasks))), "task": tasks}, schema=schema)


@dataclass
class EncodedEpisode:
    """One finished episode, ready to commit: columns, encoded videos/PNGs and stats (picklable, so
    recorder workers can build it in parallel and hand it to the process that owns the writer)."""

    length: int
    columns: dict[str, Any]
    timestamps: list[float]
    frame_tasks: list[str]
    videos: dict[str, bytes]
    stats: dict[str, dict[str, np.ndarray]]


class EpisodeBuffer:
    """Collects one episode's frames: validates them, encodes videos as frames arrive, PNG-encodes
    images and keeps strided copies of camera frames for the image stats."""

    def __init__(self, features: dict[str, dict[str, Any]], fps: int, video_codec: str = "h264",
                 video_options: dict[str, str] | None = None, encoder_threads: int = 0,
                 png_compression: int = 1, background: bool = False) -> None:
        """`background`: encode videos in worker threads (`ThreadedEncoder`), so `add_frame` returns at once;
        what a real-time recording loop wants. The bytes written are the same as inline."""
        self.features = features
        self.background = background
        self.fps = int(fps)
        self.video_codec = video_codec
        self.video_options = video_options if video_options is not None else encoder_options(video_codec)
        self.encoder_threads = encoder_threads
        self.png_compression = png_compression
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self._cols: dict[str, list[Any]] = {
            k: [] for k, ft in self.features.items() if ft["dtype"] != "video" and k not in DEFAULT_FEATURES
        }
        self._frame_tasks: list[str] = []
        self._timestamps: list[float] = []
        self._encoders: dict[str, EpisodeEncoder | ThreadedEncoder] = {}
        self._stat_frames: dict[str, list[np.ndarray]] = {k: [] for k in camera_keys(self.features)}
        self._failed = ""  # why the buffered episode can no longer be saved (its videos lost a frame's sync)

    def add_frame(self, frame: dict[str, Any], task: str | None = None) -> None:
        """Add one frame (every feature but the index columns; images HWC uint8); `task` may also be
        `frame["task"]`. Raises DatasetError naming the feature on bad input.

        A frame is added whole or not at all: validation, PNG encoding and the stats copies happen before
        anything is buffered, and the video frames are handed to the encoders last. An encoder that fails
        (or is interrupted) may hold the frame already, so the episode is then refused: its videos no longer
        match its frames, and `clear()` is the way on."""
        task = task if task is not None else frame.get("task")
        if not isinstance(task, str) or not task:
            raise DatasetError("frame: a non-empty task string is required (add_frame(frame, task=...))")
        self._check_usable()
        try:
            clean = validate_frame(frame, self.features)
        except DatasetError as exc:
            raise DatasetError(f"{exc} (frame {self.n} of the episode)") from None
        cols: dict[str, Any] = {}
        stat_frames: dict[str, np.ndarray] = {}
        videos: list[tuple[str, np.ndarray]] = []
        for k, v in clean.items():
            ft = self.features[k]
            if ft["dtype"] == "video":
                videos.append((k, v))
            elif ft["dtype"] == "image":
                ok, png = cv2.imencode(".png", cv2.cvtColor(v, cv2.COLOR_RGB2BGR) if v.shape[2] == 3 else v,
                                       [cv2.IMWRITE_PNG_COMPRESSION, self.png_compression])
                if not ok:
                    raise DatasetError(f"feature {k!r}: PNG encoding failed (frame {self.n} of the episode)")
                cols[k] = {"bytes": png.tobytes(), "path": f"frame-{self.n:06d}.png"}
            else:
                cols[k] = v
            if k in self._stat_frames:
                s = st.image_stride(v.shape[0], v.shape[1])
                stat_frames[k] = v[::s, ::s].copy()
        for k, _ in videos:  # open every camera's encoder before any of them takes the frame
            if k not in self._encoders:
                h, w, _ = self.features[k]["shape"]
                cls = ThreadedEncoder if self.background else EpisodeEncoder
                self._encoders[k] = cls(w, h, self.fps, self.video_codec, self.video_options, self.encoder_threads)
        for k, v in videos:
            try:
                self._encoders[k].add(v)
            except BaseException as exc:
                self._failed = (f"the video encoder of feature {k!r} failed at frame {self.n} of the episode "
                                f"({type(exc).__name__}: {exc})")
                raise
        # nothing below can fail: every column gets the frame, or none did
        for k, v in cols.items():
            self._cols[k].append(v)
        for k, v in stat_frames.items():
            self._stat_frames[k].append(v)
        self._timestamps.append(self.n / self.fps)
        self._frame_tasks.append(task)
        self.n += 1

    def _check_usable(self) -> None:
        if self._failed:
            raise DatasetError(f"this episode cannot be saved: {self._failed}; drop it with clear_episode() "
                               "(EpisodeBuffer.clear()) and record it again")

    def clear(self) -> None:
        """Drop the buffered frames."""
        for enc in self._encoders.values():
            enc.abort()
        self._reset()

    def finish(self) -> EncodedEpisode:
        """Flush the encoders and compute the episode's feature stats; the buffer is then empty. If that fails
        (an encoder error), every encoder is released and the buffer is emptied too before the error is raised:
        the episode is lost, and the buffer is ready for the next one."""
        if self.n == 0:
            raise DatasetError("save_episode: no frames were added")
        self._check_usable()
        videos: dict[str, bytes] = {}
        try:
            stats: dict[str, dict[str, np.ndarray]] = {}
            for k, ft in self.features.items():
                if k in self._stat_frames:
                    frames = self._stat_frames[k]
                    stats[k] = st.image_stats(np.stack([frames[i] for i in st.sample_positions(len(frames))]))
                elif k in self._cols and ft["dtype"] != "string":
                    stats[k] = st.vector_stats(np.stack(self._cols[k]))
            cols = {k: (np.stack(v) if self.features[k]["dtype"] not in ("image", "string") else v)
                    for k, v in self._cols.items()}
            for k, e in self._encoders.items():
                videos[k] = e.finish()
        except BaseException:
            for k, e in self._encoders.items():
                if k not in videos:  # the finished ones are closed already
                    e.abort()
            self._reset()
            raise
        ep = EncodedEpisode(self.n, cols, self._timestamps, self._frame_tasks, videos, stats)
        self._reset()
        return ep


class DatasetWriter:
    """Append-only writer of a LeRobot v3.0 dataset (see module docstring for the commit protocol)."""

    def __init__(self, root: Path, info: dict[str, Any], *, video_codec: str, video_options: dict[str, str],
                 encoder_threads: int, png_compression: int) -> None:
        self.root = Path(root)
        self.info = info
        self.features: dict[str, dict[str, Any]] = info["features"]
        self.fps: int = int(info["fps"])
        self.video_codec = video_codec
        self.video_options = video_options
        self.encoder_threads = encoder_threads
        self.png_compression = png_compression
        self.tasks: list[str] = []
        self.stats: dict[str, dict[str, np.ndarray]] | None = None
        self._vkeys = video_keys(self.features)
        self._ikeys = image_keys(self.features)
        self._schema = data_schema(self.features)
        # the files currently being appended to (start fresh files on resume, as LeRobot does)
        self._data_cf = (0, 0)
        self._data_tables: list[pa.Table] = []
        self._data_bytes = 0
        self._meta_cf = (0, 0)
        self._meta_rows: list[dict[str, Any]] = []
        self._video_cf: dict[str, tuple[int, int]] = {k: (0, 0) for k in self._vkeys}
        self._video_eps: dict[str, list[tuple[bytes, int]]] = {k: [] for k in self._vkeys}
        self._last_episode: dict[str, Any] | None = None
        self._finalized = False
        self._broken = ""  # set when a commit died after its journal was written: later commits are refused
        self._unsaved: EncodedEpisode | None = None  # an episode whose save_episode() failed before its journal
        self._unsaved_error = ""
        self._lock = WriteLock(self.root)
        if not self._lock.acquire():
            raise DatasetError(f"{self.root}: another process is writing this dataset")
        self._reset_buffer()

    # ----- construction ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | Path,
        fps: int,
        features: dict[str, dict[str, Any]],
        *,
        robot_type: str | None = None,
        use_videos: bool = True,
        video_codec: str = "h264",
        crf: int | None = None,
        gop: int | None = None,
        preset: str | None = None,
        encoder_threads: int = 0,
        png_compression: int = 1,
        chunks_size: int = CHUNKS_SIZE,
        data_files_size_in_mb: float = DATA_FILES_SIZE_IN_MB,
        video_files_size_in_mb: float = VIDEO_FILES_SIZE_IN_MB,
    ) -> DatasetWriter:
        """Start a new dataset in an empty (or missing) directory. `features` as `ArmSpec.lerobot_features()`.

        With `use_videos=False`, video features are stored as embedded PNG images instead.
        """
        root = Path(root)
        check_folder(root)
        if (root / INFO_PATH).exists():
            raise DatasetError(f"{root}: a dataset already exists here; use DatasetWriter.resume() to append")
        if root.exists() and any(root.iterdir()):
            raise DatasetError(f"{root}: the folder is not empty and holds no dataset (no {INFO_PATH}); name a new "
                               "or empty folder")
        fps = check_fps(fps)
        check_features(features)
        feats = with_default_features(features)
        if not use_videos:
            for ft in feats.values():
                if ft["dtype"] == "video":
                    ft["dtype"] = "image"
        opts = encoder_options(video_codec, crf=crf, gop=gop, preset=preset)
        for k in video_keys(feats):
            h, w, c = feats[k]["shape"]
            if c != 3:
                raise DatasetError(f"{root}: feature {k!r} has shape {(h, w, c)}; videos need 3 channels")
            check_frame_size(video_codec, w, h, what=f"{root}: feature {k!r}")
            feats[k]["info"] = {
                "video.height": h,
                "video.width": w,
                "video.codec": video_codec,
                "video.pix_fmt": "yuv420p",
                "video.fps": int(fps),
                "video.channels": 3,
                "has_audio": False,
                "video.g": int(opts["g"]),
                "video.crf": int(opts["crf"]),
                "video.preset": int(opts["preset"]) if str(opts["preset"]).isdigit() else opts["preset"],  # as LeRobot
                "video.fast_decode": 0,
                "video.video_backend": "pyav",
                "video.extra_options": {k2: v for k2, v in opts.items() if k2 not in ("g", "crf", "preset")},
                "is_depth_map": False,
            }
        info = {
            "codebase_version": CODEBASE_VERSION,
            "fps": int(fps),
            "features": feats,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": int(chunks_size),
            "data_files_size_in_mb": data_files_size_in_mb,
            "video_files_size_in_mb": video_files_size_in_mb,
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if video_keys(feats) else None,
            "robot_type": robot_type,
            "splits": {},
        }
        (root / "meta").mkdir(parents=True, exist_ok=True)
        write_json_atomic(root / INFO_PATH, info)
        return cls(root, info, video_codec=video_codec, video_options=opts, encoder_threads=encoder_threads,
                   png_compression=png_compression)

    @classmethod
    def resume(cls, root: str | Path, *, encoder_threads: int = 0, png_compression: int = 1) -> DatasetWriter:
        """Reopen a dataset to append episodes (after repairing an interrupted commit); new episodes go
        to new data/video/episodes files."""
        root = Path(root)
        repair(root)
        info = load_json(root / INFO_PATH)
        check_version(info, root / INFO_PATH)
        check_no_depth(info["features"], root / INFO_PATH)
        info.pop("repo_id", None)  # older twinarm wrote it; LeRobot warns on every load about fields it does not know
        vkeys = video_keys(info["features"])
        codec, opts = resume_codec(info)
        w = cls(root, info, video_codec=codec, video_options=opts, encoder_threads=encoder_threads,
                png_compression=png_compression)
        try:
            w._load_state(vkeys)
        except BaseException:
            w._lock.release()  # a refused resume leaves no writer holding the dataset
            raise
        return w

    def _load_state(self, vkeys: list[str]) -> None:
        """Read tasks, stats and where the last episode's files are, to append after them."""
        root, info, w = self.root, self.info, self
        if (root / TASKS_PATH).is_file():
            t = read_parquet(root / TASKS_PATH)
            order = np.argsort(np.asarray(t.column("task_index")))
            w.tasks = [t.column("task")[int(i)].as_py() for i in order]
        if (root / STATS_PATH).is_file():
            w.stats = st.from_jsonable(load_json(root / STATS_PATH))
        meta_files = sorted_parquet_files(root / "meta/episodes")
        if meta_files:
            cols = ["episode_index", "dataset_to_index", "data/chunk_index", "data/file_index",
                    "meta/episodes/chunk_index", "meta/episodes/file_index"]
            cols += [f"videos/{k}/{c}" for k in vkeys for c in ("chunk_index", "file_index")]
            last = read_parquet(meta_files[-1], columns=cols).to_pylist()[-1]
            n_eps = last["episode_index"] + 1
            if n_eps != info["total_episodes"] or last["dataset_to_index"] != info["total_frames"]:
                raise DatasetError(
                    f"{root}: meta/episodes says {n_eps} episodes / {last['dataset_to_index']} frames but "
                    f"info.json says {info['total_episodes']} / {info['total_frames']}; run `twinarm dataset check`"
                )
            cs = int(info["chunks_size"])
            w._data_cf = next_chunk_file(last["data/chunk_index"], last["data/file_index"], cs)
            w._meta_cf = next_chunk_file(last["meta/episodes/chunk_index"], last["meta/episodes/file_index"], cs)
            for k in vkeys:
                w._video_cf[k] = next_chunk_file(last[f"videos/{k}/chunk_index"], last[f"videos/{k}/file_index"], cs)
            w._last_episode = last

    # ----- recording ------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    def buffer_kwargs(self) -> dict[str, Any]:
        """Arguments for an `EpisodeBuffer` that produces episodes this writer can `commit` (for workers)."""
        return {"features": self.features, "fps": self.fps, "video_codec": self.video_codec,
                "video_options": self.video_options, "encoder_threads": self.encoder_threads,
                "png_compression": self.png_compression}

    def _reset_buffer(self) -> None:
        self._buffer = EpisodeBuffer(**self.buffer_kwargs())

    @property
    def episode_length(self) -> int:
        """Frames added to the episode being recorded (or of the episode whose save failed, kept for a retry)."""
        return self._unsaved.length if self._unsaved is not None else self._buffer.n

    def _check_open(self) -> None:
        """Refuse recording after `finalize()`, which has also released the dataset's write lock."""
        if self._finalized:
            raise DatasetError(f"{self.root}: the writer is finalized (finalize() was called); reopen the dataset "
                               "with DatasetWriter.resume() to add episodes")

    def add_frame(self, frame: dict[str, Any], task: str | None = None) -> None:
        """Buffer one frame (every feature except the index columns; images HWC uint8). Videos are
        encoded as frames arrive. `task` may also be given as `frame["task"]`."""
        self._check_open()
        if self._unsaved is not None:  # the caller moved on to the next episode (commit()'s promise)
            warnings.warn(f"{self.root}: dropped the {self._unsaved.length}-frame episode whose save failed "
                          f"({self._unsaved_error}); to keep such an episode, call save_episode() again (after "
                          "freeing disk space, say) before adding the next episode's frames", stacklevel=2)
            self._unsaved = None
        self._buffer.add_frame(frame, task)

    def clear_episode(self) -> None:
        """Drop the frames buffered for the current episode (and an episode kept after a failed save)."""
        self._unsaved = None
        self._buffer.clear()

    def save_episode(self) -> int:
        """Commit the buffered frames as one episode (crash-safe); returns its episode index.

        If the commit fails before anything is swapped in (disk full, an I/O error, Ctrl-C while its files are
        written), the dataset is unchanged and the encoded episode is kept: call `save_episode()` again to retry
        it. `clear_episode()` drops it, and so does `add_frame` (with a warning): the next episode can be recorded
        and saved as if the failed one had never been. An error while the encoders are flushed loses the episode
        (the buffer is emptied). A commit that dies after its journal was written cannot be retried here:
        `DatasetWriter.resume()` completes it."""
        self._check_open()
        return self._save(self._unsaved if self._unsaved is not None else self._buffer.finish())

    def save_encoded(self, episode: EncodedEpisode) -> int:
        """Commit an episode encoded outside this writer (a recorder's own buffer) as `save_episode()` commits
        the buffered one: if the commit fails before anything is swapped in, the episode is kept and
        `save_episode()` retries it (`has_unsaved` says so)."""
        self._check_open()
        if self._buffer.n or self._unsaved is not None:
            raise DatasetError(f"{self.root}: save_encoded() while {self.episode_length} frames of another episode "
                               "wait in the writer; save_episode() or clear_episode() them first")
        return self._save(episode)

    @property
    def has_unsaved(self) -> bool:
        """Whether an episode whose save failed is kept for `save_episode()` to retry."""
        return self._unsaved is not None

    def _save(self, episode: EncodedEpisode) -> int:
        """`commit(episode)`, keeping the episode for a retry when the commit fails before its journal."""
        try:
            index = self.commit(episode)
        except BaseException as exc:
            # not broken: nothing was swapped in, keep the episode for a retry; broken: the journal holds it
            self._unsaved = None if self._broken else episode
            self._unsaved_error = f"{type(exc).__name__}: {exc}"
            raise
        self._unsaved = None
        return index

    def commit(self, episode: EncodedEpisode) -> int:
        """Write a finished episode to disk in one crash-safe step; returns its episode index.

        An error while the episode's files are prepared (before the journal) removes the temp files written
        so far and leaves the writer as it was: the dataset is unchanged and the next episode can be saved."""
        self._check_open()
        if self._broken:
            raise DatasetError(f"{self.root}: {self._broken}; reopen it with DatasetWriter.resume() to finish it")
        saved = (self._data_cf, list(self._data_tables), self._data_bytes, self._meta_cf, list(self._meta_rows),
                 dict(self._video_cf), {k: list(v) for k, v in self._video_eps.items()}, self.stats)
        staged: list[Path] = []  # temp files of this commit, listed before they are written
        root = self.root
        try:
            renames, info, tasks = self._stage(episode, staged)
            # commit: journal, renames (appends first, info.json last), drop journal
            journal = {"episode_index": self.num_episodes,
                       "renames": [[str(a.relative_to(root)), str(b.relative_to(root))] for a, b in renames]}
            staged.append(tmp_path_for(root / JOURNAL_PATH))
            dirs = _dirs_up_to(root, [dst for _, dst in renames])
            for d in dirs:  # a new chunk folder's entry, and the staged temp files' (fsynced themselves)
                fsync_dir(d)
            write_json_atomic(root / JOURNAL_PATH, journal)
            fsync_dir(root / "meta")  # the journal is on disk before any rename: a power cut is rolled forward
        except BaseException:  # nothing was swapped in: the dataset is as it was
            (self._data_cf, self._data_tables, self._data_bytes, self._meta_cf, self._meta_rows, self._video_cf,
             self._video_eps, self.stats) = saved
            for tmp in staged:
                tmp.unlink(missing_ok=True)
            (root / JOURNAL_PATH).unlink(missing_ok=True)  # written just before an interrupt
            raise
        try:
            for tmp, dst in renames:
                os.replace(tmp, dst)
            for d in {dst.parent for _, dst in renames}:  # the renames are on disk before the journal goes
                fsync_dir(d)
            (root / JOURNAL_PATH).unlink()
        except BaseException:
            # repair() rolls a written journal forward; what this writer holds in memory may be ahead of the files
            self._broken = "an episode commit was interrupted"
            raise
        self.info = info
        self.tasks = tasks
        return self.num_episodes - 1

    def _stage(self, episode: EncodedEpisode,
               staged: list[Path]) -> tuple[list[tuple[Path, Path]], dict[str, Any], list[str]]:
        """Write an episode's changed files under temp names (each listed in `staged` before it is written);
        returns the (temp, destination) renames, the new info.json and the new task list."""
        n = episode.length
        ep = self.num_episodes
        start = self.num_frames
        root = self.root
        cs = int(self.info["chunks_size"])
        renames: list[tuple[Path, Path]] = []

        # tasks
        new_tasks = [t for t in dict.fromkeys(episode.frame_tasks) if t not in self.tasks]
        tasks = self.tasks + new_tasks
        tindex = {t: i for i, t in enumerate(tasks)}
        if new_tasks:
            staged.append(tmp_path_for(root / TASKS_PATH))
            renames.append((write_parquet_tmp(root / TASKS_PATH, tasks_table(tasks)), root / TASKS_PATH))

        # data columns: the episode's features plus the index columns, which depend on its position
        missing = [k for k in self._schema.names if k not in DEFAULT_FEATURES and k not in episode.columns]
        if missing or set(episode.videos) != set(self._vkeys) or len(episode.frame_tasks) != n:
            raise DatasetError(f"commit: episode does not match the dataset features (missing {missing}, "
                               f"videos {sorted(episode.videos)} vs {self._vkeys})")
        cols: dict[str, Any] = dict(episode.columns)
        cols["timestamp"] = np.asarray(episode.timestamps, dtype=np.float32)
        cols["frame_index"] = np.arange(n, dtype=np.int64)
        cols["episode_index"] = np.full(n, ep, dtype=np.int64)
        cols["index"] = np.arange(start, start + n, dtype=np.int64)
        cols["task_index"] = np.asarray([tindex[t] for t in episode.frame_tasks], dtype=np.int64)
        ep_stats = dict(episode.stats)
        for k in DEFAULT_FEATURES:
            ep_stats[k] = st.vector_stats(cols[k])
        ep_stats = {k: ep_stats[k] for k in self.features if k in ep_stats}

        arrays = []
        for field in self._schema:
            v = cols[field.name]
            if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] == 1 and not pa.types.is_list(field.type) \
                    and not pa.types.is_fixed_size_list(field.type):
                v = v.reshape(-1)  # a shape-[1] feature is a plain column, as LeRobot writes it
            if isinstance(v, np.ndarray) and v.ndim == 2:
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1]))
            elif isinstance(v, list) and v and isinstance(v[0], np.ndarray):
                mat = np.stack(v)
                if mat.ndim == 2:
                    arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1)), mat.shape[1]))
                else:
                    arrays.append(pa.array(mat, type=field.type))
            else:
                arrays.append(pa.array(v, type=field.type))
        table = pa.Table.from_arrays(arrays, schema=self._schema)

        # data file roll-over by size
        limit = float(self.info["data_files_size_in_mb"]) * MB
        if self._data_tables and self._data_bytes + table.nbytes > limit:
            self._data_cf = next_chunk_file(*self._data_cf, cs)
            self._data_tables, self._data_bytes = [], 0
        self._data_tables.append(table)
        self._data_bytes += table.nbytes
        dpath = root / DATA_PATH.format(chunk_index=self._data_cf[0], file_index=self._data_cf[1])
        staged.append(tmp_path_for(dpath))
        renames.append((write_parquet_tmp(dpath, pa.concat_tables(self._data_tables)), dpath))

        # videos
        row: dict[str, Any] = {
            "episode_index": ep,
            "tasks": list(dict.fromkeys(episode.frame_tasks)),
            "length": n,
            "data/chunk_index": self._data_cf[0],
            "data/file_index": self._data_cf[1],
            "dataset_from_index": start,
            "dataset_to_index": start + n,
        }
        vlimit = float(self.info["video_files_size_in_mb"]) * MB
        new_video_paths = []
        for k in self._vkeys:
            blob = episode.videos[k]
            eps = self._video_eps[k]
            if eps and sum(len(b) for b, _ in eps) + len(blob) > vlimit:
                self._video_cf[k] = next_chunk_file(*self._video_cf[k], cs)
                eps.clear()
            from_frames = sum(m for _, m in eps)
            eps.append((blob, n))
            vpath = root / VIDEO_PATH.format(video_key=k, chunk_index=self._video_cf[k][0],
                                             file_index=self._video_cf[k][1])
            tmp = tmp_path_for(vpath)
            staged.append(tmp)
            vpath.parent.mkdir(parents=True, exist_ok=True)
            concatenate(eps, tmp, self.fps)
            fsync_file(tmp)  # it re-muxes the file's earlier episodes too: on disk before it replaces them
            renames.append((tmp, vpath))
            new_video_paths.append((k, tmp))
            row[f"videos/{k}/chunk_index"] = self._video_cf[k][0]
            row[f"videos/{k}/file_index"] = self._video_cf[k][1]
            row[f"videos/{k}/from_timestamp"] = from_frames / self.fps
            row[f"videos/{k}/to_timestamp"] = (from_frames + n) / self.fps
        for k, s in ep_stats.items():
            for sk in st.STAT_KEYS:
                row[f"stats/{k}/{sk}"] = np.asarray(s[sk]).tolist()

        # episodes metadata (roll over by size, like the data files)
        if self._meta_rows and len(self._meta_rows) * 8192 > limit:
            self._meta_cf = next_chunk_file(*self._meta_cf, cs)
            self._meta_rows = []
        row["meta/episodes/chunk_index"] = self._meta_cf[0]
        row["meta/episodes/file_index"] = self._meta_cf[1]
        self._meta_rows.append(row)
        mpath = root / EPISODES_PATH.format(chunk_index=self._meta_cf[0], file_index=self._meta_cf[1])
        staged.append(tmp_path_for(mpath))
        renames.append((write_parquet_tmp(mpath, self._episodes_table(self._meta_rows)), mpath))

        # stats + info
        self.stats = ep_stats if self.stats is None else st.aggregate([self.stats, ep_stats])
        staged.append(tmp_path_for(root / STATS_PATH))
        renames.append((write_bytes_tmp(root / STATS_PATH, json_bytes(st.to_jsonable(self.stats))), root / STATS_PATH))
        info = json.loads(json.dumps(self.info))
        for k, tmp in new_video_paths:
            if ep == 0 or not info["features"][k].get("info"):
                info["features"][k]["info"] = {**info["features"][k].get("info", {}), **video_info(tmp)}
        info["total_episodes"] = ep + 1
        info["total_frames"] = start + n
        info["total_tasks"] = len(tasks)
        info["splits"] = {"train": f"0:{ep + 1}"}
        staged.append(tmp_path_for(root / INFO_PATH))
        renames.append((write_bytes_tmp(root / INFO_PATH, json_bytes(info)), root / INFO_PATH))
        return renames, info, tasks

    def _episodes_table(self, rows: list[dict[str, Any]]) -> pa.Table:
        cols = list(rows[0])
        types: dict[str, pa.DataType] = {"tasks": pa.list_(pa.string())}
        for c in cols:
            if c.endswith("/from_timestamp") or c.endswith("/to_timestamp"):
                types[c] = pa.float64()
            elif c.startswith("stats/"):
                depth = np.asarray(rows[0][c]).ndim
                t: pa.DataType = pa.int64() if c.endswith("/count") else pa.float64()
                for _ in range(depth):
                    t = pa.list_(t)
                types[c] = t
            elif c != "tasks":
                types[c] = pa.int64()
        return pa.table({c: pa.array([r[c] for r in rows], type=types[c]) for c in cols})

    def finalize(self) -> None:
        """Close the writer (every saved episode is already on disk); drops an unsaved episode (one whose
        save failed too). Idempotent."""
        if self._buffer.n or self._unsaved is not None:
            self.clear_episode()
        self._finalized = True
        self._lock.release()

    def __del__(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finalize()
