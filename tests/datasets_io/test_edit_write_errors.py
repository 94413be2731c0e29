"""A copy-and-edit tool (delete-episodes, merge, ...) whose output cannot be written (a read-only or full disk)
names the output, not the source: the temp copy sits beside the output, and its write errors used to be
reported with the source's path (bad-input audit B4). The disk errors are raised where the copy writes: root in a
test container writes anywhere, so a read-only mount cannot be made here."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from ds_helpers import write_dataset

from twinarm.datasets_io import edit
from twinarm.datasets_io.edit import delete_episodes
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.merge import merge_datasets


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("src") / "pick"
    write_dataset(root, [3, 3])
    shutil.copytree(root, root.with_name("other"))  # a second source for merge
    return root


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_a_temp_copy_that_cannot_be_made_names_the_output(src: Path, tmp_path: Path, code: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    def refuse(_from: object, to: object, **_: object) -> None:
        raise OSError(code, os.strerror(code), str(to))

    monkeypatch.setattr(edit.shutil, "copytree", refuse)
    out = tmp_path / "ro" / "out"
    for call in (lambda: delete_episodes(src, out, [0]), lambda: merge_datasets([src, src.with_name("other")], out)):
        with pytest.raises(DatasetError) as caught:
            call()
        said = str(caught.value)
        assert said.startswith(f"{out}: cannot write the result there ({os.strerror(code)})") and str(src) in said


def test_a_copy_that_fills_the_disk_half_way_names_the_output(src: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    copytree = shutil.copytree

    def full(a: str, b: str, **kw: object) -> object:
        if b.endswith(".parquet") and "/data/" in b:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), b)
        return shutil.copy2(a, b, **kw)

    def filling(a: str, b: str, *args: object, **kw: object) -> object:  # copytree's recursion passes args on
        return copytree(a, b, *args, **kw) if args else copytree(a, b, copy_function=full, **kw)

    monkeypatch.setattr(edit.shutil, "copytree", filling)
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=rf"^{out}: cannot write the result there \(No space left on device\)"):
        delete_episodes(src, out, [0])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-made is left
