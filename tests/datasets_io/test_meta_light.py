"""`twinarm dataset info` reads only `meta/`: it must not pull in torch (1.8 s of a 2.8 s `info` before), as the
metadata module (`datasets_io.meta`) keeps torch and video decoding out; the reader still re-exports its names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ds_helpers import write_dataset


def test_dataset_info_and_check_import_no_torch(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, [4, 3])
    probe = ("import sys\nfrom twinarm.cli.dataset_cmd import info_rows\nfrom twinarm.datasets_io.validator import "
             f"check_dataset\nrows = dict(info_rows({str(root)!r}))\nassert check_dataset({str(root)!r}) == []\n"
             "print(rows['episodes'], 'torch' in sys.modules)")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["2", "False"]


def test_the_reader_still_exports_the_metadata_names() -> None:
    from twinarm.datasets_io import meta, reader

    assert reader.DatasetMeta is meta.DatasetMeta and reader.resolve_root is meta.resolve_root
    assert reader.column_to_numpy is meta.column_to_numpy
