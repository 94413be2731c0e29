"""Deleting episodes, twinarm vs LeRobot, on one dataset written by LeRobot itself (10 episodes x 300 frames,
one 240x320 camera in LeRobot's default AV1, 14-D state/action): each side deletes episodes 1, 4 and 7 into a
new folder. Printed: wall time (and the ratio), whether every kept frame decodes as in the source (and the
PSNR of those that differ), and the output's video size.

    python benchmarks/dataset_edit.py [--lerobot-python /root/lerobot-venv/bin/python] [--out FILE]

LeRobot (`lerobot.datasets.dataset_tools.delete_episodes`) re-encodes every video file that mixes kept and
deleted episodes; twinarm (`twinarm dataset delete-episodes`) remuxes the kept episodes' packets. LeRobot runs in
its own venv as a subprocess of this file (`--side lerobot-write` builds the source, `--side lerobot-delete`
edits it); both outputs are then read back with twinarm's reader and compared frame by frame with the source.
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

sys.path.insert(0, str(Path(__file__).parent))
from dataset_io import EPISODES, FRAMES, KEY, all_frames, lerobot_write  # noqa: E402

DELETE = [1, 4, 7]


def write_source(root: Path) -> None:
    """(LeRobot venv) The source dataset, written by LeRobot with its defaults."""
    lerobot_write(root, all_frames(), repo_id="bench/edit")


def lerobot_delete(src: Path, out: Path) -> float:
    """(LeRobot venv) LeRobot's delete_episodes; returns its wall time."""
    from lerobot.datasets.dataset_tools import delete_episodes
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("bench/edit", root=src)
    t0 = time.perf_counter()
    delete_episodes(ds, DELETE, output_dir=out, repo_id="bench/edit_deleted")
    return time.perf_counter() - t0


def twinarm_delete(src: Path, out: Path) -> float:
    from twinarm.datasets_io.edit import delete_episodes

    t0 = time.perf_counter()
    delete_episodes(src, out, DELETE)
    return time.perf_counter() - t0


def compare(src: Path, out: Path) -> dict:
    """Every kept frame of `out` against the same frame of `src`, both decoded by twinarm's reader."""
    from twinarm.datasets_io.reader import LeRobotDatasetReader
    from twinarm.datasets_io.validator import check_dataset

    keep = [e for e in range(EPISODES) if e not in DELETE]
    a = LeRobotDatasetReader(src, episodes=keep, uint8_images=True)
    b = LeRobotDatasetReader(out, uint8_images=True)
    if len(a) != len(b):
        raise RuntimeError(f"{out}: {len(b)} frames, expected {len(a)}")
    same, worst = 0, float("inf")
    for i in range(len(a)):
        x, y = a[i][KEY].numpy(), b[i][KEY].numpy()
        if np.array_equal(x, y):
            same += 1
        else:
            mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
            worst = min(worst, 10 * np.log10(255.0**2 / mse))
        if not np.array_equal(a[i]["observation.state"].numpy(), b[i]["observation.state"].numpy()):
            raise RuntimeError(f"{out}: frame {i}'s state differs from the source's")
    size = sum(p.stat().st_size for p in (out / "videos").rglob("*.mp4"))
    return {"frames": len(b), "identical": same, "worst_psnr": worst, "video_mb": size / 2**20,
            "problems": len(check_dataset(out))}


def run_lerobot(python: str, side: str, *args: str) -> str:
    proc = subprocess.run([python, __file__, "--side", side, *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": ""})
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"lerobot {side} failed:\n{proc.stderr[-3000:]}")
    return line[-1][len("RESULT "):]


def table(rows: dict[str, dict]) -> str:
    lines = [f"{'side':<10}{'seconds':>9}{'kept frames identical':>24}{'worst PSNR (dB)':>17}{'video MB':>10}{'check':>8}"]
    for side, r in rows.items():
        psnr = "-" if r["worst_psnr"] == float("inf") else f"{r['worst_psnr']:.1f}"
        lines.append(f"{side:<10}{r['seconds']:>9.2f}{r['identical']:>14}/{r['frames']:<9}{psnr:>17}{r['video_mb']:>10.2f}"
                     f"{'OK' if not r['problems'] else str(r['problems']) + ' problems':>8}")
    tw, lr = rows["twinarm"], rows["lerobot"]
    lines.append(f"\ntwinarm / lerobot time: {tw['seconds'] / lr['seconds']:.3f}x ({lr['seconds'] / tw['seconds']:.0f}x faster)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", choices=["all", "lerobot-write", "lerobot-delete"], default="all")
    ap.add_argument("--lerobot-python", default="/root/lerobot-venv/bin/python")
    ap.add_argument("--src", type=Path)
    ap.add_argument("--dst", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="append the table to this file")
    args = ap.parse_args()
    if args.side == "lerobot-write":
        write_source(args.src)
        print("RESULT {}")
        return 0
    if args.side == "lerobot-delete":
        print("RESULT " + json.dumps({"seconds": lerobot_delete(args.src, args.dst)}))
        return 0
    work = Path(tempfile.mkdtemp(prefix="twinarm_edit_bench_"))
    try:
        src = work / "source"
        print(f"writing the source with LeRobot ({EPISODES} x {FRAMES} frames) ...", flush=True)
        run_lerobot(args.lerobot_python, "lerobot-write", "--src", str(src))
        rows = {}
        seconds = json.loads(run_lerobot(args.lerobot_python, "lerobot-delete", "--src", str(src),
                                         "--dst", str(work / "lerobot")))["seconds"]
        rows["lerobot"] = {"seconds": seconds, **compare(src, work / "lerobot")}
        rows["twinarm"] = {"seconds": twinarm_delete(src, work / "twinarm"), **compare(src, work / "twinarm")}
        out = (f"# {time.strftime('%Y-%m-%d %H:%M')}, delete episodes {DELETE} of {EPISODES} x {FRAMES} frames "
               f"(one 240x320 AV1 camera, written by LeRobot); load average {os.getloadavg()[0]:.2f}\n{table(rows)}\n")
        print(out)
        if args.out:
            old = args.out.read_text() if args.out.exists() else ""
            args.out.write_text(out + "\n" + old)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
