"""A copy of a LeRobot v3 dataset with its task texts changed: one text for every episode, texts per episode, or
old texts replaced by new ones (a typo, a clearer instruction for a language-conditioned policy).

Per episode the task is, as LeRobot's `modify_tasks` resolves it: the episode's own text if given, else the
replacement of its old text if one is given, else the new default text if given, else the old text. Task
indices, the tasks table, each episode's task list and the task_index stats follow; nothing else changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from twinarm.datasets_io import stats as st
from twinarm.datasets_io.edit import (
    aggregate_global_stats,
    edited_copy,
    read_tasks,
    renumbered_stats,
    with_columns,
)
from twinarm.datasets_io.layout import (
    DATA_DIR,
    EPISODES_DIR,
    INFO_PATH,
    TASKS_PATH,
    DatasetError,
    load_json,
    read_parquet,
    sorted_parquet_files,
)
from twinarm.datasets_io.writer import check_version, tasks_table


def modify_tasks(src: str | Path, dst: str | Path, new_task: str | None = None,
                 episode_tasks: Mapping[int, str] | None = None,
                 replacements: Mapping[str, str] | None = None) -> tuple[Path, list[str]]:  # fmt: skip
    """Copy `src` to `dst` with its tasks changed (see the module docstring); returns `dst` and the new tasks
    in task-index order. Errors name the episode or old text that does not exist."""
    src, dst = Path(src), Path(dst)
    episode_tasks, replacements = dict(episode_tasks or {}), dict(replacements or {})
    if new_task is None and not episode_tasks and not replacements:
        raise DatasetError("no task change was given (a new task, episode tasks or replacements)")
    texts = [new_task, *episode_tasks.values(), *replacements.values()]
    if any(t is not None and not t.strip() for t in texts):
        raise DatasetError("a task text cannot be empty")
    if dst.exists():
        raise DatasetError(f"{dst} exists: give a new folder for the edited dataset")
    info = load_json(src / INFO_PATH)
    check_version(info, src / INFO_PATH)
    total = int(info["total_episodes"])
    missing = sorted(e for e in episode_tasks if not 0 <= int(e) < total)
    if missing:
        raise DatasetError(f"{src}: episode(s) {missing} do not exist (episodes 0..{total - 1})")
    def edit(root: Path) -> list[str]:
        old = read_tasks(root)
        unknown = sorted(set(replacements) - set(old))
        if unknown:
            raise DatasetError(f"{src}: no task {unknown[0]!r} to replace; its tasks: {old}")
        return _retask_in_copy(root, old, new_task, {int(e): t for e, t in episode_tasks.items()}, replacements)

    return dst, edited_copy(src, dst, edit)


def _retask_in_copy(root: Path, old: list[str], new_task: str | None, episode_tasks: dict[int, str],
                    replacements: dict[str, str]) -> list[str]:  # fmt: skip
    def resolve(episode: int, text: str) -> str:
        return episode_tasks.get(episode) or replacements.get(text) or new_task or text

    tasks: list[str] = []  # new texts, in order of first use
    per_episode: dict[int, list[str]] = {}
    index_stats: dict[int, dict[str, np.ndarray]] = {}
    files = sorted_parquet_files(root / DATA_DIR)
    for path in files:
        table = read_parquet(path)
        eps = table.column("episode_index").to_numpy()
        texts = [resolve(int(e), old[int(t)]) for e, t in zip(eps, table.column("task_index").to_numpy(), strict=True)]
        for text in dict.fromkeys(texts):
            if text not in tasks:
                tasks.append(text)
        index = np.asarray([tasks.index(t) for t in texts], dtype=np.int64)
        pq.write_table(with_columns(table, {"task_index": index}), path)
        for e in np.unique(eps):
            sel = eps == e
            per_episode.setdefault(int(e), [])
            per_episode[int(e)] += [t for t in dict.fromkeys(np.asarray(texts, dtype=object)[sel]) if t not in per_episode[int(e)]]
            index_stats[int(e)] = st.vector_stats(index[sel])  # an episode's frames lie in one file, as written
    for path in sorted_parquet_files(root / EPISODES_DIR):
        table = read_parquet(path)
        eps = [int(e) for e in table.column("episode_index").to_numpy()]
        values = {"tasks": [per_episode.get(e, []) for e in eps]}
        values.update(renumbered_stats(table, {"task_index": [index_stats[e] for e in eps]}))
        pq.write_table(with_columns(table, values), path)
    pq.write_table(tasks_table(tasks), root / TASKS_PATH)
    info = load_json(root / INFO_PATH)
    aggregate_global_stats(root, info)
    (root / INFO_PATH).write_text(json.dumps({**info, "total_tasks": len(tasks)}, indent=4))
    return tasks
