"""`DatasetMeta`: a LeRobot v3 dataset's `meta/` (info, tasks, episodes, stats) and where a path or Hub repo id
puts the dataset. No torch and no decoding: `twinarm dataset info` and the validators start in a fraction of a
second; `LeRobotDatasetReader` builds on it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twinarm.datasets_io import stats as st
from twinarm.datasets_io.depth import DepthFormat, depth_format
from twinarm.datasets_io.features import depth_keys, image_keys, video_keys
from twinarm.datasets_io.layout import (
    EPISODES_DIR,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    DatasetError,
    lerobot_home,
    load_json,
    read_parquet,
    sorted_parquet_files,
)
from twinarm.datasets_io.writer import check_version, repair


def column_to_numpy(col: pa.ChunkedArray | pa.Array, where: str) -> np.ndarray:
    """A numeric parquet column as numpy: scalars -> (N,), fixed/variable lists -> (N, D)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        n = len(arr)
        flat = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
        if n and flat.size % n:
            raise DatasetError(f"{where}: rows of unequal length")
        return flat.reshape(n, flat.size // n if n else 0)
    if arr.null_count:
        raise DatasetError(f"{where}: column has null values")
    return arr.to_numpy(zero_copy_only=False)


def not_a_folder(root: Path) -> str | None:
    """Why `root` cannot be a dataset folder (missing, or a file), naming the way out; None if it is a folder."""
    if root.is_dir():
        return None
    if root.is_file():
        up = f" ({root.parent.parent}?)" if root.name == "info.json" and root.parent.name == "meta" else ""
        return f"{root} is a file, not a dataset folder; give the folder that holds {INFO_PATH}{up}"
    return f"{root}: no such dataset directory"


def no_episode_yet(root: Path, info: dict[str, Any]) -> str | None:
    """What to say of a dataset whose recording ended before it committed an episode (info.json is written,
    tasks and episodes not yet), or None."""
    if info.get("total_episodes") == 0 and not (root / TASKS_PATH).exists() and not sorted_parquet_files(
            root / EPISODES_DIR):  # fmt: skip
        return (f"no episode was committed (an interrupted recording?); `twinarm record --root {root} --resume` "
                f"(or `twinarm teleop ... --record {root} --resume`) continues it")
    return None


class DatasetMeta:
    """`meta/` of a dataset: info, tasks, per-episode ranges and video locations, and stats."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        repair(self.root)  # finish an interrupted commit (no-op while a live writer holds the dataset)
        self.info: dict[str, Any] = load_json(self.root / INFO_PATH)
        check_version(self.info, self.root / INFO_PATH)
        for key in ("fps", "features", "data_path", "total_episodes", "total_frames"):
            if key not in self.info:
                raise DatasetError(f"{self.root / INFO_PATH}: missing key {key!r}")
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.depth: dict[str, DepthFormat] = {}  # depth cameras: float32 (1, H, W) millimetres, as LeRobot
        for k in depth_keys(self.features):
            try:
                self.depth[k] = depth_format(self.features[k])
            except ValueError as exc:
                raise DatasetError(f"{self.root / INFO_PATH}: feature {k!r}: {exc}") from None
        self.fps: int = int(self.info["fps"])
        self.video_keys = video_keys(self.features)
        self.image_keys = image_keys(self.features)
        self.camera_keys = [k for k in self.features if k in self.video_keys or k in self.image_keys]
        if (why := no_episode_yet(self.root, self.info)) is not None:
            raise DatasetError(f"{self.root}: {why}")
        t = read_parquet(self.root / TASKS_PATH)
        if "task_index" not in t.column_names or "task" not in t.column_names:
            raise DatasetError(f"{self.root / TASKS_PATH}: needs columns 'task' and 'task_index', has {t.column_names}")
        order = np.argsort(np.asarray(t.column("task_index")))
        ti = np.asarray(t.column("task_index"))[order]
        if not np.array_equal(ti, np.arange(len(ti))):
            raise DatasetError(f"{self.root / TASKS_PATH}: task_index must be 0..{len(ti) - 1}, got {ti.tolist()}")
        self.tasks: list[str] = [t.column("task")[int(i)].as_py() for i in order]
        self.episodes = self._load_episodes()
        self.stats = st.from_jsonable(load_json(self.root / STATS_PATH)) if (self.root / STATS_PATH).exists() else None
        if self.stats is not None:  # depth stats are stored in the recorded unit; frames come out in mm
            for k, fmt in self.depth.items():
                if k in self.stats:
                    self.stats[k] = fmt.stats_to_output(self.stats[k])

    def _load_episodes(self) -> dict[str, np.ndarray]:
        files = sorted_parquet_files(self.root / "meta/episodes")
        if not files:
            raise DatasetError(f"{self.root / 'meta/episodes'}: no episodes parquet files")
        want = ["episode_index", "length", "dataset_from_index", "dataset_to_index", "data/chunk_index", "data/file_index"]
        for k in self.video_keys:
            want += [f"videos/{k}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        parts: dict[str, list[np.ndarray]] = {c: [] for c in want}
        tasks: list[list[str]] = []
        for f in files:
            try:
                names = pq.read_schema(f).names
            except (pa.ArrowInvalid, OSError) as exc:
                raise DatasetError(f"{f}: corrupt parquet ({exc})") from None
            missing = [c for c in want if c not in names]
            if missing:
                raise DatasetError(f"{f}: missing column(s) {missing}")
            t = read_parquet(f, columns=want + (["tasks"] if "tasks" in names else []))
            for c in want:
                parts[c].append(column_to_numpy(t.column(c), f"{f}:{c}"))
            tasks += t.column("tasks").to_pylist() if "tasks" in names else [[] for _ in range(t.num_rows)]
        eps = {c: np.concatenate(v) for c, v in parts.items()}
        idx = eps["episode_index"]
        if not np.array_equal(idx, np.arange(len(idx))):
            raise DatasetError(f"{self.root / 'meta/episodes'}: episode_index must run 0..{len(idx) - 1} in file order")
        eps["tasks"] = np.asarray(tasks, dtype=object) if tasks else np.empty(0, dtype=object)
        return eps

    @property
    def total_episodes(self) -> int:
        return len(self.episodes["episode_index"])

    @property
    def total_frames(self) -> int:
        return int(self.episodes["dataset_to_index"][-1]) if self.total_episodes else 0

    def video_path(self, key: str, ep: int) -> Path:
        e = self.episodes
        return self.root / self.info["video_path"].format(
            video_key=key, chunk_index=int(e[f"videos/{key}/chunk_index"][ep]), file_index=int(e[f"videos/{key}/file_index"][ep])
        )


#: What can name a Hub dataset repo: `namespace/name` (letters, digits, `-`, `_`, `.`; no leading `.`). A bare
#: `name` is taken for a local folder: LeRobot datasets always have an owner, and a typo should not go online.
_HUB_REPO_ID = re.compile(r"[\w-][\w.-]*/[\w-][\w.-]*")


def local_miss(name: str | Path) -> str:
    """Where a path-like `name` (`runs/act_x`), not found, was also looked for here: ' (no runs/act_x here, though
    runs/ exists)' when its first folder exists locally, so a mistyped local path reads as one; else ''."""
    parts = Path(name).parts
    return f" (no {name} here, though {parts[0]}/ exists)" if parts and Path(parts[0]).is_dir() else ""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (the Hub client's network errors run to several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_root(repo_id_or_root: str | Path, root: str | Path | None = None, revision: str | None = None) -> Path:
    """A local dataset directory for a path or a Hub repo id: a path that exists wins; a repo id is looked up in
    LeRobot's local dataset folder (`$HF_LEROBOT_HOME/OWNER/NAME`, where `LeRobotDataset(repo_id)` finds it),
    else downloaded into the HF cache."""
    if root is not None:
        p = Path(root)
        if (p / INFO_PATH).exists():
            return p
        from twinarm.datasets_io.hub import download

        return download(str(repo_id_or_root), local_dir=p, revision=revision)
    p = Path(repo_id_or_root)
    if p.exists():
        if (why := not_a_folder(p)) is not None:
            raise DatasetError(why)
        if not (p / INFO_PATH).exists():
            raise DatasetError(f"{p}: not a dataset (no {INFO_PATH})")
        return p
    if not _HUB_REPO_ID.fullmatch(str(repo_id_or_root)):  # a path, or a bare name: not a Hub repo id
        raise DatasetError(f"{p}: no such dataset directory" + (
            "" if "/" in str(repo_id_or_root) else " (a Hub dataset is named OWNER/NAME)"))
    home = lerobot_home() / str(repo_id_or_root)
    if (home / INFO_PATH).is_file():  # where LeRobotDataset(repo_id) records and finds it (its default root)
        return home
    from twinarm.datasets_io.hub import download

    try:
        return download(str(repo_id_or_root), revision=revision)
    except DatasetError as exc:
        raise DatasetError(f"dataset {str(repo_id_or_root)!r}: not a local directory{local_miss(p)}, not in "
                           f"LeRobot's local dataset folder ({home}: HF_LEROBOT_HOME/OWNER/NAME) and could not be "
                           f"fetched from the Hub ({first_line(exc.__cause__ or exc)})") from exc
