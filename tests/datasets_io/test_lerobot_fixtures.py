"""twinarm reads datasets written by the real `lerobot` package exactly as LeRobot's own loader does, depth
cameras included (float32 millimetres from 12-bit HEVC codes and from metre TIFFs, stats in millimetres).

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
NAMES = ("video_av1", "video_h264", "images", "depth")
DELTAS = {"observation.state": [-0.2, -0.1, 0.0], "action": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "expected.npz") as z:
        return {k: z[k] for k in z.files}


def as_np(v: object, depth: bool = False) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        if v.dtype == torch.float32 and v.ndim >= 3 and not depth:  # colour: exactly k/255
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
            got = as_np(item[k], k in ds.meta.depth)
            assert got.shape == want.shape and got.dtype == want.dtype, f"{prefix}[{i}] {k}: {got.shape} {got.dtype}"
            assert np.array_equal(got, want), f"{prefix}[{i}] {k} differs from LeRobot's loader"
            checked += 1
        for k, v in item.items():  # float colour images are exactly uint8/255, as in LeRobot
            if isinstance(v, torch.Tensor) and v.dtype == torch.float32 and v.ndim >= 3 and k not in ds.meta.depth:
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
    stats = [k for k in expected if k.startswith(f"{name}/stats/")]  # depth stats, as LeRobot's loader holds them
    assert bool(stats) == bool(plain.meta.depth)
    for k in stats:
        feature, stat = k.split("/")[2:]
        np.testing.assert_array_equal(np.asarray(plain.stats[feature][stat]), expected[k], err_msg=k)


def test_depth_cameras_come_out_in_millimetres_through_every_path(tmp_path: Path) -> None:
    """A DataLoader's workers keep depth float (only colour crosses as uint8), image transforms skip depth, and
    both depth cameras (a 12-bit log-coded video, a metre TIFF) come out in the scene's millimetre range."""
    from twinarm.datasets_io.loader import make_dataloader

    root = FIXTURES / "depth"
    ds = LeRobotDatasetReader(root, image_transforms=lambda x: x * 0)
    item = ds[5]
    assert item["observation.images.wrist_depth"].abs().sum() > 0  # untouched by the transform
    plain = LeRobotDatasetReader(root, uint8_images=True)
    batch = next(iter(make_dataloader(plain, batch_size=4, num_workers=1)))
    for k in ("observation.images.depth", "observation.images.wrist_depth"):
        assert batch[k].dtype == torch.float32 and batch[k].shape[1] == 1
        np.testing.assert_array_equal(batch[k].numpy(), np.stack([plain[i][k].numpy() for i in range(4)]))
    video, image = item["observation.images.depth"][0], item["observation.images.wrist_depth"][0]
    assert 250 <= float(video.min()) and float(video.max()) <= 3500  # the fixture's scene: 0.25-3.5 m
    assert 250 <= float(image.min()) and float(image.max()) <= 3500


def test_depth_cameras_are_viewed_in_colour_and_left_out_of_policy_inputs(tmp_path: Path) -> None:
    from twinarm.agents.features import split_features
    from twinarm.datasets_io.viz import camera_rgb, render_episode

    ds = LeRobotDatasetReader(FIXTURES / "depth")
    inputs, outputs = split_features(ds.features)
    assert set(inputs) == {"observation.state"} and set(outputs) == {"action"}  # policy encoders take colour
    near_far = np.array([[[300.0, 3000.0]]], np.float32)  # (1, 1, 2) millimetres
    rgb = camera_rgb(near_far, (250.0, 3500.0))
    assert rgb.shape == (1, 2, 3) and rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[0, 1, 2] > rgb[0, 1, 0]  # near red, far blue
    sheet = render_episode(FIXTURES / "depth", 1, tmp_path / "view.png")
    assert sheet.stat().st_size > 0


def test_dataset_info_describes_depth_cameras(capsys: pytest.CaptureFixture[str]) -> None:
    from twinarm.cli.main import main

    assert main(["dataset", "info", str(FIXTURES / "depth")]) == 0
    out = capsys.readouterr().out
    assert "depth camera: float32 millimetres, log 12-bit codes over 0.01-10 m" in out
    assert "depth camera: float32 millimetres, stored in m" in out


@pytest.mark.parametrize("name", NAMES)
def test_lerobot_fixtures_pass_validator(name):
    before = sorted(p.name for p in (FIXTURES / name).rglob("*"))
    assert check_dataset(FIXTURES / name, deep=True) == []
    LeRobotDatasetReader(FIXTURES / name)[0]
    assert sorted(p.name for p in (FIXTURES / name).rglob("*")) == before  # reading never writes
