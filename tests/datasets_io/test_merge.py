"""`twinarm dataset merge`: datasets of one robot as one, every frame as it was (videos copied, not re-encoded),
episodes, frames and tasks renumbered, stats aggregated; refusals that name what differs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ds_helpers import write_dataset

from twinarm.cli.main import main
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.merge import merge_datasets
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.writer import DatasetWriter

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lerobot_v3"
KEYS = ("observation.state", "action", "observation.images.front", "observation.images.wrist", "timestamp",
        "frame_index", "task")


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_merge_three_twinarm_datasets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    roots = [tmp_path / n for n in ("a", "b", "c")]
    recs = [write_dataset(roots[0], [5, 7], seed=0), write_dataset(roots[1], [6], seed=1),
            write_dataset(roots[2], [4, 3, 8], seed=2)]
    before = [digest(r) for r in roots]
    assert main(["dataset", "merge", *map(str, roots), "--out", str(tmp_path / "all")]) == 0
    assert "3 datasets, 6 episodes, 33 frames, 2 task(s)" in capsys.readouterr().out
    out = tmp_path / "all"
    assert [digest(r) for r in roots] == before  # the sources are untouched
    assert check_dataset(out, deep=True) == []
    merged = LeRobotDatasetReader(out)
    parts = [LeRobotDatasetReader(r) for r in roots]
    assert len(merged) == sum(len(p) for p in parts) == 33
    i = 0
    for p in parts:
        for j in range(len(p)):
            x, y = merged[i], p[j]
            for k in KEYS:
                assert (x[k] == y[k]) if k == "task" else torch.equal(x[k], y[k]), (k, i)
            i += 1
    episodes = [int(merged[i]["episode_index"]) for i in range(len(merged))]
    assert np.bincount(episodes).tolist() == [5, 7, 6, 4, 3, 8]
    assert [int(merged[i]["index"]) for i in range(len(merged))] == list(range(33))
    # Stats are those of all frames.
    state = np.concatenate([np.stack(r["state"]) for r in recs]).astype(np.float64)
    stats = json.loads((out / "meta" / "stats.json").read_text())
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-5, atol=1e-6)
    assert stats["observation.state"]["count"] == [33] and stats["episode_index"]["max"] == [5]
    # A merged dataset takes more episodes like any other.
    w = DatasetWriter.resume(out)
    for _ in range(2):
        w.add_frame({"observation.state": np.zeros(3, np.float32), "action": np.zeros(3, np.float32),
                     "observation.images.wrist": np.zeros((16, 24, 3), np.uint8),
                     "observation.images.front": np.zeros((32, 48, 3), np.uint8)}, task="A new task.")
    w.save_episode()
    w.finalize()
    assert check_dataset(out, deep=True) == [] and len(LeRobotDatasetReader(out)) == 35


def test_merge_lerobot_written_datasets(tmp_path: Path) -> None:
    """LeRobot 0.6.1's AV1 recording twice: six episodes, every frame as in the source."""
    src = FIXTURES / "video_av1"
    shutil.copytree(src, tmp_path / "copy")
    out = merge_datasets([src, tmp_path / "copy"], tmp_path / "out")
    assert check_dataset(out, deep=True) == []
    one, two = LeRobotDatasetReader(src), LeRobotDatasetReader(out)
    assert len(two) == 2 * len(one)
    keys = ("observation.state", "action", "observation.images.front", "observation.images.wrist")
    for j in range(len(two)):
        x, y = two[j], one[j % len(one)]
        for k in keys:
            assert torch.equal(x[k], y[k]), (k, j)
    assert int(two[len(one)]["episode_index"]) == json.loads((src / "meta" / "info.json").read_text())["total_episodes"]


def test_merge_refuses_what_does_not_fit(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_dataset(a, [3])
    write_dataset(b, [3], video=False)
    with pytest.raises(DatasetError, match="differ in features"):
        merge_datasets([a, b], tmp_path / "x")
    c = tmp_path / "c"
    write_dataset(c, [3], video_codec="av1")
    with pytest.raises(DatasetError, match="'observation.images.front'.*video codec, pixel format or size") as info:
        merge_datasets([a, c], tmp_path / "x")
    # with the ways out: co-train on both unmerged, or record in the other's codec
    assert str(info.value).endswith(f"so they must match. Train on both without merging: `twinarm train --dataset {a} "
                                    f"--dataset {c} ...`; or record with `twinarm record --codec h264` so that a "
                                    f"recording merges with {a}")  # fmt: skip
    with pytest.raises(DatasetError, match="two datasets or more"):
        merge_datasets([a], tmp_path / "x")
    with pytest.raises(DatasetError, match=r"/a is given more than once \(as .*/a and .*/b/\.\./a\): each dataset's episodes go in once"):
        merge_datasets([a, b, tmp_path / "b" / ".." / "a"], tmp_path / "x")  # the same folder by another path
    d = tmp_path / "d"
    write_dataset(d, [2], seed=3)
    w = DatasetWriter.resume(a)  # a recording appending to a: it is not copied halfway through
    try:
        with pytest.raises(DatasetError, match="is being written"):
            merge_datasets([d, a], tmp_path / "x")
    finally:
        w.finalize()
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.merging").exists()
