"""Calibration in LeRobot's JSON format and the ONE conversion between motor ticks and spec SI units.

File format (LeRobot `MotorCalibration`): `{motor: {id, drive_mode, homing_offset, range_min, range_max}}`.
Revolute joints use LeRobot's DEGREES convention, in radians: q = s * (ticks - mid) * 2 pi / (res - 1) with
mid = (range_min + range_max) / 2; grippers use RANGE_0_100 as a fraction: (ticks - range_min) / span.
s = -1 when drive_mode is set and the bus applies it in software (Feetech); Dynamixel servos apply
drive_mode in hardware (the Drive_Mode register), so there s = +1.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from twinarm.real.control_tables import get_model
from twinarm.real.errors import CalibrationError
from twinarm.spec import ArmSpec

#: The tick a half-turn homed joint reads at the middle of its range (4096-count encoders).
REVOLUTE_CENTER = 2047


@dataclass(frozen=True)
class MotorCalibration:
    """One motor's calibration, field for field LeRobot's."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    def __post_init__(self) -> None:
        if self.range_max <= self.range_min:
            raise CalibrationError(f"motor id {self.id}: range_max {self.range_max} must exceed range_min "
                                   f"{self.range_min}")

    @property
    def mid(self) -> float:
        return (self.range_min + self.range_max) / 2.0


class Calibration:
    """A calibration for a set of named motors; loads and saves LeRobot's JSON files."""

    def __init__(self, motors: Mapping[str, MotorCalibration]) -> None:
        self.motors: dict[str, MotorCalibration] = dict(motors)

    def __getitem__(self, name: str) -> MotorCalibration:
        return self.motors[name]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Calibration) and self.motors == other.motors

    def __repr__(self) -> str:
        return f"Calibration({self.motors!r})"

    # ----- files ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, int]]:
        return {name: asdict(m) for name, m in self.motors.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, int]], source: str = "calibration") -> Calibration:
        motors = {}
        fields = ("id", "drive_mode", "homing_offset", "range_min", "range_max")
        for name, entry in data.items():
            if not isinstance(entry, Mapping):
                raise CalibrationError(f"{source}: entry {name!r} must be a mapping of {fields}")
            missing = [f for f in fields if f not in entry]
            if missing:
                raise CalibrationError(f"{source}: motor {name!r} lacks {missing} (LeRobot format needs {fields})")
            values = {}
            for f in fields:
                v = entry[f]
                if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
                    raise CalibrationError(f"{source}: motor {name!r} field {f!r} must be an integer, got {v!r}")
                values[f] = int(v)
            try:
                motors[name] = MotorCalibration(**values)
            except CalibrationError as exc:
                raise CalibrationError(f"{source}: motor {name!r}: {exc}") from None
        return cls(motors)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path).expanduser()
        if path.is_dir():
            found = sorted(p.name for p in path.glob("*.json"))[:5]
            raise CalibrationError(f"calibration file {path} is a directory; name a JSON file in it"
                                   + (f" (it holds {', '.join(found)})" if found else ""))
        if not path.is_file():
            raise CalibrationError(f"calibration file {path} not found; run `twinarm calibrate` to make one")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CalibrationError(f"calibration file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CalibrationError(f"calibration file {path} must hold a mapping of motor names")
        return cls.from_dict(data, source=str(path))

    def save(self, path: str | Path) -> Path:
        path = check_writable(path, "calibration file")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=4) + "\n")
        return path

    def check_matches(self, spec: ArmSpec, source: str = "calibration") -> None:
        """Raise CalibrationError unless this calibration names exactly the spec's motors with its ids."""
        expected = {j.name: j.motor_id for j in spec.joints}
        missing = sorted(set(expected) - set(self.motors))
        extra = sorted(set(self.motors) - set(expected))
        wrong = sorted(f"{n} (file id {self.motors[n].id}, arm id {i})" for n, i in expected.items()
                       if n in self.motors and self.motors[n].id != i)
        if missing or extra or wrong:
            parts = [f"missing motors {missing}" if missing else "", f"unknown motors {extra}" if extra else "",
                     f"id mismatch: {', '.join(wrong)}" if wrong else ""]
            raise CalibrationError(f"{source} does not match arm {spec.name!r}: " + "; ".join(p for p in parts if p))
        for j in spec.joints:  # values the motors' registers can hold, checked before anything is written
            if not j.motor_model:
                continue
            model, c = get_model(j.motor_model), self.motors[j.name]
            top = model.resolution - 1  # Dynamixels may run multi-turn (extended position) modes: Feetech only
            if model.bus == "feetech" and not 0 <= c.range_min < c.range_max <= top:
                raise CalibrationError(f"{source}: motor {j.name!r} range {c.range_min}..{c.range_max} lies "
                                       f"outside its {model.name}'s positions 0..{top}")
            if "Homing_Offset" in model.table:
                try:
                    model.register("Homing_Offset").encode(c.homing_offset)
                except ValueError as exc:
                    raise CalibrationError(f"{source}: motor {j.name!r} homing_offset {c.homing_offset} does not "
                                           f"fit its {model.name} ({exc})") from None

    # ----- the unit conversion --------------------------------------------------------------------
    def to_si(self, spec: ArmSpec, ticks: Mapping[str, float], resolution: int = 4096,
              software_drive_mode: bool = True) -> np.ndarray:
        """Present positions (ticks, by motor name) -> joint positions in spec order (rad, gripper 0..1), as
        LeRobot's degrees mode reads them: a drive mode reverses the gripper where the bus applies it in software
        (Feetech), never a revolute joint (LeRobot's degrees ignore it there, and twinarm's units are those)."""
        out = np.empty(spec.dof)
        for i, joint in enumerate(spec.joints):
            c = self.motors[joint.name]
            t = float(ticks[joint.name])
            inverted = software_drive_mode and bool(c.drive_mode)
            if joint.kind == "gripper":
                frac = (t - c.range_min) / (c.range_max - c.range_min)
                out[i] = 1.0 - frac if inverted else frac
            else:
                out[i] = (t - c.mid) * 2 * math.pi / (resolution - 1)
        return out

    def from_si(self, spec: ArmSpec, q: np.ndarray, resolution: int = 4096,
                software_drive_mode: bool = True) -> dict[str, int]:
        """Joint targets in SI units (spec order) -> goal ticks by motor name, clamped to the range (the inverse
        of `to_si`)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (spec.dof,):
            raise ValueError(f"arm {spec.name!r} has {spec.dof} joints, got targets of shape {q.shape}")
        out: dict[str, int] = {}
        for i, joint in enumerate(spec.joints):
            c = self.motors[joint.name]
            inverted = software_drive_mode and bool(c.drive_mode)
            if joint.kind == "gripper":
                frac = 1.0 - q[i] if inverted else q[i]
                t = c.range_min + frac * (c.range_max - c.range_min)
            else:
                t = c.mid + q[i] * (resolution - 1) / (2 * math.pi)
            out[joint.name] = int(min(c.range_max, max(c.range_min, round(t))))
        return out

    def degrees_per_range_unit(self, spec: ArmSpec, resolution: int = 4096) -> np.ndarray:
        """Per joint of `spec`: degrees per unit of LeRobot's -100..100 range mode (`use_degrees=False`), 1 for the
        gripper (0..100 in both modes). LeRobot maps ticks t to (t - min) / (max - min) * 200 - 100 in range mode,
        negated where a Feetech bus applies the drive mode in software, and to (t - mid) * 360 / (resolution - 1)
        in degrees, which is never negated: one factor per joint (`datasets_io.units` rescales datasets by it,
        `Policy.rescale_joint_units` checkpoints). Raises CalibrationError for an arm LeRobot reports otherwise."""
        if spec.lerobot_units != "degrees":
            raise CalibrationError(f"arm {spec.name!r}: LeRobot reports it in {spec.lerobot_units}, not in degrees "
                                   "or its -100..100 range mode")
        self.check_matches(spec)
        software_drive_mode = spec.motor_bus == "feetech"
        out = np.ones(spec.dof)
        for i, joint in enumerate(spec.joints):
            if joint.kind == "gripper":
                continue
            c = self.motors[joint.name]
            sign = -1.0 if software_drive_mode and c.drive_mode else 1.0
            out[i] = sign * (c.range_max - c.range_min) / 200.0 * 360.0 / (resolution - 1)
        return out


def check_writable(path: str | Path, what: str) -> Path:
    """`path` (expanded) once a file can be written there, else a CalibrationError naming `what` (the flag) and
    the way out: checked before an interactive calibration, which a failed save at its end would lose."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CalibrationError(f"{what} {path} is a directory; give a file in it, e.g. {path / 'calibration.json'}")
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p.is_symlink())
    if not folder.is_dir():
        raise CalibrationError(f"{what} {path}: {folder} is a file, not a directory; give a path in a directory")
    try:  # the one sure test: make a file there (permissions, a read-only or pseudo file system such as /proc)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise CalibrationError(f"{what} {path}: cannot write in {folder} ({exc.strerror or exc}); give a path in a "
                               "directory you can write to") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise CalibrationError(f"{what} {path} exists and cannot be overwritten (permissions); give another path")
    return path


def default_calibration_path(arm: str, robot_id: str = "default") -> Path:
    """Where `twinarm calibrate` saves by default: `~/.cache/twinarm/calibration/<arm>/<id>.json`."""
    return Path.home() / ".cache" / "twinarm" / "calibration" / arm / f"{robot_id}.json"
