"""Fixtures for the datasets_io tests (helpers live in ds_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ds_helpers import write_dataset  # noqa: E402


@pytest.fixture
def small_dataset(tmp_path: Path) -> tuple[Path, dict[str, list]]:
    root = tmp_path / "ds"
    return root, write_dataset(root, [12, 7, 15])
