"""Hub access without a network: repo ids resolve from the HF cache offline, and fail with a named error; pushes
that reach no Hub say so in one line."""

from __future__ import annotations

import shutil

import pytest
from ds_helpers import write_dataset

from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader


def test_offline_repo_id_served_from_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf/hub"))
    with pytest.raises(DatasetError, match="user/not_here"):
        LeRobotDatasetReader("user/not_here")
    # a snapshot laid out as huggingface_hub caches it is found offline
    snap = tmp_path / "hf/hub/datasets--user--cached/snapshots/0123456789abcdef0123456789abcdef01234567"
    write_dataset(tmp_path / "src", [4, 3])
    shutil.copytree(tmp_path / "src", snap)
    refs = tmp_path / "hf/hub/datasets--user--cached/refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    ds = LeRobotDatasetReader("user/cached")
    assert len(ds) == 7 and ds.root == snap


def test_a_push_that_cannot_reach_the_hub_is_one_line(tmp_path, monkeypatch, capsys):
    """`twinarm dataset push` with the real Hub client and no Hub to reach: one line naming the dataset and repo."""
    import huggingface_hub.constants

    from twinarm.cli.main import TRACEBACK_ENV, main

    root = tmp_path / "ds"
    write_dataset(root, [4, 3])
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    assert main(["dataset", "push", str(root), "--repo-id", "me/ds"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"twinarm dataset: error: pushing {root} to the Hub dataset repo me/ds failed: ")
    assert "Traceback" not in err


def test_a_repo_id_is_found_in_lerobots_local_dataset_folder(tmp_path, monkeypatch, capsys):
    """`LeRobotDataset("me/rec")` reads `$HF_LEROBOT_HOME/me/rec` (its default root); twinarm's repo ids look
    there first too, offline, and a local path named as such still wins; the not-found message names the folder."""
    import huggingface_hub.constants as c

    from twinarm.cli.main import main

    home = tmp_path / "lerobot_home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf/hub"))
    monkeypatch.setenv("HF_LEROBOT_HOME", str(home))
    write_dataset(home / "me/rec", [4, 3])
    ds = LeRobotDatasetReader("me/rec")
    assert len(ds) == 7 and ds.root == home / "me/rec"
    assert main(["dataset", "info", "me/rec"]) == 0
    monkeypatch.chdir(tmp_path)  # ./me/rec, a path that exists, wins over the repo id
    write_dataset(tmp_path / "me/rec", [2])
    assert len(LeRobotDatasetReader("me/rec")) == 2
    with pytest.raises(DatasetError, match=f"not in LeRobot's local dataset folder \\({home / 'me/gone'}: "
                                           "HF_LEROBOT_HOME/OWNER/NAME\\) and could not be fetched from the Hub"):
        LeRobotDatasetReader("me/gone")
    with pytest.raises(DatasetError, match=r"not a local directory \(no me/gone here, though me/ exists\)"):
        LeRobotDatasetReader("me/gone")  # ./me exists: a mistyped local path reads as one


def test_the_reader_is_called_as_lerobots_dataset_is(tmp_path, monkeypatch):
    """`LeRobotDatasetReader(repo_id=..., root=...)` as `LeRobotDataset(repo_id=..., root=...)`: root wins when it
    holds the dataset, repo_id alone resolves as a repo id; `camera_keys` lists the camera features."""
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf/hub"))
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    write_dataset(tmp_path / "x", [4, 3])
    ds = LeRobotDatasetReader(repo_id="local/x", root=tmp_path / "x")
    assert len(ds) == 7 and ds.root == tmp_path / "x" and ds.repo_id == "local/x"
    assert ds.camera_keys == ["observation.images.wrist", "observation.images.front"]  # in features order
    assert LeRobotDatasetReader(root=tmp_path / "x").root == tmp_path / "x"
    shutil.copytree(tmp_path / "x", tmp_path / "home/local/y")
    assert len(LeRobotDatasetReader(repo_id="local/y")) == 7
    with pytest.raises(TypeError, match="give the dataset once"):
        LeRobotDatasetReader(tmp_path / "x", repo_id="local/x")
    with pytest.raises(TypeError, match="missing the dataset"):
        LeRobotDatasetReader()


def test_a_malformed_repo_id_is_refused_when_recording_and_named_when_pushing(tmp_path, capsys):
    """`record --repo-id "not a repo id"` was kept, and `dataset push` failed long after, telling the user to
    check the network and their token (bad-input audit B13)."""
    import pytest

    from twinarm.cli.main import main
    from twinarm.datasets_io.hub import HubError, hub_errors

    for bad in ("not a repo id", "no_owner", "a/b/c"):
        with pytest.raises(SystemExit) as info:
            main(["record", "--root", str(tmp_path / "ds"), "--repo-id", bad])
        assert info.value.code == 2 and "argument --repo-id" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
    from huggingface_hub.utils import validate_repo_id

    with pytest.raises(HubError) as caught, hub_errors("pushing ds to the Hub dataset repo not a repo id"):
        validate_repo_id("not a repo id")
    assert "Repo id must" in str(caught.value) and "network" not in str(caught.value)
