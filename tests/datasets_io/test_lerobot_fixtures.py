"""twinarm reads datasets written by the real `lerobot` package exactly as LeRobot's own loader does.

The fixtures and `expected.npz` (LeRobot's loader output) come from tools/make_lerobot_fixtures.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import check_dataset

FIXTURES = Path(__file__).parents[1] / "fixtures/lerobot_v3"
NAMES = ("video_av1", "video_h264", "images")
DELTAS = {"observation.state": [-0.2, -0.1, 0.0], "action": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "expected.npz") as z:
        return {k: z[k] for k in z.files}


def as_np(v: object) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        if v.dtype == torch.float32 and v.ndim >= 3:
            return torch.round(v * 255).to(torch.uint8).numpy()
        return v.numpy()
    return np.asarray(v)


def compare(ds: LeRobotDatasetReader, expected: dict[str, np.ndarray], prefix: str) -> int:
    idx = expected[f"{prefix}/__indices__"]
    keys = [k[len(prefix) + 1:] for k in expected if k.startswith(prefix + "/") and not k.endswith("__indices__")]
    checked = 0
    for row, i in enumerate(idx):
        item = ds[int(i)]
        assert set(item) == set(keys), f"{prefix}[{i}]: keys {sorted(item)} vs LeRobot {sorted(keys)}"
        for k in keys:
            want = expected[f"{prefix}/{k}"][row]
            got = as_np(item[k])
            assert got.shape == want.shape and got.dtype == want.dtype, f"{prefix}[{i}] {k}: {got.shape} {got.dtype}"
            assert np.array_equal(got, want), f"{prefix}[{i}] {k} differs from LeRobot's loader"
            checked += 1
        for v in item.values():  # float images are exactly uint8/255, as in LeRobot
            if isinstance(v, torch.Tensor) and v.dtype == torch.float32 and v.ndim >= 3:
                assert torch.equal(torch.round(v * 255) / 255, v)
    return checked


@pytest.mark.parametrize("name", NAMES)
def test_reads_lerobot_dataset_like_lerobot(name, expected):
    root = FIXTURES / name
    cams = [k.split("/")[-1] for k in expected if k.startswith(f"{name}/plain/observation.images.")]
    plain = LeRobotDatasetReader(root)
    assert len(plain) == int(expected[f"{name}/len"])
    assert compare(plain, expected, f"{name}/plain") > 0
    deltas = {**DELTAS, **{k: [-0.1, 0.0] for k in cams}}
    assert compare(LeRobotDatasetReader(root, delta_timestamps=deltas), expected, f"{name}/delta") > 0
    sub = LeRobotDatasetReader(root, episodes=[1])
    assert len(sub) == int(expected[f"{name}/sub_len"])
    assert compare(sub, expected, f"{name}/sub") > 0


@pytest.mark.parametrize("name", NAMES)
def test_lerobot_fixtures_pass_validator(name):
    before = sorted(p.name for p in (FIXTURES / name).rglob("*"))
    assert check_dataset(FIXTURES / name, deep=True) == []
    LeRobotDatasetReader(FIXTURES / name)[0]
    assert sorted(p.name for p in (FIXTURES / name).rglob("*")) == before  # reading never writes
