"""Bad requests to the dataset edits (delete-episodes, split, merge, rename-feature, remove-feature, view) are
refused up front with a message naming the path or flag at fault, and leave nothing behind: no output inside a
source, no split outside --out, no half-made copy."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from ds_helpers import FPS, H, W, feats, front_image, write_dataset

from twinarm.cli.main import main
from twinarm.datasets_io.edit import delete_episodes
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.merge import merge_datasets
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.remove_feature import remove_features
from twinarm.datasets_io.rename_feature import rename_features
from twinarm.datasets_io.split import split_dataset
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.viz import render_episode
from twinarm.datasets_io.writer import DatasetWriter

HALVES = {"train": 0.5, "val": 0.5}


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def pick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dataset (a video and an image camera) the tests read but never change."""
    root = tmp_path_factory.mktemp("src") / "pick"
    write_dataset(root, [3, 3, 3])
    return root


@pytest.fixture
def copy_of(pick: Path, tmp_path: Path):  # noqa: ANN201
    """A copy of `pick` under `tmp_path` to break or to write into."""
    def make(name: str = "pick") -> Path:
        return Path(shutil.copytree(pick, tmp_path / name))
    return make


def test_outputs_inside_a_source_are_refused(copy_of, tmp_path: Path) -> None:  # noqa: ANN001
    src, other = copy_of(), copy_of("reach")
    before = digest(src)
    video = next((src / "videos").rglob("*.mp4"))
    refused = [
        (lambda: delete_episodes(src, src / "sub", [1]), "is inside the source dataset"),
        (lambda: merge_datasets([src, other], src / "merged"), "is inside the source dataset"),
        (lambda: merge_datasets([other, src], src / "merged"), "is inside the source dataset"),
        (lambda: split_dataset(src, src, HALVES), "is inside the source dataset"),
        (lambda: split_dataset(src, src / "splits", HALVES), "is inside the source dataset"),
        (lambda: rename_features(src, src / "x", {"observation.state": "observation.joints"}),
         "is inside the source dataset"),
        (lambda: remove_features(src, src / "x", ["observation.state"]), "is inside the source dataset"),
        (lambda: render_episode(src, 0, video), "is inside the source dataset"),
    ]
    for call, said in refused:
        with pytest.raises(DatasetError, match=f"{said} {src}"):
            call()
    assert digest(src) == before  # nothing written into it, its video not overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pick", "reach"]


def test_a_temp_folder_that_would_be_the_source_is_refused(copy_of, tmp_path: Path) -> None:  # noqa: ANN001
    """`<out>.editing` is wiped before the copy: a source of that name must not be."""
    src = copy_of("o.editing")
    before = digest(src)
    with pytest.raises(DatasetError, match=r"temp folder .*o\.editing would replace the source dataset"):
        delete_episodes(src, tmp_path / "o", [1])
    assert digest(src) == before


def test_split_into_the_source_by_cli_names_both(copy_of, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    src = copy_of()
    before = digest(src)
    assert main(["dataset", "split", str(src), "--out", str(src / "splits"), "--splits", "train=0.5", "val=0.5"]) == 1
    err = capsys.readouterr().err
    assert f"{src / 'splits' / 'train'} is inside the source dataset {src}" in err
    assert digest(src) == before


@pytest.mark.parametrize("edit", [["remove-feature", "--feature", "action"], ["rename-feature", "--rename", "action=act"]])
def test_removing_or_renaming_action_is_refused_naming_the_dataset(pick: Path, tmp_path: Path, edit: list[str],
                                                                   capsys: pytest.CaptureFixture) -> None:
    """Without `action` no policy trains on the copy (audit B12): one error line saying why, naming the source."""
    before = digest(pick)
    assert main(["dataset", edit[0], str(pick), str(tmp_path / "o"), *edit[1:]]) == 1
    err = capsys.readouterr().err.splitlines()[0]
    assert err.startswith(f"twinarm dataset: error: {pick}: ") and "'action'" in err, err
    assert "no policy could train on the copy" in err, err
    assert list(tmp_path.iterdir()) == [] and digest(pick) == before


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", "."])
def test_split_names_are_plain_folder_names(pick: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match="plain folder name"):
        split_dataset(pick, tmp_path / "o", {name: 0.5, "val": 0.5})
    assert list(tmp_path.iterdir()) == []


def test_split_out_that_is_a_file(pick: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    with pytest.raises(DatasetError, match=f"--out {out} is a file"):
        split_dataset(pick, out, HALVES)
    assert out.read_text() == "mine"


def test_a_failed_split_leaves_nothing(copy_of, tmp_path: Path) -> None:  # noqa: ANN001
    """A source missing its video fails the split; no --out folder (nor its new parents) stays behind."""
    bad = copy_of("bad")
    next((bad / "videos").rglob("*.mp4")).unlink()
    with pytest.raises(DatasetError):
        split_dataset(bad, tmp_path / "new" / "splits", HALVES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_a_failed_copy_leaves_no_editing_folder(copy_of, tmp_path: Path) -> None:  # noqa: ANN001
    """The copy itself fails (a dangling link in the source): no `<out>.editing` stays behind."""
    src = copy_of()
    (src / "meta" / "notes.txt").symlink_to(tmp_path / "gone")
    with pytest.raises(DatasetError, match=f"{src}: cannot copy it: .*No such file"):
        delete_episodes(src, tmp_path / "o", [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pick"]


def test_errors_in_the_temp_copy_name_the_source(copy_of, tmp_path: Path) -> None:  # noqa: ANN001
    """A fault found while editing `<out>.editing` (or `<out>.merging`) is the source's: its path is named."""
    no_video = copy_of("no_video")
    video = next((no_video / "videos").rglob("*.mp4"))
    video.unlink()
    corrupt = copy_of("corrupt")
    data = next((corrupt / "data").rglob("*.parquet"))
    data.write_bytes(b"not parquet")
    miscounted = copy_of("miscounted")
    info = json.loads((miscounted / "meta" / "info.json").read_text())
    (miscounted / "meta" / "info.json").write_text(json.dumps({**info, "total_episodes": 4}))
    no_tasks, reach = copy_of("no_tasks"), copy_of("reach")
    (no_tasks / "meta" / "tasks.parquet").unlink()
    cases = [
        (lambda: delete_episodes(no_video, tmp_path / "o", [1]), f"No such file or directory: '{video}'"),
        (lambda: delete_episodes(corrupt, tmp_path / "o", [1]), f"{data}: corrupt parquet"),
        (lambda: delete_episodes(miscounted, tmp_path / "o", [1]), f"{miscounted / 'meta' / 'episodes'}: episode rows"),
        (lambda: merge_datasets([no_tasks, reach], tmp_path / "o"), f"{no_tasks / 'meta' / 'tasks.parquet'}: file"),
    ]
    for call, said in cases:
        with pytest.raises(DatasetError) as caught:
            call()
        assert said in str(caught.value) and ".editing" not in str(caught.value) and ".merging" not in str(caught.value)
    assert not (tmp_path / "o").exists()


def test_merge_refuses_episodes_past_the_data(copy_of, tmp_path: Path) -> None:  # noqa: ANN001
    """meta/episodes that runs past the data's end is named, not copied into the merge."""
    past = copy_of("d_past")
    path = next((past / "meta" / "episodes").rglob("*.parquet"))
    table = pq.read_table(path)
    ends = table.column("dataset_to_index").to_pylist()
    i = table.column_names.index("dataset_to_index")
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array([*ends[:-1], ends[-1] + 5], pa.int64())), path)
    with pytest.raises(DatasetError, match=f"{past}: data files hold 9 frames but meta/episodes ends at 14"):
        merge_datasets([copy_of(), past], tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_merge_of_images_and_video_points_at_convert_to_video(pick: Path, tmp_path: Path) -> None:
    png = tmp_path / "pick_png"
    write_dataset(png, [3], use_videos=False)
    with pytest.raises(DatasetError) as caught:
        merge_datasets([pick, png], tmp_path / "o")
    said = str(caught.value)
    assert f"{png} stores it as images, {pick} as video" in said
    assert f"twinarm dataset convert-to-video {png} OUT" in said and "(" not in said


def two_video_cameras(root: Path) -> None:
    """Two episodes of two video cameras with different frames (a swap must be visible in the frames)."""
    cam = {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]}
    features = {"observation.state": feats()["observation.state"], "action": feats()["action"],
                "observation.images.front": cam, "observation.images.wrist": cam}  # fmt: skip
    w = DatasetWriter.create(root, FPS, features, robot_type="test_arm")
    for e in range(2):
        for t in range(3):
            w.add_frame({"observation.state": np.zeros(3, np.float32), "action": np.zeros(3, np.float32),
                         "observation.images.front": front_image(e, t),
                         "observation.images.wrist": front_image(e + 2, t)[::-1].copy()}, task="Pick.")  # fmt: skip
        w.save_episode()
    w.finalize()


def test_rename_swaps_two_cameras(tmp_path: Path) -> None:
    src = tmp_path / "two"
    two_video_cameras(src)
    front, wrist = "observation.images.front", "observation.images.wrist"
    out = rename_features(src, tmp_path / "o", {front: wrist, wrist: front})
    assert check_dataset(out) == []
    old, new = LeRobotDatasetReader(src), LeRobotDatasetReader(out)
    for i in range(len(old)):
        assert torch.equal(new[i][wrist], old[i][front]) and torch.equal(new[i][front], old[i][wrist]), i
    assert sorted(p.name for p in (out / "videos").iterdir()) == [front, wrist]


def test_rename_refuses_a_new_key_with_a_slash(pick: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'observation.images.a/b': feature keys cannot contain '/'"):
        rename_features(pick, tmp_path / "o", {"observation.images.front": "observation.images.a/b"})
    assert list(tmp_path.iterdir()) == []
