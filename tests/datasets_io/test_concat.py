"""ConcatReader: several datasets of one robot as one (co-training on sim and real recordings): indexing and
batches in order, stats pooled over every frame, mismatched datasets refused by name (`train --dataset A
--dataset B` is tested in tests/agents/test_training.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ds_helpers import write_dataset

from twinarm.datasets_io.concat import ConcatReader
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader


@pytest.fixture
def two(tmp_path: Path) -> tuple[list[Path], dict[str, np.ndarray]]:
    roots = [tmp_path / "sim", tmp_path / "real"]
    a = write_dataset(roots[0], [12, 7], seed=1)
    b = write_dataset(roots[1], [9], seed=2)
    return roots, {k: np.concatenate([np.stack(a[k]), np.stack(b[k])]) for k in ("state", "action")}


def test_frames_and_batches_come_from_the_right_dataset_in_order(two) -> None:  # noqa: ANN001
    roots, written = two
    cat = ConcatReader([LeRobotDatasetReader(r, delta_timestamps={"action": [0.0, 0.1]}) for r in roots])
    assert len(cat) == 28
    for i in (0, 18, 19, 27, -1):
        np.testing.assert_array_equal(cat[i]["observation.state"].numpy(), written["state"][i])
    idx = [20, 3, 27, 19, 0, 18, 25]
    batch = cat.get_batch(idx)
    one_by_one = [cat[i] for i in idx]
    for key in ("observation.state", "action", "action_is_pad", "observation.images.front", "episode_index"):
        torch.testing.assert_close(batch[key], torch.stack([s[key] for s in one_by_one]), rtol=0, atol=0)
    assert batch["task"] == [s["task"] for s in one_by_one]
    with pytest.raises(IndexError, match="out of range for 28 frames"):
        cat.get_batch([28])


def test_stats_are_pooled_over_every_frame(two) -> None:  # noqa: ANN001
    roots, written = two
    stats = ConcatReader([LeRobotDatasetReader(r) for r in roots]).stats
    assert stats is not None
    for key, col in (("observation.state", "state"), ("action", "action")):
        v = written[col].astype(np.float64)
        np.testing.assert_allclose(stats[key]["mean"], v.mean(0), rtol=1e-6)
        np.testing.assert_allclose(stats[key]["std"], v.std(0), rtol=1e-5)
        np.testing.assert_allclose(stats[key]["min"], v.min(0), rtol=1e-6)
        assert int(stats[key]["count"][0]) == 28


def test_datasets_that_do_not_match_are_refused_by_name(tmp_path: Path) -> None:
    write_dataset(tmp_path / "a", [5])
    write_dataset(tmp_path / "no_video", [5], video=False)
    with pytest.raises(DatasetError, match=r"no_video and .*a differ in features \['observation.images.front'\]"):
        ConcatReader([LeRobotDatasetReader(tmp_path / "a"), LeRobotDatasetReader(tmp_path / "no_video")])

