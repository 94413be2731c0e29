"""Depth-camera storage formats beyond the LeRobot-written fixture: linear codes, info defaults, bad units."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from twinarm.datasets_io.depth import DEPTH_QMAX, DepthFormat, depth_format
from twinarm.datasets_io.layout import INFO_PATH, DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.validator import check_dataset

FIXTURE = Path(__file__).parents[1] / "fixtures/lerobot_v3/depth"


def _codes(*values: int) -> np.ndarray:
    return np.asarray(values, np.uint16).reshape(1, 1, -1, 1)  # (N, H, W, 1)


def test_linear_and_log_codes_span_depth_min_to_max_in_millimetres() -> None:
    linear = DepthFormat(video=True, unit="mm", depth_min=0.2, depth_max=2.0, use_log=False)
    out = linear.to_output(_codes(0, DEPTH_QMAX // 2, DEPTH_QMAX))
    assert out.dtype == np.float32 and out.shape == (1, 1, 1, 3)
    np.testing.assert_allclose(out.ravel(), [200.0, 200.0 + 1800.0 * (DEPTH_QMAX // 2) / DEPTH_QMAX, 2000.0], atol=0.5)
    log = DepthFormat(video=True, unit="mm")  # LeRobot's defaults: 0.01-10 m on a log scale shifted by 3.5 m
    lo, mid, hi = log.to_output(_codes(0, 2048, DEPTH_QMAX)).ravel()
    assert (lo, hi) == (10.0, 10000.0)
    want = np.exp(np.log(3.51) + 2048 / DEPTH_QMAX * (np.log(13.5) - np.log(3.51))) - 3.5  # metres, in float64
    assert abs(mid - 1000 * want) <= 1.0  # float32 arithmetic, rounded to whole millimetres as LeRobot does
    assert np.all(np.diff(log.to_output(_codes(*range(0, DEPTH_QMAX, 7))).ravel()) >= 0)  # monotone


def test_info_defaults_units_and_stats() -> None:
    video = depth_format({"dtype": "video", "info": {"is_depth_map": True, "video.depth_max": 4.0, "video.use_log": False}})
    assert (video.depth_min, video.depth_max, video.shift, video.use_log, video.unit) == (0.01, 4.0, 3.5, False, None)
    metres = depth_format({"dtype": "image", "info": {"is_depth_map": True, "depth_unit": "m"}})
    assert metres.to_output(np.full((1, 2, 2, 1), 0.75, np.float32)).ravel().tolist() == [750.0] * 4
    stats = metres.stats_to_output({"min": np.array([[[0.25]]]), "max": np.array([[[1.5]]]), "count": np.array([9])})
    assert stats["min"].item() == 250.0 and stats["max"].item() == 1500.0 and stats["count"].item() == 9
    raw = depth_format({"dtype": "image", "info": {"is_depth_map": True}})  # no unit: as stored, like LeRobot
    assert raw.to_output(np.full((1, 1, 1, 1), 3, np.uint16)).item() == 3.0
    with pytest.raises(ValueError, match="depth_unit must be 'm' or 'mm'"):
        depth_format({"dtype": "image", "info": {"is_depth_map": True, "depth_unit": "cm"}})


def test_a_bad_depth_unit_is_named_by_the_reader_and_the_checker(tmp_path: Path) -> None:
    root = tmp_path / "depth"
    shutil.copytree(FIXTURE, root)
    info = json.loads((root / INFO_PATH).read_text())
    info["features"]["observation.images.wrist_depth"]["info"]["depth_unit"] = "inches"
    (root / INFO_PATH).write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"info.json: feature 'observation.images.wrist_depth': depth_unit must be"):
        LeRobotDatasetReader(root)
    assert any("depth feature 'observation.images.wrist_depth': depth_unit must be" in p for p in check_dataset(root))
