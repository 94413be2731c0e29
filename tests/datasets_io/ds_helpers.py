"""Helpers for the datasets_io tests: small synthetic datasets written by twinarm.

A uniquely named module (not conftest) so imports cannot collide with other test folders' conftest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from twinarm.datasets_io.writer import DatasetWriter  # noqa: E402

FPS = 10
H, W = 32, 48


def feats(video: bool = True) -> dict:
    names = ["a.pos", "b.pos", "c.pos"]
    f = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": names},
        "action": {"dtype": "float32", "shape": [3], "names": names},
        "observation.images.wrist": {"dtype": "image", "shape": [16, 24, 3], "names": ["height", "width", "channels"]},
    }
    if video:
        f["observation.images.front"] = {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]}
    return f


def front_image(ep: int, t: int) -> np.ndarray:
    """A smooth, codec-friendly frame that differs per episode and step."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([(xx * 3 + t * 8 + ep * 40) % 256, (yy * 4 + t * 2) % 256, np.full_like(xx, (ep * 60 + 30) % 256)], -1)
    return img.astype(np.uint8)


def write_dataset(root: Path, lengths: list[int], video: bool = True, seed: int = 0, **kwargs: object) -> dict[str, list]:
    """Write episodes with known values (drawn from `seed`); returns what was written, per frame in dataset order."""
    rng = np.random.default_rng(seed)
    w = DatasetWriter.create(root, FPS, feats(video), robot_type="test_arm", **kwargs)
    rec: dict[str, list] = {"state": [], "action": [], "front": [], "wrist": [], "task": []}
    for e, n in enumerate(lengths):
        task = ["Pick up the cube.", "Move the gripper to the target."][e % 2]
        for t in range(n):
            f = {
                "observation.state": rng.normal(size=3).astype(np.float32),
                "action": rng.normal(size=3).astype(np.float32),
                "observation.images.wrist": rng.integers(0, 256, (16, 24, 3), dtype=np.uint8),
            }
            if video:
                f["observation.images.front"] = front_image(e, t)
                rec["front"].append(f["observation.images.front"])
            w.add_frame(f, task=task)
            rec["state"].append(f["observation.state"])
            rec["action"].append(f["action"])
            rec["wrist"].append(f["observation.images.wrist"])
            rec["task"].append(task)
        w.save_episode()
    w.finalize()
    return rec


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def crash_a_commit(root: Path, swaps: int, monkeypatch: object) -> DatasetWriter:
    """Record a 7-frame episode into `root` and crash its commit after `swaps` file swaps (the journal is swap 0):
    `os.replace` raises KeyboardInterrupt there, as a kill would stop it. The writer is returned still holding
    the write lock (`finalize()` releases it, as the OS does when a process dies)."""
    import os

    import pytest

    from twinarm.datasets_io import writer as writer_mod

    calls = {"n": 0}
    real_replace = os.replace

    def crashing_replace(src: object, dst: object) -> None:
        if calls["n"] == swaps:
            raise KeyboardInterrupt("simulated crash")
        calls["n"] += 1
        real_replace(src, dst)

    w = DatasetWriter.resume(root)
    for t in range(7):
        w.add_frame({"observation.state": np.full(3, t, np.float32), "action": np.zeros(3, np.float32),
                     "observation.images.wrist": np.zeros((16, 24, 3), np.uint8),
                     "observation.images.front": np.zeros((32, 48, 3), np.uint8)}, task="Late task.")
    with monkeypatch.context() as m:  # type: ignore[attr-defined]
        m.setattr(writer_mod.os, "replace", crashing_replace)
        m.setattr("twinarm.datasets_io.layout.os.replace", crashing_replace)
        with pytest.raises(KeyboardInterrupt):
            w.save_episode()
    return w
