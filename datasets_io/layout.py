"""LeRobot v3.0 on-disk layout: path templates, size limits, default features and atomic file writes."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk directory
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_DIR = "data"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
#: twinarm's commit journal: present only while an episode's files are being swapped in (see writer.py).
JOURNAL_PATH = "meta/.twinarm_journal.json"
TMP_MARK = ".twinarm-tmp"
#: held (flock) by the one process writing a dataset; repair never touches a dataset being written.
LOCK_PATH = "meta/.twinarm_lock"
#: The options `twinarm record` / `teleop --record` ran with (env or port, repo id, next seed), beside the dataset.
RECORD_PATH = "meta/twinarm_record.json"



def lerobot_home() -> Path:
    """LeRobot's local dataset folder (`HF_LEROBOT_HOME`, default `$HF_HOME/lerobot`, i.e.
    `~/.cache/huggingface/lerobot`), read at each call: `LeRobotDataset("me/rec")` finds a dataset recorded
    or downloaded there as `<home>/me/rec`, so twinarm's repo ids look there too before going online."""
    if home := os.getenv("HF_LEROBOT_HOME"):
        return Path(home).expanduser()
    hf_home = os.getenv("HF_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(hf_home).expanduser() / "lerobot"


#: Columns every LeRobot dataset carries, whatever the robot.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


#: Errors of writing a file, not of what is written: the output's place is at fault (read-only, full, not ours).
WRITE_ERRNOS = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM)


class DatasetError(Exception):
    """A dataset file or value that breaks the LeRobot v3 rules; the message names the file/feature."""


class WriteLock:
    """An exclusive, non-blocking flock on `meta/.twinarm_lock` (released by the OS if the holder dies).

    The file exists only while held: `release` deletes it, so a finished dataset carries no twinarm file that
    LeRobot's `push_to_hub` would upload. A holder killed before releasing leaves it unlocked; the next
    `acquire` takes it over. Since a file may be deleted between another process opening and locking it,
    `acquire` keeps a lock only on the file the path still names."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / LOCK_PATH
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):  # a retry only follows a release that deleted the file this one opened
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self._fd, self._pid = fd, os.getpid()
                return True
            os.close(fd)  # locked a file its holder had just deleted: lock the one the path names now
        return False

    def release(self) -> None:
        if self._fd is not None:
            if self._pid == os.getpid():  # not a forked child's copy: the parent still holds the lock
                try:
                    self.path.unlink()  # while still locked, so no one else can hold this file meanwhile
                except FileNotFoundError:
                    pass
            os.close(self._fd)
            self._fd = None


def frame_times(timestamps: np.ndarray, frame_index: np.ndarray, fps: float) -> np.ndarray:
    """Frames' times within their episode (s) in float64, for looking up video frames and checking spacing.

    LeRobot stores `timestamp = frame_index / fps` as float32, which past 2048 s is coarser (2.4e-4 s) than the
    1e-4 s tolerance of the video lookup, so an episode longer than ~34 minutes could not be read to its end.
    A stored value that is exactly `frame_index / fps` rounded to the column's dtype is taken as that exact
    value; any other value (timestamps that really differ) is kept as stored, so a mismatch is still caught."""
    ts = np.asarray(timestamps)
    exact = np.asarray(frame_index, dtype=np.float64) / float(fps)
    return np.where(exact.astype(ts.dtype) == ts, exact, ts.astype(np.float64))


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) pair after this one: files fill a chunk directory, then a new chunk starts."""
    if file_index + 1 >= chunks_size:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


def tmp_path_for(path: Path) -> Path:
    """A sibling temp name that LeRobot's `*/*.parquet` / `*.mp4` globs never match."""
    return path.with_name(f"{path.name}{TMP_MARK}-{os.getpid()}")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` durable (created or renamed files: a rename reaches the disk only
    with its directory); a file system that cannot fsync a directory is let be."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_tmp(path: Path, data: bytes) -> Path:
    """Write `data` to a temp sibling of `path` (flushed to disk); the caller renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=4, ensure_ascii=False) + "\n").encode()


def write_parquet_tmp(path: Path, table: pa.Table) -> Path:
    """Write a whole parquet file to a temp sibling of `path` (closed and flushed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    pq.write_table(table, tmp, compression="snappy")
    fsync_file(tmp)
    return tmp


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace a JSON file in one step (temp file + os.replace), so readers never see half a file."""
    os.replace(write_bytes_tmp(path, json_bytes(data)), path)


def load_json(path: Path) -> Any:
    """Read a JSON file; a missing or corrupt file raises DatasetError naming it (a dataset's meta/info.json whose
    dataset folder is not there names the folder, as the user gave it: every edit of a source reads this first)."""
    if not path.is_file():
        root = path.parent.parent
        if path.name == "info.json" and path.parent.name == "meta" and not root.is_dir():
            raise DatasetError(f"{root}: no such dataset directory" if not root.exists() else
                               f"{root} is a file, not a dataset folder")  # fmt: skip
        raise DatasetError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: corrupt JSON ({exc})") from None


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a parquet file; a missing or corrupt file raises DatasetError naming it."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{path}: corrupt parquet ({exc})") from None


def sorted_parquet_files(directory: Path) -> list[Path]:
    """The `chunk-*/file-*.parquet` files under a directory, in the order LeRobot concatenates them."""
    return sorted(directory.glob("*/*.parquet"))


def recording_options(root: str | Path) -> dict[str, Any]:
    """The options twinarm recorded the dataset at `root` with (RECORD_PATH): its sim env (None on a real arm, whose
    port is there instead), repo id, next seed. {} for a dataset twinarm did not record, or whose file is damaged
    (a recording rewrites it when it ends, so a damaged one stops nothing)."""
    try:
        options = json.loads((Path(root) / RECORD_PATH).read_text())
    except (OSError, ValueError):
        return {}
    return options if isinstance(options, dict) else {}


def episode_seeds(root: str | Path) -> dict[int, int]:
    """The sim seed each episode of a twinarm recording was reset with, by episode index, from the `sessions` of
    RECORD_PATH (episode `first_episode_index + j` has `seeds[j]` where a run lists them, else `seed + j`); {}
    for a dataset that does not say (another's recording, an older twinarm's, a real arm's)."""
    sessions = recording_options(root).get("sessions")
    seeds: dict[int, int] = {}
    for session in sessions if isinstance(sessions, list) else ():
        try:
            first, n = int(session["first_episode_index"]), int(session["episodes"])
            listed = session.get("seeds")
            kept = [int(x) for x in listed] if isinstance(listed, list) else [int(session["seed"]) + j for j in range(n)]
        except (KeyError, TypeError, ValueError):
            continue
        seeds.update({first + j: kept[j] for j in range(min(n, len(kept)))})
    return seeds


def set_episode_seeds(root: str | Path, seeds: Sequence[int | None]) -> None:
    """Rewrite RECORD_PATH's `sessions` to say that episode i was reset with sim seed `seeds[i]` (None: not known):
    each run of known seeds one session listing them, each run of unknown ones one session of seed null (which
    `episode_seeds` skips). For the edits that renumber a recording's episodes (delete, split, merge); nothing for
    a dataset whose file has no sessions."""
    options = recording_options(root)
    if "sessions" not in options:
        return
    sessions: list[dict[str, Any]] = []
    for i, seed in enumerate(seeds):
        last = sessions[-1] if sessions else None
        if last is not None and (seed is None) == (last["seed"] is None):
            last["episodes"] += 1
            if seed is not None:
                last["seeds"].append(seed)
        else:
            sessions.append({"seed": seed, "episodes": 1, "first_episode_index": i}
                            | ({"seeds": [seed]} if seed is not None else {}))
    write_json_atomic(Path(root) / RECORD_PATH, {**options, "sessions": sessions})
