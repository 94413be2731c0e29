"""SIGKILL at any moment leaves a dataset whose finished episodes load and whose metadata is consistent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ds_helpers import crash_a_commit, write_dataset

from twinarm.datasets_io.layout import JOURNAL_PATH, LOCK_PATH, DatasetError, WriteLock
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.writer import DatasetWriter, repair

HERE = Path(__file__).parent


def total_episodes(root: Path) -> int:
    try:
        return json.loads((root / "meta/info.json").read_text())["total_episodes"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def kill_while_recording(root: Path, after_episodes: int, extra_delay: float, length: int = 9) -> None:
    proc = subprocess.Popen([sys.executable, str(HERE / "record_forever.py"), str(root), str(length)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while total_episodes(root) < after_episodes:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "recorder made no progress"
            time.sleep(0.01)
        time.sleep(extra_delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def assert_consistent(root: Path) -> int:
    info = json.loads((root / "meta/info.json").read_text())
    ds = LeRobotDatasetReader(root)  # finishes an interrupted commit if there is one
    info = json.loads((root / "meta/info.json").read_text())
    assert check_dataset(root, deep=True) == []
    assert len(ds) == info["total_frames"] == 9 * info["total_episodes"]
    for ep in range(info["total_episodes"]):
        rows = ds.episode_rows(ep)
        first, last = ds[rows.start], ds[rows.stop - 1]
        assert first["episode_index"].item() == ep and last["frame_index"].item() == 8
        assert first["observation.images.front"].shape == (3, 32, 48)
    return info["total_episodes"]


def test_sigkill_mid_recording_then_resume(tmp_path):
    root = tmp_path / "killed"
    rng = np.random.default_rng(0)
    counts = []
    for round_ in range(3):
        kill_while_recording(root, after_episodes=total_episodes(root) + 2, extra_delay=float(rng.uniform(0, 0.15)))
        counts.append(assert_consistent(root))
        assert round_ == 0 or counts[-1] > counts[-2]
    # the killed dataset can be resumed and keeps growing
    w = DatasetWriter.resume(root)
    n = w.num_episodes
    for t in range(9):
        w.add_frame({"observation.state": np.zeros(6, np.float32), "action": np.zeros(6, np.float32),
                     "observation.images.front": np.zeros((32, 48, 3), np.uint8),
                     "observation.images.wrist": np.full((32, 48, 3), t, np.uint8)}, task="After the crash.")
    assert w.save_episode() == n
    assert assert_consistent(root) == n + 1
    w.finalize()
    assert not (root / LOCK_PATH).exists()  # the killed writer's stale lock was taken over, then removed


def test_the_write_lock_file_exists_only_while_held(tmp_path, monkeypatch):
    """A finished dataset carries no `meta/.twinarm_lock` (LeRobot's push_to_hub would upload it); a held one
    still keeps every other writer, reader and repair out, and a forked child's copy does not drop it."""
    root = tmp_path / "ds"
    write_dataset(root, [3])
    assert not (root / LOCK_PATH).exists()
    w = DatasetWriter.resume(root)
    assert (root / LOCK_PATH).exists() and not WriteLock(root).acquire()
    with pytest.raises(DatasetError, match="another process is writing"):
        DatasetWriter.resume(root)
    pid = os.fork()
    if pid == 0:  # a forked child (a DataLoader worker, say) dropping its copy of the writer
        w._lock.release()
        os._exit(0)
    os.waitpid(pid, 0)
    assert (root / LOCK_PATH).exists() and not WriteLock(root).acquire()
    w.finalize()
    assert not (root / LOCK_PATH).exists()
    # a file its holder deletes between another's open and flock is not kept: the file the path names is locked
    import fcntl

    holder, real_flock, calls = WriteLock(root), fcntl.flock, []
    assert holder.acquire()

    def flock_after_the_holder_released(fd: int, op: int) -> None:
        if not calls:
            holder.release()  # unlinks the file this acquire has just opened
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_holder_released)
    other = WriteLock(root)
    assert other.acquire() and len(calls) == 2 and (root / LOCK_PATH).exists()
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert not WriteLock(root).acquire()
    other.release()


@pytest.mark.parametrize("fail_at", range(7))  # journal + tasks, video, data, episodes, stats, info
def test_interrupted_commit_rolls_forward_or_back(tmp_path, monkeypatch, fail_at):
    """Simulate a crash after `fail_at` file swaps of an episode commit (the journal is swap 0)."""
    root = tmp_path / "ds"
    write_dataset(root, [6, 5])
    before = json.loads((root / "meta/info.json").read_text())
    w = crash_a_commit(root, fail_at, monkeypatch)
    w.finalize()  # releases the write lock, as the OS does when a process dies
    journal_written = (root / JOURNAL_PATH).exists()
    repair(root)
    after = json.loads((root / "meta/info.json").read_text())
    assert check_dataset(root, deep=True) == []
    expected_eps = before["total_episodes"] + (1 if journal_written else 0)
    assert after["total_episodes"] == expected_eps
    assert len(LeRobotDatasetReader(root)) == after["total_frames"]
    assert not list(root.rglob("*.twinarm-tmp*"))


def test_corrupt_and_unknown_files_give_named_errors(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, [6, 5])

    bad = tmp_path / "badjson"
    shutil.copytree(root, bad)
    (bad / "meta/info.json").write_text("{ not json")
    with pytest.raises(DatasetError, match=r"info\.json: corrupt JSON"):
        LeRobotDatasetReader(bad)
    assert any("info.json" in p for p in check_dataset(bad))

    old = tmp_path / "v21"
    shutil.copytree(root, old)
    info = json.loads((old / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (old / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"unknown dataset version 'v2.1'.*convert"):
        LeRobotDatasetReader(old)
    with pytest.raises(DatasetError, match="unknown dataset version"):
        DatasetWriter.resume(old)

    pq_bad = tmp_path / "badparquet"
    shutil.copytree(root, pq_bad)
    data = pq_bad / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    with pytest.raises(DatasetError, match=r"file-000\.parquet: corrupt parquet"):
        LeRobotDatasetReader(pq_bad)
    assert any("data/chunk-000/file-000.parquet: corrupt parquet" in p for p in check_dataset(pq_bad))

    mp4_bad = tmp_path / "badmp4"
    shutil.copytree(root, mp4_bad)
    video = mp4_bad / "videos/observation.images.front/chunk-000/file-000.mp4"
    video.write_bytes(b"\x00" * 64 + video.read_bytes()[64:200])
    ds = LeRobotDatasetReader(mp4_bad)
    with pytest.raises(DatasetError, match=r"file-000\.mp4"):
        ds[3]
    assert any("file-000.mp4" in p for p in check_dataset(mp4_bad))

    missing = tmp_path / "missing"
    shutil.copytree(root, missing)
    video = missing / "videos/observation.images.front/chunk-000/file-000.mp4"
    video.unlink()
    assert any("not found" in p and "file-000.mp4" in p for p in check_dataset(missing))

    lied = tmp_path / "lied"
    shutil.copytree(root, lied)
    info = json.loads((lied / "meta/info.json").read_text())
    info["total_frames"] = 99
    (lied / "meta/info.json").write_text(json.dumps(info))
    assert any("total_frames is 99" in p for p in check_dataset(lied))
