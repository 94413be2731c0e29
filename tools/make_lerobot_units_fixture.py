"""Make the joint-unit fixture with the real `lerobot` package (run with the lerobot venv, which needs
feetech-servo-sdk, dynamixel-sdk and deepdiff for LeRobot's motor buses):

    /root/lerobot-venv/bin/python tools/make_lerobot_units_fixture.py [--out tests/fixtures/lerobot_units.json]

For an SO-101 (Feetech: LeRobot applies the drive mode in software) and a Koch (Dynamixel: it does not), each with a
calibration whose drive modes differ per motor, it records what LeRobot's motor bus reports for the same tick values
in its two body-joint modes, degrees (`use_degrees=True`) and the -100..100 range (`use_degrees=False`), the
gripper in 0..100 either way, so twinarm's unit conversion is checked against LeRobot without lerobot installed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from lerobot.motors import Motor, MotorCalibration, MotorNormMode
from lerobot.motors.dynamixel import DynamixelMotorsBus
from lerobot.motors.feetech import FeetechMotorsBus

NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
ARMS = {
    # arm: (bus class, motor models in NAMES order, (drive_mode, range_min, range_max) per motor)
    "so101": (FeetechMotorsBus, ["sts3215"] * 6,
              [(0, 758, 3292), (1, 815, 3245), (0, 846, 3069), (1, 827, 3200), (0, 0, 4095), (0, 2031, 3465)]),
    "koch": (DynamixelMotorsBus, ["xl430-w250"] * 2 + ["xl330-m288"] * 4,
             [(0, 1024, 3072), (1, 700, 3400), (0, 900, 3100), (1, 1200, 2900), (0, 0, 4095), (0, 2000, 3000)]),
}


def readings(bus_class: type, models: list[str], cal: dict, body_mode: MotorNormMode, ticks: np.ndarray) -> list:
    motors = {n: Motor(i + 1, m, body_mode if n != "gripper" else MotorNormMode.RANGE_0_100)
              for i, (n, m) in enumerate(zip(NAMES, models, strict=True))}
    bus = bus_class("/dev/null", motors, cal)  # never connected: only its normalization runs
    return [[bus._normalize({i + 1: int(t)})[i + 1] for i, t in enumerate(row)] for row in ticks]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("tests/fixtures/lerobot_units.json"))
    a = p.parse_args()
    rng = np.random.default_rng(0)
    out = {}
    for arm, (bus_class, models, motors) in ARMS.items():
        cal = {n: MotorCalibration(id=i + 1, drive_mode=d, homing_offset=0, range_min=lo, range_max=hi)
               for i, (n, (d, lo, hi)) in enumerate(zip(NAMES, motors, strict=True))}
        ticks = np.stack([rng.integers(lo, hi + 1, size=20) for _, lo, hi in motors], axis=1)
        out[arm] = {
            "calibration": {n: {"id": c.id, "drive_mode": c.drive_mode, "homing_offset": c.homing_offset,
                                "range_min": c.range_min, "range_max": c.range_max} for n, c in cal.items()},
            "ticks": ticks.tolist(),
            "degrees": readings(bus_class, models, cal, MotorNormMode.DEGREES, ticks),
            "range": readings(bus_class, models, cal, MotorNormMode.RANGE_M100_100, ticks),
        }
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
