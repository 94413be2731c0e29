"""Dataset I/O, twinarm vs LeRobot, on the same synthetic data (10 episodes x 300 frames, one 240x320
camera, 14-D state/action): write frames/s, random `ds[i]` frames/s with a 100-step action chunk,
DataLoader (batch 8, 2 workers) frames/s, and decoded-frame PSNR at each side's default codec.

    python benchmarks/dataset_io.py [--lerobot-python /root/lerobot-venv/bin/python] [--out FILE]

LeRobot runs in its own venv as a subprocess of this same file (`--side lerobot`), twice: "as installed"
(PyAV decoding, as when torchcodec finds no system FFmpeg; default torch threads; `LeRobotDataset.create`'s
defaults: each frame staged as a PNG, the video encoded at `save_episode`) and "best" (torchcodec with system
FFmpeg, OMP_NUM_THREADS=1; `streaming_encoding=True`, frames encoded as they arrive as twinarm's writer does,
which its `lerobot-record` recommends, and its recorder's 4 image-writer threads). Each side's DataLoader is the one its docs tell users
to use: `torch.utils.data.DataLoader` for LeRobot, `twinarm.datasets_io.loader.make_dataloader` for twinarm
(same float32 [0, 1] CHW batches).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EPISODES, FRAMES, H, W, DIM, FPS = 10, 300, 240, 320, 14, 30
CHUNK = 100
RANDOM_SAMPLES = 400  # random ds[i] calls timed per side (same subset of indices for both)
LOADER_SAMPLES = 800  # samples drawn through the DataLoader per side
KEY = "observation.images.top"


def frame(ep: int, t: int) -> np.ndarray:
    """A sim-like frame: smooth shaded background, a moving arm-coloured bar and a cube, light noise."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.empty((H, W, 3), np.float32)
    img[..., 0] = 90 + 60 * yy / H
    img[..., 1] = 110 + 40 * xx / W
    img[..., 2] = 140 - 50 * yy / H
    cx = int(W / 2 + 100 * np.sin(0.02 * t + ep))
    cy = int(H / 2 + 60 * np.cos(0.015 * t + 0.5 * ep))
    img[max(cy - 60, 0):cy + 60, max(cx - 8, 0):cx + 8] = (230, 200, 40)
    img[H - 60 - ep * 3:H - 40 - ep * 3, 40 + ep * 20:60 + ep * 20] = (200, 30, 30)
    noise = np.random.default_rng(ep * 1000 + t).normal(0, 2.0, (H, W, 1)).astype(np.float32)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def vectors(ep: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(ep)
    state = np.cumsum(rng.normal(0, 0.01, (FRAMES, DIM)), axis=0).astype(np.float32)
    return state, (state + rng.normal(0, 0.005, (FRAMES, DIM))).astype(np.float32)


FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [DIM], "names": [f"j{i}" for i in range(DIM)]},
    "action": {"dtype": "float32", "shape": [DIM], "names": [f"j{i}" for i in range(DIM)]},
    KEY: {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
}


def all_frames() -> list[list[np.ndarray]]:
    return [[frame(e, t) for t in range(FRAMES)] for e in range(EPISODES)]


def psnr(decoded: np.ndarray, original: np.ndarray) -> float:
    mse = float(np.mean((decoded.astype(np.float64) - original.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def loader_fps(ds, make_loader) -> float:
    """Frames/s of the first LOADER_SAMPLES samples (worker start-up included) of
    `make_loader(ds, batch_size=8, num_workers=2, shuffle=True)`; checks LeRobot's image format."""
    import torch

    loader = make_loader(ds, batch_size=8, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    n = 0
    t0 = time.perf_counter()
    for batch in loader:
        n += len(batch["index"])
        if n >= LOADER_SAMPLES:
            break
    fps = n / (time.perf_counter() - t0)
    assert batch[KEY].dtype == torch.float32 and batch[KEY].shape == (8, 3, H, W)
    return fps


def measure(make_ds, root: Path, before_loader=None, make_loader=None) -> dict:
    """Random-access and DataLoader throughput plus PSNR of episode 0's frames, for either reader.
    `make_loader(ds, **kwargs)` builds the loader (default: `torch.utils.data.DataLoader`)."""
    import torch

    deltas = {"action": [i / FPS for i in range(CHUNK)]}
    frames = all_frames()
    out: dict = {}
    ds = make_ds(root, deltas)
    idx = np.random.default_rng(0).permutation(EPISODES * FRAMES)[:RANDOM_SAMPLES]
    t0 = time.perf_counter()
    for i in idx:
        item = ds[int(i)]
        assert item["action"].shape == (CHUNK, DIM)
    out["random_fps"] = RANDOM_SAMPLES / (time.perf_counter() - t0)
    # PSNR over every frame of episode 0, then of a middle episode
    errs = []
    for i in list(range(0, FRAMES, 3)) + list(range(5 * FRAMES, 6 * FRAMES, 3)):
        img = np.round(ds[i][KEY].numpy().transpose(1, 2, 0) * 255)
        errs.append(psnr(img, frames[i // FRAMES][i % FRAMES]))
    out["psnr_db"] = float(np.mean(errs))
    del ds
    if before_loader is not None:
        before_loader()
    out["loader_fps"] = loader_fps(make_ds(root, deltas), make_loader or torch.utils.data.DataLoader)
    out["video_mb"] = sum(f.stat().st_size for f in (root / "videos").rglob("*.mp4")) / 1e6
    return out


# ----- twinarm -----------------------------------------------------------------------------------------
def run_twinarm(work: Path) -> dict:
    from twinarm.datasets_io.loader import make_dataloader
    from twinarm.datasets_io.reader import LeRobotDatasetReader
    from twinarm.datasets_io.writer import DatasetWriter

    frames = all_frames()
    root = work / "twinarm"
    t0 = time.perf_counter()
    w = DatasetWriter.create(root, FPS, FEATURES, robot_type="bench")
    for e in range(EPISODES):
        state, action = vectors(e)
        for t in range(FRAMES):
            w.add_frame({"observation.state": state[t], "action": action[t], KEY: frames[e][t]}, task="bench task")
        w.save_episode()
    w.finalize()
    res = {"write_fps": EPISODES * FRAMES / (time.perf_counter() - t0)}
    # the DataLoader case uses what the README tells users to use: make_dataloader
    res.update(measure(lambda r, d: LeRobotDatasetReader(r, delta_timestamps=d), root, make_loader=make_dataloader))
    # for reference: the same reader through a plain torch DataLoader
    import torch

    deltas = {"action": [i / FPS for i in range(CHUNK)]}
    res["plain_loader_fps"] = loader_fps(LeRobotDatasetReader(root, delta_timestamps=deltas), torch.utils.data.DataLoader)
    res["codec"] = "h264 (twinarm default)"
    return res


# ----- lerobot (runs inside the lerobot venv) ------------------------------------------------------------
def lerobot_write(root: Path, frames: list[list[np.ndarray]], repo_id: str = "bench/lerobot",
                  streaming: bool = False) -> None:
    """(LeRobot venv) The benchmark's episodes written by LeRobot's own writer: with `LeRobotDataset.create`'s
    defaults, or `streaming` (its streaming encoder and its recorder's image-writer threads)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    fast = {"streaming_encoding": True, "image_writer_threads": 4} if streaming else {}
    ds = LeRobotDataset.create(repo_id, FPS, FEATURES, root=root, robot_type="bench", **fast)
    for e in range(EPISODES):
        state, action = vectors(e)
        for t in range(FRAMES):
            ds.add_frame({"observation.state": state[t], "action": action[t], KEY: frames[e][t], "task": "bench task"})
        ds.save_episode()
    ds.finalize()


def run_lerobot(work: Path, backend: str, streaming: bool) -> dict:
    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    frames = all_frames()
    root = work / f"lerobot_{backend}"
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    lerobot_write(root, frames, streaming=streaming)
    res = {"write_fps": EPISODES * FRAMES / (time.perf_counter() - t0)}
    from lerobot.datasets import video_utils

    # LeRobot keeps decoders in a module-level cache that must not be inherited by forked DataLoader
    # workers (its docs warn of crashes); clear it as a training script that never decodes in the main
    # process would have it.
    res.update(measure(lambda r, d: LeRobotDataset("bench/lerobot", root=r, delta_timestamps=d, video_backend=backend),
                       root, before_loader=video_utils._default_decoder_cache.clear))
    info = json.loads((root / "meta/info.json").read_text())
    res["codec"] = f"{info['features'][KEY]['info']['video.codec']} (lerobot {lerobot.__version__} default)"
    return res


def lerobot_subprocess(python: str, work: Path, backend: str, omp1: bool, streaming: bool) -> dict:
    env = dict(os.environ)
    if omp1:
        env["OMP_NUM_THREADS"] = "1"
    else:
        env.pop("OMP_NUM_THREADS", None)
    cmd = [python, __file__, "--side", "lerobot", "--backend", backend, "--work", str(work)]
    if streaming:
        cmd.append("--streaming")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"lerobot run failed ({backend}):\n{proc.stderr[-3000:]}")
    return json.loads(line[-1][len("RESULT "):])


def table(rows: dict[str, dict]) -> str:
    best = rows.get("lerobot best")
    cols = ["write_fps", "random_fps", "loader_fps", "psnr_db", "video_mb"]
    head = f"{'side':<22}" + "".join(f"{c:>12}" for c in cols) + "  codec"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(f"{name:<22}" + "".join(f"{r[c]:>12.1f}" for c in cols) + f"  {r['codec']}")
    if best and "twinarm" in rows:
        tw = rows["twinarm"]
        lines.append("")
        for c, target in (("write_fps", 3), ("random_fps", 5), ("loader_fps", 3)):
            ratio = tw[c] / best[c]
            lines.append(f"twinarm / lerobot best, {c:<11}: {ratio:6.2f}x  (target >= {target}x: "
                         f"{'met' if ratio >= target else 'NOT met'})")
        if "plain_loader_fps" in tw:
            lines.append(f"twinarm through a plain torch DataLoader instead of make_dataloader: {tw['plain_loader_fps']:.1f} "
                         f"frames/s ({tw['plain_loader_fps'] / best['loader_fps']:.2f}x lerobot best)")
        if "lerobot as installed" in rows:
            inst = rows["lerobot as installed"]
            lines.append("twinarm / lerobot as installed: " + ", ".join(
                f"{c} {tw[c] / inst[c]:.1f}x" for c in ("write_fps", "random_fps", "loader_fps")))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", choices=["all", "twinarm", "lerobot"], default="all")
    ap.add_argument("--backend", default="torchcodec", help="(lerobot side) video backend")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory")
    ap.add_argument("--streaming", action="store_true", help="(lerobot side) write with its streaming encoder")
    ap.add_argument("--lerobot-python", default="/root/lerobot-venv/bin/python")
    ap.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="twinarm_bench_"))
    if args.side == "lerobot":
        print("RESULT " + json.dumps(run_lerobot(work, args.backend, args.streaming)))
        return 0
    load_before = os.getloadavg()
    rows = {"twinarm": run_twinarm(work)}
    print(table(rows), flush=True)
    if args.side == "all" and Path(args.lerobot_python).exists():
        rows["lerobot as installed"] = lerobot_subprocess(args.lerobot_python, work, "pyav", omp1=False, streaming=False)
        rows["lerobot best"] = lerobot_subprocess(args.lerobot_python, work, "torchcodec", omp1=True, streaming=True)
    elif args.side == "all":
        print(f"\nno LeRobot venv at {args.lerobot_python} (--lerobot-python): twinarm's side only, no ratios",
              file=sys.stderr)
    text = (f"dataset_io benchmark: {EPISODES} episodes x {FRAMES} frames, one {H}x{W} camera, {DIM}-D state/action; "
            f"random ds[i] with a {CHUNK}-step action chunk ({RANDOM_SAMPLES} samples), DataLoader batch 8, "
            f"2 workers ({LOADER_SAMPLES} samples); {os.cpu_count()} CPU cores; load average (1/5/15 min) "
            f"{'/'.join(f'{x:.2f}' for x in load_before)} at start, {'/'.join(f'{x:.2f}' for x in os.getloadavg())} "
            "at end (the machine is shared)\n\n" + table(rows))
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
