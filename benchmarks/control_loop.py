"""Control-loop timing over the virtual servo bus: per cycle a 6-servo sync read + sync write of positions
and one 480x640 frame from a file camera, at 30 Hz and 100 Hz.

The virtual SO-101 (MuJoCo physics, realtime) runs in another process (`twinarm virtual-arm --wire-time`),
answering with simulated 1 Mbaud wire time; this process runs the loop with the unmodified Feetech SDK.
Prints cycle time (work per cycle) median/p99 and loop jitter (|period - target|) p50/p99/max.

    python benchmarks/control_loop.py [--seconds 10] [--out benchmarks/results/control_loop.txt]
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
from pathlib import Path

import av
import numpy as np

from twinarm.arms import SO101
from twinarm.real.buses import make_bus
from twinarm.real.calibration import Calibration
from twinarm.real.cameras import make_camera


def make_video(path: Path, n: int = 60, h: int = 480, w: int = 640, fps: int = 30) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(n):
            img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8) // 4 + np.uint8(i)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def start_virtual_arm(wire_time: bool, cal_path: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "twinarm.cli.main", "virtual-arm", "--arm", "so101", "--calibrated",
           "--write-calibration", str(cal_path)] + (["--wire-time"] if wire_time else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        m = re.match(r"port: (\S+)", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("virtual-arm did not start")


def run_loop(bus, cal: Calibration, cam, hz: float, seconds: float) -> dict[str, float]:  # noqa: ANN001
    period = 1.0 / hz
    n = int(seconds * hz)
    work, starts, reads = [], [], []
    q = cal.to_si(SO101, bus.positions(), software_drive_mode=True)
    t_next = time.perf_counter()
    for i in range(n + 1):
        # wait for the cycle start: sleep, then spin the last millisecond
        while True:
            left = t_next - time.perf_counter()
            if left <= 0:
                break
            if left > 1.5e-3:
                time.sleep(left - 1e-3)
        t0 = time.perf_counter()
        starts.append(t0)
        ticks = bus.positions()
        reads.append(time.perf_counter() - t0)
        q = cal.to_si(SO101, ticks, software_drive_mode=True)
        target = q + 0.02 * np.sin(2 * np.pi * 0.5 * i * period) * ~SO101.gripper_mask
        bus.sync_write("Goal_Position", cal.from_si(SO101, target, software_drive_mode=True))
        frame = cam.read_latest()
        assert frame.shape == (480, 640, 3)
        work.append(time.perf_counter() - t0)
        t_next += period
        if t_next < time.perf_counter():  # overran: start the next cycle now, keep the grid
            t_next = time.perf_counter()
    periods = np.diff(starts)
    jitter = np.abs(periods - period)
    ms = 1e3
    return {"hz": hz, "cycles": n, "read_med": np.median(reads) * ms, "work_med": np.median(work) * ms, "work_p99": np.percentile(work, 99) * ms,
            "jit_p50": np.median(jitter) * ms, "jit_p99": np.percentile(jitter, 99) * ms, "jit_max": jitter.max() * ms,
            "rate": 1.0 / periods.mean()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows: list[dict] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "front.mp4")
        for wire in (True, False):
            cal_path = Path(tmp) / "cal.json"
            proc, port = start_virtual_arm(wire, cal_path)
            try:
                cal = Calibration.load(cal_path)
                bus = make_bus(SO101, port)
                bus.connect()
                bus.enable_torque()
                cam = make_camera({"type": "opencv", "index_or_path": str(video)}, name="front")
                cam.connect()
                try:
                    for hz in (30.0, 100.0):
                        name = "pty, 1 Mbaud wire time" if wire else "pty, no wire time"
                        try:
                            r = run_loop(bus, cal, cam, hz, args.seconds)
                        except Exception as exc:  # a row that fails is reported, not hidden
                            failures.append(f"{name} @ {hz:.0f} Hz failed: {type(exc).__name__}: {exc}")
                            bus.enable_torque()
                            continue
                        r["transport"] = name
                        rows.append(r)
                finally:
                    cam.disconnect()
                    bus.close(disable_torque=True)
            finally:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=10)
    lines = [
        "Control loop over the virtual SO-101 bus (emulator in another process, MuJoCo physics in realtime);",
        "per cycle: 6-servo sync read + sync write of positions (feetech-servo-sdk) + one 480x640 file-camera frame.",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{args.seconds:.0f} s per row. Times in ms; jitter = |cycle period - target period|.",
        "",
        "| transport | target Hz | achieved Hz | cycles | sync read median | cycle median | cycle p99 | jitter p50 | "
        "jitter p99 | jitter max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['transport']} | {r['hz']:.0f} | {r['rate']:.2f} | {r['cycles']} | {r['read_med']:.2f} | {r['work_med']:.2f} | "
                     f"{r['work_p99']:.2f} | {r['jit_p50']:.3f} | {r['jit_p99']:.3f} | {r['jit_max']:.2f} |")
    lines.append("")
    for r in rows:
        if r["hz"] == 100 and r["transport"].startswith("pty, 1 Mbaud"):
            verdict = "MET" if r["jit_p99"] < 3 else "NOT MET"
            lines.append(f"target p99 jitter < 3 ms at 100 Hz [{r['transport']}]: {verdict} ({r['jit_p99']:.3f} ms)")
    lines += failures
    lines.append(f"load average during the run: {os.getloadavg()[0]:.2f} (other jobs share this machine)")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
