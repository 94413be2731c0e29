"""Make the LeRobot-written test fixtures with the real `lerobot` package (run with the lerobot venv).

    /root/lerobot-venv/bin/python tools/make_lerobot_fixtures.py [--out tests/fixtures/lerobot_v3]

Writes small datasets (AV1 video + image features, an H.264 variant, several episodes and tasks) and
`expected.npz` holding what `lerobot.datasets.LeRobotDataset` returns for them, so twinarm's tests can
compare its reader against LeRobot's own loader without lerobot installed.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

FPS = 10
CASES = {
    # name: (video codec or None for image-only, episode lengths)
    "video_av1": ("libsvtav1", [10, 6, 12]),
    "video_h264": ("h264", [8, 10]),
    "images": (None, [6, 8]),
    "depth": ("depth", [7, 9]),  # a depth camera as video (HEVC gray12le, from millimetres) and as images (metres)
}
DELTAS = {"observation.state": [-0.2, -0.1, 0.0], "action": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}


def scene(rng: np.random.Generator, t: int, h: int, w: int, shift: int) -> np.ndarray:
    """A smooth moving gradient with a square and mild noise: codecs do real work on it."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 4 + t * 7 + shift) % 256, (yy * 5 + t * 3) % 256, ((xx + yy) * 2 + shift) % 256], axis=-1)
    x0 = (t * 3 + shift) % (w - 8)
    img[4:12, x0:x0 + 8] = (250, 40, 40)
    img = img.astype(np.int16) + rng.integers(-1, 2, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def depth_scene(t: int, h: int, w: int, shift: int) -> np.ndarray:
    """Depth in millimetres (uint16, H x W x 1): a tilted plane 0.4-3 m away with a near box moving across."""
    yy, xx = np.mgrid[0:h, 0:w]
    depth = 400 + 35 * xx + 12 * yy + 25 * t + shift
    x0 = (t * 3 + shift) % (w - 8)
    depth[4:12, x0:x0 + 8] = 250 + 5 * t
    return depth.astype(np.uint16)[:, :, None]


def features(codec: str | None) -> dict:
    names = ["shoulder_pan.pos", "shoulder_lift.pos", "gripper.pos"]
    hwc = ["height", "width", "channels"]
    feats = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": names},
        "action": {"dtype": "float32", "shape": [3], "names": names},
    }
    if codec == "depth":
        feats["observation.images.depth"] = {"dtype": "video", "shape": [48, 64, 1], "names": hwc,
                                             "info": {"is_depth_map": True}}
        feats["observation.images.wrist_depth"] = {"dtype": "image", "shape": [16, 24, 1], "names": hwc,
                                                   "info": {"is_depth_map": True}}
        return feats
    feats["observation.images.wrist"] = {"dtype": "image", "shape": [16, 24, 3], "names": hwc}
    if codec:
        feats["observation.images.front"] = {"dtype": "video", "shape": [32, 48, 3],
                                             "names": ["height", "width", "channels"]}
    return feats


def make(root: Path, codec: str | None, lengths: list[int], seed: int) -> None:
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    kwargs = {"rgb_encoder": RGBEncoderConfig(vcodec=codec)} if codec and codec != "depth" else {}
    from lerobot.robots.so_follower import SOFollower

    # what lerobot-record writes for an SO-100/101 follower: the robot's `name` (one for both SO arms)
    ds = LeRobotDataset.create(f"twinarm/fixture_{root.name}", FPS, features(codec), root=root,
                               robot_type=SOFollower.name, use_videos=codec is not None, **kwargs)
    rng = np.random.default_rng(seed)
    tasks = ["Pick up the cube.", "Move the gripper to the target.", "Pick up the cube."]
    for e, n in enumerate(lengths):
        pos = rng.normal(size=3).astype(np.float32)
        for t in range(n):
            act = (pos + rng.normal(scale=0.1, size=3)).astype(np.float32)
            frame = {"observation.state": pos.copy(), "action": act, "task": tasks[e % len(tasks)]}
            if codec == "depth":
                frame["observation.images.depth"] = depth_scene(t, 48, 64, 90 * e)
                # float32 metres: LeRobot records depth_unit "m" and returns millimetres
                frame["observation.images.wrist_depth"] = depth_scene(t, 16, 24, 40 * e).astype(np.float32) / 1000
            else:
                frame["observation.images.wrist"] = scene(rng, t, 16, 24, 40 * e)
            if codec and codec != "depth":
                frame["observation.images.front"] = scene(rng, t, 32, 48, 17 * e)
            ds.add_frame(frame)
            pos = act
        ds.save_episode()
    ds.finalize()


def to_np(v: object, depth: bool = False) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        if v.dtype == torch.float32 and v.ndim >= 3 and not depth:  # images: exactly k/255, store as uint8
            u8 = torch.round(v * 255).to(torch.uint8)
            assert torch.equal(u8.float() / 255, v), "LeRobot image is not k/255"
            return u8.numpy()
        return v.numpy()
    return np.asarray(v)


def expected(root: Path, out: dict[str, np.ndarray], name: str) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    feats = json.loads((root / "meta/info.json").read_text())["features"]
    cams = [k for k, ft in feats.items() if ft["dtype"] in ("video", "image")]
    depth = {k for k in cams if (feats[k].get("info") or {}).get("is_depth_map")}
    plain = LeRobotDataset(f"twinarm/fixture_{name}", root=root)
    deltas = {**DELTAS, **{k: [-0.1, 0.0] for k in cams}}
    chunked = LeRobotDataset(f"twinarm/fixture_{name}", root=root, delta_timestamps=deltas)
    sub = LeRobotDataset(f"twinarm/fixture_{name}", root=root, episodes=[1])
    out[f"{name}/len"] = np.asarray(len(plain))
    out[f"{name}/sub_len"] = np.asarray(len(sub))
    edges = sorted({int(i) for a, b in zip(plain.meta.episodes["dataset_from_index"],
                                           plain.meta.episodes["dataset_to_index"], strict=True)
                    for i in (a, a + 1, (a + b) // 2, b - 2, b - 1)})
    for variant, ds, idx in (("plain", plain, list(range(len(plain)))), ("delta", chunked, edges),
                             ("sub", sub, list(range(len(sub))))):
        items = [ds[i] for i in idx]
        out[f"{name}/{variant}/__indices__"] = np.asarray(idx)
        for k in items[0]:
            out[f"{name}/{variant}/{k}"] = np.stack([to_np(it[k], k in depth) for it in items])
    if plain.meta.stats is not None:  # stats as LeRobot's loader holds them (depth rescaled to its output unit)
        for k in depth:
            for stat, v in plain.meta.stats[k].items():
                out[f"{name}/stats/{k}/{stat}"] = to_np(v, True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/lerobot_v3")
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES),
                    help="datasets to (re)write; expected.npz is rebuilt from all of them (default: all)")
    args = ap.parse_args()
    import lerobot

    args.out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for i, (name, (codec, lengths)) in enumerate(CASES.items()):
        root = args.out / name
        if name in args.cases:
            shutil.rmtree(root, ignore_errors=True)
            make(root, codec, lengths, seed=i)
        expected(root, arrays, name)
    arrays["lerobot_version"] = np.asarray(lerobot.__version__)
    np.savez_compressed(args.out / "expected.npz", **arrays)
    print(f"wrote {', '.join(CASES)} and expected.npz ({len(arrays)} arrays) to {args.out} with lerobot {lerobot.__version__}")


if __name__ == "__main__":
    main()
