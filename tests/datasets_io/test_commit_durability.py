"""The commit's durability order for a power cut (not just a kill): every staged file, the re-muxed video
included, is fsynced before it is renamed into place; the journal reaches the disk (its folder fsynced)
before the first rename; the renamed files' folders are fsynced before the journal is removed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import twinarm.datasets_io.writer as writer_mod
from twinarm.datasets_io.layout import JOURNAL_PATH
from twinarm.datasets_io.writer import DatasetWriter

FEATS = {"observation.state": {"dtype": "float32", "shape": [2], "names": None},
         "observation.images.cam": {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]}}


def _record_events(monkeypatch, root: Path) -> list[tuple]:
    events: list[tuple] = []
    real_replace, real_fsync_file, real_fsync_dir = os.replace, writer_mod.fsync_file, getattr(writer_mod, "fsync_dir", None)

    def replace(src, dst, *a, **k):
        events.append(("replace", Path(src), Path(dst), (root / JOURNAL_PATH).exists()))
        return real_replace(src, dst, *a, **k)

    def fsync_file(path):
        events.append(("fsync_file", Path(path)))
        return real_fsync_file(path)

    def fsync_dir(path):
        events.append(("fsync_dir", Path(path), (root / JOURNAL_PATH).exists()))
        if real_fsync_dir is not None:
            real_fsync_dir(path)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(writer_mod, "fsync_file", fsync_file)
    monkeypatch.setattr(writer_mod, "fsync_dir", fsync_dir, raising=False)
    return events


def test_commit_fsyncs_video_and_folders_in_order(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, 10, FEATS)
    for ep in range(2):  # the second commit re-muxes the first episode's video into the new temp file
        for t in range(3):
            w.add_frame({"observation.state": np.zeros(2, np.float32),
                         "observation.images.cam": np.full((16, 16, 3), 40 * t, np.uint8)}, task="t")
        if ep == 1:
            events = _record_events(monkeypatch, root)
        w.save_episode()
    w.finalize()
    journal = root / JOURNAL_PATH
    renames = [e for e in events if e[0] == "replace" and e[2] != journal]
    journal_at = next(i for i, e in enumerate(events) if e[0] == "replace" and e[2] == journal)
    first_rename = events.index(renames[0])
    last_rename = events.index(renames[-1])
    videos = [e for e in renames if e[2].suffix == ".mp4"]
    assert videos
    for e in videos:  # (the parquet and json temp files are fsynced as layout.py writes them)
        assert ("fsync_file", e[1]) in events[:events.index(e)], f"{e[1].name} renamed before it was fsynced"
    assert ("fsync_dir", root / "meta", True) in events[journal_at:first_rename], "journal not durable before renames"
    synced_after = {e[1] for e in events[last_rename:] if e[0] == "fsync_dir" and e[2]}  # journal still there
    assert {e[2].parent for e in renames} <= synced_after
