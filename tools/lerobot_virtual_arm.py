"""Drive `twinarm virtual-arm` with LeRobot's own robot classes (run from the twinarm venv).

Starts the virtual arm (MuJoCo physics, realtime, ideal calibration stored in the servos and written as a
LeRobot calibration file), then runs a driver in the LeRobot venv that connects LeRobot's SO-101 follower
(and, when twinarm has a Koch spec, its Koch follower) to the printed pty, configures it, reads the joints
and commands a move, and checks the move arrived.

    python tools/lerobot_virtual_arm.py [--lerobot-python /root/lerobot-venv/bin/python] [--arms so101 koch]

What a LeRobot user does by hand is the same:
    twinarm virtual-arm --arm so101 --calibrated --write-calibration CAL_DIR/my_twin.json
    lerobot-teleoperate / lerobot-record ... --robot.type=so101_follower --robot.port=<printed /dev/pts/N>
        --robot.id=my_twin --robot.calibration_dir=CAL_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from twinarm.arms import ARMS

ROBOTS = {
    "so101": ("lerobot.robots.so_follower", "SOFollower", "SOFollowerRobotConfig"),
    "so100": ("lerobot.robots.so_follower", "SOFollower", "SOFollowerRobotConfig"),
    "koch": ("lerobot.robots.koch_follower", "KochFollower", "KochFollowerConfig"),
}

DRIVER = r'''
import json, sys, time
from importlib import import_module
from pathlib import Path
module, cls_name, cfg_name, port, cal_dir, robot_id = sys.argv[1:7]
mod = import_module(module)
cfg = getattr(mod, cfg_name)(port=port, id=robot_id, calibration_dir=Path(cal_dir))
robot = getattr(mod, cls_name)(cfg)
out = {}
t = time.perf_counter()
robot.connect(calibrate=False)   # the virtual servos already hold the file's calibration
out["connect_s"] = round(time.perf_counter() - t, 3)
out["is_calibrated"] = bool(robot.is_calibrated)
obs = robot.get_observation()
start = {k: round(float(v), 2) for k, v in obs.items() if k.endswith(".pos")}
out["start"] = start
goal = {k: v + (10.0 if not k.startswith("gripper") else 20.0) for k, v in start.items()}
t = time.perf_counter()
n = 0
while time.perf_counter() - t < 3.0:
    robot.send_action(goal)
    time.sleep(1 / 30)
    n += 1
obs = robot.get_observation()
out["end"] = {k: round(float(v), 2) for k, v in obs.items() if k.endswith(".pos")}
out["goal"] = {k: round(v, 2) for k, v in goal.items()}
out["max_err"] = max(abs(out["end"][k] - goal[k]) for k in goal)
t = time.perf_counter()
for _ in range(100):
    robot.get_observation()
out["get_observation_ms"] = round((time.perf_counter() - t) * 10, 3)
out["actions_sent"] = n
robot.disconnect()
print("RESULT " + json.dumps(out))
'''


def run_one(arm: str, python: str, tmp: Path) -> dict:
    module, cls_name, cfg_name = ROBOTS[arm]
    cal_dir = tmp / arm
    robot_id = "twin"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twinarm.cli.main", "virtual-arm", "--arm", arm, "--calibrated",
         "--write-calibration", str(cal_dir / f"{robot_id}.json")], stdout=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stdout:
            m = re.match(r"port: (\S+)", line)
            if m:
                port = m.group(1)
                break
        if port is None:
            raise RuntimeError(f"twinarm virtual-arm --arm {arm} did not start")
        res = subprocess.run([python, "-c", DRIVER, module, cls_name, cfg_name, port, str(cal_dir), robot_id],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
        if res.returncode != 0 or not lines:
            return {"arm": arm, "ok": False, "error": (res.stderr or res.stdout)[-3000:]}
        out = json.loads(lines[-1][len("RESULT "):])
        out.update(arm=arm, port=port, ok=out["is_calibrated"] and out["max_err"] < 3.0)
        return out
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lerobot-python", default=os.environ.get("TWINARM_LEROBOT_PYTHON", "/root/lerobot-venv/bin/python"))
    ap.add_argument("--arms", nargs="*", default=[a for a in ("so101", "so100", "koch") if a in ARMS])
    args = ap.parse_args()
    if not Path(args.lerobot_python).exists():
        print(f"LeRobot python not found at {args.lerobot_python}")
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for arm in args.arms:
            r = run_one(arm, args.lerobot_python, Path(tmp))
            results.append(r)
            print(json.dumps(r, indent=1))
    print("\n| arm | LeRobot class | connect (s) | calibrated | get_observation (ms) | max |end-goal| (deg or %) | ok |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        cls = ROBOTS[r["arm"]][1]
        if "connect_s" in r:
            print(f"| {r['arm']} | {cls} | {r['connect_s']} | {r['is_calibrated']} | {r['get_observation_ms']} | "
                  f"{r['max_err']:.2f} | {r['ok']} |")
        else:
            print(f"| {r['arm']} | {cls} | - | - | - | - | False |")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
