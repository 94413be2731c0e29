"""Editing datasets, twinarm vs LeRobot, on one dataset written by LeRobot itself (10 episodes x 300 frames,
one 240x320 camera in LeRobot's default AV1, 14-D state/action): each side deletes episodes 1, 4 and 7 into a
new folder, then merges the dataset with a copy of itself. Printed per operation: wall time (and the ratio),
whether every frame decodes as in the source (and the PSNR of those that differ), and the output's video size.

    python benchmarks/dataset_edit.py [--lerobot-python /root/lerobot-venv/bin/python] [--out FILE]

LeRobot (`lerobot.datasets.dataset_tools.delete_episodes`) re-encodes every video file that mixes kept and
deleted episodes; twinarm (`twinarm dataset delete-episodes`) remuxes the kept episodes' packets. For merging
both copy the video streams (LeRobot's `merge_datasets` concatenates them; twinarm copies the files). LeRobot
runs in its own venv as a subprocess of this file (`--side lerobot-write` builds the source, `lerobot-delete`
and `lerobot-merge` edit it); every output is read back with twinarm's reader and compared frame by frame.
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


def lerobot_merge(srcs: list[Path], out: Path) -> float:
    """(LeRobot venv) LeRobot's merge_datasets; returns its wall time."""
    from lerobot.datasets.dataset_tools import merge_datasets
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    datasets = [LeRobotDataset(f"bench/edit{i}", root=s) for i, s in enumerate(srcs)]
    t0 = time.perf_counter()
    merge_datasets(datasets, output_repo_id="bench/merged", output_dir=out)
    return time.perf_counter() - t0


def twinarm_merge(srcs: list[Path], out: Path) -> float:
    from twinarm.datasets_io.merge import merge_datasets

    t0 = time.perf_counter()
    merge_datasets(srcs, out)
    return time.perf_counter() - t0


def twinarm_delete(src: Path, out: Path) -> float:
    from twinarm.datasets_io.edit import delete_episodes

    t0 = time.perf_counter()
    delete_episodes(src, out, DELETE)
    return time.perf_counter() - t0


def compare(src: Path, out: Path, keep: list[int], repeat: int = 1) -> dict:
    """Every frame of `out` against the same frame of `src`'s episodes `keep` (`repeat` times over), both
    decoded by twinarm's reader."""
    from twinarm.datasets_io.reader import LeRobotDatasetReader
    from twinarm.datasets_io.validator import check_dataset

    a = LeRobotDatasetReader(src, episodes=keep, uint8_images=True)
    b = LeRobotDatasetReader(out, uint8_images=True)
    if len(b) != repeat * len(a):
        raise RuntimeError(f"{out}: {len(b)} frames, expected {repeat * len(a)}")
    same, worst = 0, float("inf")
    for i in range(len(b)):
        x, y = a[i % len(a)][KEY].numpy(), b[i][KEY].numpy()
        if np.array_equal(x, y):
            same += 1
        else:
            mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
            worst = min(worst, 10 * np.log10(255.0**2 / mse))
        if not np.array_equal(a[i % len(a)]["observation.state"].numpy(), b[i]["observation.state"].numpy()):
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
    lines = [f"{'operation':<10}{'side':<10}{'seconds':>9}{'frames identical':>19}{'worst PSNR (dB)':>17}{'video MB':>10}"
             f"{'check':>8}"]
    for (op, side), r in rows.items():
        psnr = "-" if r["worst_psnr"] == float("inf") else f"{r['worst_psnr']:.1f}"
        lines.append(f"{op:<10}{side:<10}{r['seconds']:>9.2f}{r['identical']:>9}/{r['frames']:<9}{psnr:>17}"
                     f"{r['video_mb']:>10.2f}{'OK' if not r['problems'] else str(r['problems']) + ' problems':>8}")
    lines.append("")
    for op in dict.fromkeys(op for op, _ in rows):
        tw, lr = rows[(op, "twinarm")], rows[(op, "lerobot")]
        lines.append(f"{op}: twinarm / lerobot time {tw['seconds'] / lr['seconds']:.3f}x "
                     f"({lr['seconds'] / tw['seconds']:.1f}x faster)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", choices=["all", "lerobot-write", "lerobot-delete", "lerobot-merge"], default="all")
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
    if args.side == "lerobot-merge":
        print("RESULT " + json.dumps({"seconds": lerobot_merge([args.src, args.src.with_name("source_copy")], args.dst)}))
        return 0
    work = Path(tempfile.mkdtemp(prefix="twinarm_edit_bench_"))
    try:
        src = work / "source"
        print(f"writing the source with LeRobot ({EPISODES} x {FRAMES} frames) ...", flush=True)
        run_lerobot(args.lerobot_python, "lerobot-write", "--src", str(src))
        shutil.copytree(src, work / "source_copy")
        keep, every = [e for e in range(EPISODES) if e not in DELETE], list(range(EPISODES))
        rows = {}
        seconds = json.loads(run_lerobot(args.lerobot_python, "lerobot-delete", "--src", str(src),
                                         "--dst", str(work / "lr_delete")))["seconds"]
        rows[("delete", "lerobot")] = {"seconds": seconds, **compare(src, work / "lr_delete", keep)}
        rows[("delete", "twinarm")] = {"seconds": twinarm_delete(src, work / "tw_delete"),
                                       **compare(src, work / "tw_delete", keep)}
        seconds = json.loads(run_lerobot(args.lerobot_python, "lerobot-merge", "--src", str(src),
                                         "--dst", str(work / "lr_merge")))["seconds"]
        rows[("merge", "lerobot")] = {"seconds": seconds, **compare(src, work / "lr_merge", every, repeat=2)}
        rows[("merge", "twinarm")] = {"seconds": twinarm_merge([src, work / "source_copy"], work / "tw_merge"),
                                      **compare(src, work / "tw_merge", every, repeat=2)}
        out = (f"# {time.strftime('%Y-%m-%d %H:%M')}, delete episodes {DELETE} of {EPISODES} x {FRAMES} frames, and "
               f"merge the dataset with a copy (one 240x320 AV1 camera, written by LeRobot); load average "
               f"{os.getloadavg()[0]:.2f}\n{table(rows)}\n")
        print(out)
        if args.out:
            old = args.out.read_text() if args.out.exists() else ""
            args.out.write_text(out + "\n" + old)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
