"""A policy driving the (virtual) real arm at 30 Hz: waiting for each action chunk, as LeRobot's
`select_action` does, against computing the next chunk in the background (`eval --prefetch-at K`).

The virtual SO-101 (MuJoCo physics in realtime) runs in another process behind a pty; this process runs
`twinarm/SO101-PickCube-Real-v0` through the unmodified Feetech SDK with front and wrist cameras read from a
video file, and ACT at LeRobot's default size (dim 512, chunk 100, executing 100, ResNet-18) on those
features, random init (the compute is the real one; the motions are not meaningful, and `max_relative_target`
keeps them small). Each mode runs the same number of control steps; printed: the step period (p50/p99/max),
loop overruns, and the time `select_action` took (the control loop stands still for it). Then the prefetching
loop with its episode recorded at 480x640 (`eval --record`), video encoding in the control step or in threads.
Inference runs on the threads `twinarm eval` gives it (`agents.thread_budget`; `--no-yield-cores`: fixed).

    python benchmarks/deploy_latency.py [--steps 300] [--prefetch-at 30] [--no-yield-cores] [--out benchmarks/results/deploy_latency.txt]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = "twinarm/SO101-PickCube-Real-v0"
IMAGE = (240, 320)
RECORD_IMAGE = (480, 640)


def start_virtual_arm(cal_path: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "twinarm.cli.main", "virtual-arm", "--arm", "so101", "--calibrated",
           "--write-calibration", str(cal_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"port: (\S+)", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("twinarm virtual-arm did not print its port")


def run(policy, env, steps: int, prefetch_at: int, buffer=None, yield_cores: bool = True) -> dict[str, float]:  # noqa: ANN001
    """`steps` control steps of `policy` on `env`; with `buffer` (an EpisodeBuffer) each step is also recorded.
    With `yield_cores`, as `twinarm eval` by default, each inference runs on the cores other processes (here the
    virtual arm) left idle (`agents.thread_budget`)."""
    import torch

    from twinarm.agents.env_io import EnvAdapter
    from twinarm.agents.eval import warm_up
    from twinarm.agents.prefetch import ChunkPrefetcher
    from twinarm.agents.thread_budget import ThreadBudget, on_budget
    from twinarm.arms import SO101
    from twinarm.datasets_io.recorder import gym_frame

    adapter = EnvAdapter(SO101, policy.config.input_features)
    budget = ThreadBudget(torch.get_num_threads()) if yield_cores else None
    actor = ChunkPrefetcher(policy, prefetch_at, thread_budget=budget) if prefetch_at else policy
    threaded = None if prefetch_at else budget  # with prefetching the worker applies it
    obs, _ = env.reset()
    warm_up(policy, adapter.obs_to_batch(obs))
    actor.reset()
    overruns0 = env.unwrapped.overruns
    starts, acting = [], []
    try:
        for _ in range(steps):
            starts.append(time.perf_counter())
            batch = adapter.obs_to_batch(obs)
            with on_budget(threaded), torch.inference_mode():
                action = actor.select_action(batch)
            acting.append(time.perf_counter() - starts[-1])
            target = adapter.action_to_env(action)
            if buffer is not None:
                buffer.add_frame(gym_frame(obs, target, convert=SO101.to_lerobot), task="rollout")
            obs, *_ = env.step(target)
    finally:
        if actor is not policy:
            actor.close()
    # Step 0 waits for the episode's first chunk in both modes (the arm has not started moving): left out.
    period = np.diff(starts)[1:] * 1e3
    act = np.asarray(acting)[1:] * 1e3
    target = 1e3 / SO101.control_hz
    granted = dict(sorted(budget.granted.items())) if budget is not None else {}
    return {"threads": granted, "p50": float(np.median(period)), "p99": float(np.percentile(period, 99)), "max": float(period.max()),
            "hz": 1e3 / float(period.mean()), "late": int((period > 1.5 * target).sum()),
            "overruns": env.unwrapped.overruns - overruns0, "act_p50": float(np.median(act)),
            "act_p99": float(np.percentile(act, 99)), "act_max": float(act.max()), "first": acting[0] * 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="control steps per mode (30 Hz)")
    ap.add_argument("--prefetch-at", type=int, default=30, help="queued actions left when the next chunk is asked for")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--yield-cores", action=argparse.BooleanOptionalAction, default=True,
                    help="each inference on the cores other processes left idle, as `twinarm eval` does by default")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "deploy_latency.txt")
    args = ap.parse_args()

    import gymnasium as gym
    import torch

    import twinarm  # noqa: F401
    from twinarm.agents.features import features_from_spec, stats_from_spec
    from twinarm.agents.registry import make_policy
    from twinarm.arms import SO101
    from twinarm.datasets_io.writer import EpisodeBuffer
    from twinarm.real.env import LoopOverrunWarning

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from control_loop import make_video

    warnings.simplefilter("ignore", LoopOverrunWarning)  # counted instead
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    inputs, outputs = features_from_spec(SO101, cameras=SO101.resolve_cameras(image_size=IMAGE))
    stats = stats_from_spec(SO101)
    for key in (k for k in inputs if k.startswith("observation.images.")):
        stats[key] = {"mean": np.full((3, 1, 1), 0.5, np.float32), "std": np.full((3, 1, 1), 0.25, np.float32),
                      "min": np.zeros((3, 1, 1), np.float32), "max": np.ones((3, 1, 1), np.float32)}
    policy = make_policy("act", input_features=inputs, output_features=outputs, stats=stats).eval()
    n_params = sum(p.numel() for p in policy.parameters())
    rows, rec_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "cam.mp4")
        proc, port = start_virtual_arm(Path(tmp) / "cal.json")
        try:
            cams = {c: {"type": "opencv", "index_or_path": str(video)} for c in ("front", "wrist")}
            env = gym.make(REAL, port=port, calibration=str(Path(tmp) / "cal.json"), cameras=cams, image_size=IMAGE,
                           max_relative_target=0.05)
            try:
                for k in (0, args.prefetch_at):
                    r = run(policy, env, args.steps, k, yield_cores=args.yield_cores)
                    r["mode"] = "wait for each chunk (what LeRobot's select_action does)" if k == 0 else f"prefetch at {k} left"
                    rows.append(r)
                    print(r, flush=True)
            finally:
                env.close()
            # The policy's episode recorded at LeRobot's camera size (eval --record on the real arm): video
            # encoding in the control step, or in worker threads.
            env = gym.make(REAL, port=port, calibration=str(Path(tmp) / "cal.json"), cameras=cams,
                           image_size=RECORD_IMAGE, max_relative_target=0.05)
            features = SO101.lerobot_features(cameras=env.unwrapped.camera_specs)
            try:
                for bg in (False, True):
                    buffer = EpisodeBuffer(features, SO101.control_hz, background=bg)
                    r = run(policy, env, args.steps, args.prefetch_at, buffer, args.yield_cores)
                    t = time.perf_counter()
                    buffer.finish()
                    r["flush_s"] = time.perf_counter() - t
                    r["mode"] = "encode in the control step" if not bg else "encode in worker threads"
                    rec_rows.append(r)
                    print(r, flush=True)
            finally:
                env.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.2f}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {args.threads} threads"
        + (", yielding cores to other processes as `twinarm eval` does" if args.yield_cores else ", fixed"),
        f"{REAL} at 30 Hz over the virtual SO-101 (another process, pty, Feetech SDK), front + wrist file cameras "
        f"at {IMAGE[0]}x{IMAGE[1]}; ACT {n_params / 1e6:.1f}M params (chunk 100, executing 100), random init; "
        f"{args.steps} control steps per mode. Times in ms.",
        "",
        "After the episode's first step (which waits for the first chunk in both modes: "
        + ", ".join(f"{r['first']:.0f} ms" for r in rows) + "); late = step periods over 1.5x the 33.3 ms target.",
        "",
        "| mode | achieved Hz | step period p50 | p99 | max | late steps | overruns | select_action p50 | p99 | max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['hz']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['late']} | "
                     f"{r['overruns']} | {r['act_p50']:.2f} | {r['act_p99']:.1f} | {r['act_max']:.1f} |")
    if len(rows) == 2:
        lines.append("")
        lines.append(f"longest control step: {rows[0]['max']:.0f} ms waiting vs {rows[1]['max']:.0f} ms prefetching "
                     f"({rows[0]['max'] / rows[1]['max']:.1f}x shorter); late steps {rows[0]['late']} vs {rows[1]['late']}")
    lines += [
        "",
        f"The same policy (prefetch at {args.prefetch_at}) with its episode recorded, both cameras at "
        f"{RECORD_IMAGE[0]}x{RECORD_IMAGE[1]} (eval --record on the real arm; the policy sees them resized), "
        f"{args.steps} steps each:",
        "",
        "| video encoding | achieved Hz | step period p50 | p99 | max | late steps | flush after the episode (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rec_rows:
        lines.append(f"| {r['mode']} | {r['hz']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['late']} | "
                     f"{r['flush_s']:.1f} |")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    earlier = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(text + "\n" + ("\n" + earlier if earlier else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
