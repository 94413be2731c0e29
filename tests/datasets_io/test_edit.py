"""`twinarm dataset delete-episodes`: a copy without some episodes, renumbered, stats recomputed, videos remuxed
(kept frames bit-identical, deleted footage cut out), on twinarm-written and LeRobot-written datasets."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from ds_helpers import FPS, write_dataset

from twinarm.cli.main import main
from twinarm.datasets_io.edit import _remux_segments, delete_episodes
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.writer import DatasetWriter

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lerobot_v3"
LENGTHS = [12, 7, 15, 9, 11]


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def frames(reader: LeRobotDatasetReader, keys: tuple[str, ...]) -> list[dict[str, torch.Tensor]]:
    return [{k: reader[i][k] for k in keys} for i in range(len(reader))]


def test_delete_episodes_of_a_twinarm_dataset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rec = write_dataset(src, LENGTHS)
    before = digest(src)
    out, notes = delete_episodes(src, tmp_path / "out", [1, 3])  # every episode of the second task
    assert notes == [] and digest(src) == before  # the source is untouched
    assert check_dataset(out, deep=True) == []
    info = json.loads((out / "meta" / "info.json").read_text())
    kept = [0, 2, 4]
    n = sum(LENGTHS[e] for e in kept)
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, n, 1)
    assert info["splits"] == {"train": "0:3"}

    old, new = LeRobotDatasetReader(src), LeRobotDatasetReader(out)
    keys = ("observation.state", "action", "observation.images.front", "observation.images.wrist", "timestamp")
    starts = np.cumsum([0] + LENGTHS)
    old_rows = [i for e in kept for i in range(starts[e], starts[e + 1])]
    a, b = frames(new, keys), [dict((k, old[i][k]) for k in keys) for i in old_rows]
    for x, y in zip(a, b, strict=True):
        for k in keys:
            assert torch.equal(x[k], y[k]), k  # video frames too: remuxed, not re-encoded
    assert [int(new[i]["index"]) for i in range(n)] == list(range(n))
    assert [int(new[i]["episode_index"]) for i in range(n)] == [e for e, m in enumerate(LENGTHS[k] for k in kept) for _ in range(m)]
    assert {new[i]["task"] for i in range(n)} == {"Pick up the cube."}
    assert set(pq.read_table(next((out / "data").rglob("*.parquet"))).column("task_index").to_pylist()) == {0}

    # Stats are those of the kept frames.
    state = np.stack([rec["state"][i] for i in old_rows]).astype(np.float64)
    stats = json.loads((out / "meta" / "stats.json").read_text())
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["min"], state.min(0), rtol=1e-6)
    assert stats["observation.state"]["count"] == [n] and stats["index"]["max"] == [n - 1]
    assert stats["episode_index"]["max"] == [2]
    # The deleted footage is gone from the video file.
    video = next((out / "videos").rglob("*.mp4"))
    assert video.stat().st_size < next((src / "videos").rglob("*.mp4")).stat().st_size


@pytest.mark.parametrize(("name", "drop"), [("video_av1", 1), ("depth", 0)])
def test_delete_episodes_of_a_lerobot_written_dataset(name: str, drop: int, tmp_path: Path) -> None:
    """LeRobot 0.6.1's own recordings (AV1 video and PNG images; a depth camera as 12-bit HEVC and as TIFF
    images): the copy passes the checks and every kept frame reads as before."""
    src = FIXTURES / name
    out, notes = delete_episodes(src, tmp_path / "out", [drop])
    assert notes == [] and check_dataset(out, deep=True) == []
    old, new = LeRobotDatasetReader(src), LeRobotDatasetReader(out)
    ep = np.asarray([int(old[i]["episode_index"]) for i in range(len(old))])
    old_rows = np.flatnonzero(ep != drop)
    assert len(new) == old_rows.size and 0 < len(new) < len(old)
    keys = [k for k in old.features if k not in ("index", "episode_index", "task_index")]
    for j, i in enumerate(old_rows):
        x, y = new[j], old[int(i)]
        for k in keys:
            assert torch.equal(x[k], y[k]), (k, j)


def test_a_video_not_cut_on_keyframes_is_left_whole(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_dataset(src, [6, 6])
    video = next((src / "videos").rglob("*.mp4"))
    before = video.read_bytes()
    # twinarm's H.264 has a keyframe every 2 frames: a stretch from frame 1 starts mid-GOP.
    assert _remux_segments(video, [(1 / FPS, 3 / FPS)], [2], FPS) is None
    assert _remux_segments(video, [(0.0, 6 / FPS)], [5], FPS) is None  # frame count differs from the episode's
    assert video.read_bytes() == before


def test_bad_requests_are_refused_and_leave_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "src"
    write_dataset(src, [5, 5, 5], video=False)
    with pytest.raises(DatasetError, match=r"episode\(s\) \[7\] do not exist \(it has episodes 0..2\)"):
        delete_episodes(src, tmp_path / "a", [1, 7])
    with pytest.raises(DatasetError, match="deleting all 3 episodes"):
        delete_episodes(src, tmp_path / "a", [0, 1, 2])
    (tmp_path / "taken").mkdir()
    with pytest.raises(DatasetError, match="taken exists"):
        delete_episodes(src, tmp_path / "taken", [0])
    # A dataset a recording is appending to is not copied halfway through.
    writer = DatasetWriter.resume(src)
    try:
        with pytest.raises(DatasetError, match="is being written"):
            delete_episodes(src, tmp_path / "a", [0])
    finally:
        writer.finalize()
    # A corrupt data file fails the edit with its name, and no partial copy is left.
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    next((bad / "data").rglob("*.parquet")).write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="file-000.parquet"):
        delete_episodes(bad, tmp_path / "b", [0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "src", "taken"]
    # The CLI: ranges, and a usage error naming a bad item.
    assert main(["dataset", "delete-episodes", str(src), str(tmp_path / "c"), "--episodes", "0-1"]) == 0
    assert "without episode(s) [0, 1]" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "meta" / "info.json").read_text())["total_frames"] == 5
    with pytest.raises(SystemExit):
        main(["dataset", "delete-episodes", str(src), str(tmp_path / "d"), "--episodes", "x-2"])
    assert "episode 'x-2': give an index (3) or an inclusive range (7-9)" in capsys.readouterr().err
