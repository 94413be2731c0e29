"""A read-only copy of a dataset whose last commit was interrupted (journal left behind): twinarm cannot repair
it in place, and must neither crash on the lock file nor lose the interrupted episode."""

from __future__ import annotations

import errno
import json

import pytest
from ds_helpers import crash_a_commit, write_dataset

from twinarm.datasets_io.layout import JOURNAL_PATH, DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.writer import WriteLock, repair


def _interrupt_commit(root, monkeypatch, swaps: int) -> None:
    """Record a third episode and crash after `swaps` file swaps of its commit; its journal stays behind."""
    crash_a_commit(root, swaps, monkeypatch).finalize()
    assert (root / JOURNAL_PATH).exists()


def _read_only(monkeypatch) -> None:
    """As on a read-only mount (tests may run as root, where chmod does not stop writes): the lock file cannot
    be created."""
    def acquire(self):
        raise OSError(errno.EROFS, "Read-only file system", str(self.path))

    monkeypatch.setattr(WriteLock, "acquire", acquire)


def _files(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def test_read_only_copy_with_unstarted_commit_opens_as_before_and_warns(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    write_dataset(root, [6, 5])
    _interrupt_commit(root, monkeypatch, swaps=1)  # journal written, no file swapped in yet
    files = _files(root)
    with monkeypatch.context() as m:
        _read_only(m)
        with pytest.warns(UserWarning, match=r"read-only.*twinarm dataset check --repair"):
            ds = LeRobotDatasetReader(root)
        assert ds.meta.total_episodes == 2 and len(ds) == 11
        assert ds[10]["observation.state"].shape == (3,)
        assert _files(root) == files  # nothing written or deleted: the interrupted episode is kept
    assert repair(root)  # on a writable copy the episode comes back
    ds = LeRobotDatasetReader(root)
    assert ds.meta.total_episodes == 3 and len(ds) == 18


def test_read_only_copy_with_half_applied_commit_is_refused_naming_the_repair(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    write_dataset(root, [6, 5])
    _interrupt_commit(root, monkeypatch, swaps=3)  # journal and two files swapped in, the rest not
    files = _files(root)
    with monkeypatch.context() as m:
        _read_only(m)
        with pytest.raises(DatasetError, match=r"interrupted halfway.*read-only.*twinarm dataset check --repair"):
            LeRobotDatasetReader(root)
        assert _files(root) == files
    assert repair(root)
    assert json.loads((root / "meta/info.json").read_text())["total_episodes"] == 3
    assert len(LeRobotDatasetReader(root)) == 18
