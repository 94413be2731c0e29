"""Hub access without a network: repo ids resolve from the HF cache offline, and fail with a named error."""

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
