"""Load a twinarm-written dataset with LeRobot's own `LeRobotDataset` and compare every sample to twinarm.

Run with the lerobot venv (it imports twinarm from this checkout's source tree):

    /root/lerobot-venv/bin/python tools/compare_with_lerobot.py DATASET_ROOT [--delta]

Tabular values must match exactly; decoded frames must be identical (both decode with FFmpeg's
swscale), so any difference is reported with its sample index and key. Exit 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def import_twinarm_reader() -> type:
    """Import twinarm.datasets_io from the source tree without installing twinarm in the lerobot venv."""
    for name, path in (("twinarm", REPO / "twinarm"), ("twinarm.datasets_io", REPO / "datasets_io")):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = [str(path)]
            sys.modules[name] = mod
    spec = importlib.util.find_spec("twinarm.datasets_io.reader")
    assert spec is not None
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    return LeRobotDatasetReader


def compare(root: Path, delta: bool) -> int:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    Reader = import_twinarm_reader()
    deltas = None
    tw_probe = Reader(root)
    if delta:
        fps = tw_probe.fps
        deltas = {"action": [i / fps for i in range(10)], "observation.state": [-1 / fps, 0.0]}
        deltas.update({k: [-1 / fps, 0.0] for k in tw_probe.meta.camera_keys})
    t0 = time.perf_counter()
    lr = LeRobotDataset("local/compare", root=root, delta_timestamps=deltas)
    tw = Reader(root, delta_timestamps=deltas)
    if len(lr) != len(tw):
        print(f"length differs: lerobot {len(lr)} vs twinarm {len(tw)}")
        return 1
    bad = 0
    max_img_diff = 0.0
    for i in range(len(lr)):
        a, b = lr[i], tw[i]
        if set(a) != set(b):
            print(f"[{i}] keys differ: only lerobot {sorted(set(a) - set(b))}, only twinarm {sorted(set(b) - set(a))}")
            bad += 1
            continue
        for k in a:
            x, y = a[k], b[k]
            if isinstance(x, torch.Tensor):
                same = x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y)
                if not same and x.shape == y.shape and x.dtype.is_floating_point:
                    max_img_diff = max(max_img_diff, float((x - y).abs().max()))
            else:
                same = x == y
            if not same:
                bad += 1
                if bad <= 20:
                    print(f"[{i}] {k}: lerobot {getattr(x, 'shape', x)} {getattr(x, 'dtype', '')} vs "
                          f"twinarm {getattr(y, 'shape', y)} {getattr(y, 'dtype', '')}")
    dt = time.perf_counter() - t0
    import lerobot

    status = "IDENTICAL" if bad == 0 else f"{bad} MISMATCHES (max float diff {max_img_diff:.4g})"
    print(f"{root}: {len(lr)} samples x {len(a)} keys compared with lerobot {lerobot.__version__} "
          f"(delta_timestamps={'on' if delta else 'off'}, backend {getattr(lr, '_video_backend', getattr(lr, 'video_backend', '?'))}) in {dt:.1f} s: {status}")
    return 0 if bad == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="dataset directory (written by twinarm)")
    ap.add_argument("--delta", action="store_true", help="also compare with delta_timestamps (chunks, pads)")
    args = ap.parse_args()
    return compare(args.root, args.delta)


if __name__ == "__main__":
    sys.exit(main())
