"""The dataset writer and reader refuse input they would otherwise store wrong or fail on deep inside,
with an error naming the argument or feature."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ds_helpers import FPS, feats, write_dataset  # noqa: E402

from twinarm.datasets_io.layout import STATS_PATH, DatasetError  # noqa: E402
from twinarm.datasets_io.reader import LeRobotDatasetReader  # noqa: E402
from twinarm.datasets_io.validator import check_dataset  # noqa: E402
from twinarm.datasets_io.writer import DatasetWriter  # noqa: E402


def frame(t: int = 0) -> dict[str, np.ndarray]:
    return {"observation.state": np.full(3, t, np.float32), "action": np.zeros(3, np.float32),
            "observation.images.wrist": np.zeros((16, 24, 3), np.uint8)}


@pytest.fixture
def writer(tmp_path: Path) -> DatasetWriter:
    return DatasetWriter.create(tmp_path / "w", FPS, feats(video=False))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("r") / "ds"
    write_dataset(root, [5, 4], video=False)
    return root


# ----- writer ---------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("key, value", [
    ("observation.state", np.full(3, np.inf, np.float32)),
    ("action", np.array([0.0, np.nan, 1.0], np.float32)),
    ("action", np.array([0.0, 1e39, 1.0])),  # float64 that overflows float32 to inf
])
def test_non_finite_floats_are_refused_by_feature_and_frame(writer, key, value):
    writer.add_frame(frame(0), task="t")
    writer.add_frame(frame(1), task="t")
    with pytest.raises(DatasetError, match=rf"feature '{key}': non-finite .*frame 2 of the episode"):
        writer.add_frame({**frame(2), key: value}, task="t")
    assert writer.episode_length == 2  # the refused frame was not buffered
    writer.save_episode()
    stats = json.loads((writer.root / STATS_PATH).read_text())
    assert np.isfinite(stats[key]["mean"]).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_float_image_is_refused(writer, bad):
    img = np.full((16, 24, 3), 0.5, np.float32)
    img[3, 4, 1] = bad
    with pytest.raises(DatasetError, match="feature 'observation.images.wrist': the float image holds NaN or inf"):
        writer.add_frame({**frame(), "observation.images.wrist": img}, task="t")
    writer.add_frame({**frame(), "observation.images.wrist": np.full((16, 24, 3), 0.5, np.float32)}, task="t")


@pytest.mark.parametrize("key, value", [("timestamp", 99.0), ("index", 7), ("frame_index", 0), ("episode_index", 0),
                                        ("task_index", 0)])
def test_the_keys_the_writer_sets_are_refused_in_a_frame(writer, key, value):
    with pytest.raises(DatasetError, match=rf"\['{key}'\] are set by the writer"):
        writer.add_frame({**frame(), key: value}, task="t")


def test_timestamps_are_the_frame_times(writer):
    for t in range(3):
        writer.add_frame(frame(t), task="t")
    writer.save_episode()
    ts = LeRobotDatasetReader(writer.root).column("timestamp")
    assert ts.tolist() == pytest.approx([0.0, 1 / FPS, 2 / FPS])


@pytest.mark.parametrize("fps", [29.97, "30", True, float("nan"), 0, -5])
def test_a_non_integer_or_non_positive_fps_is_refused(tmp_path, fps):
    with pytest.raises(DatasetError, match="fps must be"):
        DatasetWriter.create(tmp_path / "f", fps, feats(video=False))
    assert not (tmp_path / "f").exists()


def test_a_whole_float_fps_is_stored_as_an_int(tmp_path):
    w = DatasetWriter.create(tmp_path / "f", 30.0, feats(video=False))
    info = json.loads((tmp_path / "f/meta/info.json").read_text())
    assert info["fps"] == 30 and isinstance(info["fps"], int) and w.fps == 30


@pytest.mark.parametrize("shape", [6, "6", None])
def test_a_shape_that_is_not_a_list_is_refused_by_name(tmp_path, shape):
    with pytest.raises(DatasetError, match=r"feature 'action': shape must be a list of sizes, e.g. \[6\]"):
        DatasetWriter.create(tmp_path / "s", 30, {"action": {"dtype": "float32", "shape": shape}})


def test_saving_after_finalize_says_the_writer_is_finalized(writer):
    writer.add_frame(frame(), task="t")
    writer.save_episode()
    writer.finalize()
    with pytest.raises(DatasetError, match="the writer is finalized"):
        writer.save_episode()
    with pytest.raises(DatasetError, match="the writer is finalized"):
        writer.add_frame(frame(), task="t")


# ----- validator ------------------------------------------------------------------------------------
def test_check_reports_non_finite_stats(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, [4], video=False)
    assert check_dataset(root) == []
    stats = json.loads((root / STATS_PATH).read_text())
    stats["action"]["mean"][1] = float("nan")
    stats["observation.state"]["max"][0] = float("inf")
    stats["observation.state"]["q99"][2] = float("-inf")
    (root / STATS_PATH).write_text(json.dumps(stats))
    problems = check_dataset(root)
    assert any(p.startswith("meta/stats.json: action: mean hold NaN or inf") for p in problems), problems
    assert any(p.startswith("meta/stats.json: observation.state: max, q99 hold NaN") for p in problems), problems


def test_check_reports_non_finite_per_episode_stats(tmp_path):
    """meta/stats.json was checked, the per-episode stats columns it is aggregated from (on merge/split) were not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "ds"
    write_dataset(root, [4, 3, 5], video=False)
    (f,) = sorted((root / "meta/episodes").rglob("*.parquet"))
    t = pq.read_table(f)
    col = "stats/action/mean"
    rows = t.column(col).to_pylist()
    rows[1][0], rows[2] = float("nan"), None
    pq.write_table(t.set_column(t.column_names.index(col), col, pa.array(rows, t.schema.field(col).type)), f)
    problems = check_dataset(root)
    assert problems == [f"meta/episodes/{f.relative_to(root / 'meta/episodes')}: stats/action/mean: episode(s) "
                        "1, 2 hold NaN, inf or no numbers: merging or splitting the dataset aggregates them into "
                        "meta/stats.json, which a policy normalizes with"], problems  # fmt: skip


# ----- reader ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("index", [slice(1, 3), "5", 5.0, True, np.True_, None])
def test_a_non_int_item_index_is_a_type_error(dataset, index):
    ds = LeRobotDatasetReader(dataset)
    with pytest.raises(TypeError, match=r"index must be an int.*\(get_batch takes several\)"):
        ds[index]


def test_numpy_ints_still_index(dataset):
    ds = LeRobotDatasetReader(dataset)
    assert int(ds[np.int64(2)]["index"]) == 2 and int(ds[-1]["index"]) == len(ds) - 1


def test_get_batch_refuses_empty_and_non_integer_indices(dataset):
    ds = LeRobotDatasetReader(dataset)
    with pytest.raises(ValueError, match="get_batch: indices is empty"):
        ds.get_batch([])
    for bad in ([1.7], [0, 1.0], [True, False]):
        with pytest.raises(TypeError, match="get_batch: indices must be ints"):
            ds.get_batch(bad)
    assert ds.get_batch(np.array([3, 1]))["index"].tolist() == [3, 1]


@pytest.mark.parametrize("deltas", [0.1, [float("nan")], [0.0, float("inf")], "0.1", [[0.0]], ["a"], [True], []])
def test_bad_delta_timestamps_name_the_key(dataset, deltas):
    with pytest.raises(DatasetError, match=r"delta_timestamps\['action'\] must be a list of finite offsets"):
        LeRobotDatasetReader(dataset, delta_timestamps={"action": deltas})


def test_delta_timestamps_must_be_a_dict(dataset):
    with pytest.raises(DatasetError, match="delta_timestamps must be a dict"):
        LeRobotDatasetReader(dataset, delta_timestamps=[("action", [0.0])])


@pytest.mark.parametrize("episodes", [1, "1", [0.5], [[0]], {0: 1}])
def test_bad_episodes_are_refused_by_name(dataset, episodes):
    with pytest.raises(DatasetError, match=r"episodes must be a list of episode indices"):
        LeRobotDatasetReader(dataset, episodes=episodes)


def test_episodes_take_any_collection_of_ints(dataset):
    for eps in ([1], (1,), {1}, range(1, 2), np.array([1])):
        ds = LeRobotDatasetReader(dataset, episodes=eps)
        assert ds.episodes == [1] and len(ds) == 4


def test_a_single_camera_string_is_one_camera(dataset):
    ds = LeRobotDatasetReader(dataset, cameras="observation.images.wrist")
    assert ds.cameras == ["observation.images.wrist"]
    assert tuple(ds[0]["observation.images.wrist"].shape) == (3, 16, 24)
    with pytest.raises(DatasetError, match=r"cameras \['observation.images.nope'\] are not camera features"):
        LeRobotDatasetReader(dataset, cameras="observation.images.nope")
