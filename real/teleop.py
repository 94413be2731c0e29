"""Teleoperation: a leader arm (or the keyboard) produces joint targets in SI units, a follower env takes them.

Leader/follower pairs: SO-100/101 leader -> follower (same STS3215 motors), Koch leader (XL330-M077) ->
Koch follower, ALOHA: two WidowX leaders -> the two ViperX arms of one 14-joint follower (`make_leader`
builds a `BimanualLeader`; each arm is one bus group, `left`/`right`). The loop reports its rate.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from twinarm.real.buses import BUSES
from twinarm.real.calibration import Calibration
from twinarm.real.calibration_owner import check_calibration_owner
from twinarm.real.control_tables import DEFAULT_BAUD, get_model
from twinarm.real.motor_bus import Motor, MotorBus
from twinarm.real.multi_bus import bus_groups
from twinarm.real.terminal_keys import KeyHub, KeyQueue
from twinarm.spec import ArmSpec

#: Leader arms differ from their followers only in servo models (and are moved by hand, torque off): one
#: model for every joint, or {joint: model} by the joint's name on one arm (without ALOHA's `left_`/`right_`).
LEADER_MOTOR_MODELS: dict[str, str | dict[str, str]] = {
    "koch": "xl330-m077",
    # ALOHA's leaders are WidowX 250 arms (Trossen; the servos LeRobot's ALOHA configuration listed).
    "aloha": {
        "waist": "xm430-w350",
        "shoulder": "xm430-w350",
        "elbow": "xm430-w350",
        "forearm_roll": "xm430-w350",
        "wrist_angle": "xm430-w350",
        "wrist_rotate": "xl430-w250",
        "gripper": "xc430-w150",
    },
}

#: Leader joints whose servo is mounted mirrored relative to the follower's (by joint name on one arm):
#: calibration sets their drive mode so the leader reads the follower's direction. LeRobot's Koch leader
#: inverts elbow_flex (Drive_Mode 1 in the servo, `drive_mode: 1` in its calibration file).
LEADER_INVERTED_JOINTS: dict[str, tuple[str, ...]] = {"koch": ("elbow_flex",)}


def leader_inverted_joints(spec: ArmSpec, group: str = "") -> tuple[str, ...]:
    """The leader joints of `spec` mounted mirrored, named as in `leader_spec(spec, group)`."""
    names = LEADER_INVERTED_JOINTS.get(spec.name, ())
    return tuple(f"{group}_{n}" for n in names) if group else names


def arm_part(spec: ArmSpec, group: str = "") -> ArmSpec:
    """One arm of a set-up whose arms sit on separate buses (ALOHA's `left` or `right` ViperX, named as in
    `multi_bus.bus_groups`) as an ArmSpec of its own; `spec` itself for one-bus arms (group "")."""
    groups = bus_groups(spec)
    if group not in groups:
        if group == "":
            raise ValueError(
                f"arm {spec.name!r} is {len(groups)} arms on separate buses ({', '.join(groups)}); "
                "name one of them"
            )
        raise ValueError(
            f"arm {spec.name!r} has no arm {group!r}; its arms: {', '.join(g or repr(g) for g in groups)}"
        )
    if len(groups) == 1:
        return spec
    names = set(groups[group])
    keep = [i for i, j in enumerate(spec.joints) if j.name in names]
    return replace(
        spec,
        name=f"{spec.name}_{group}",
        display_name=f"{spec.display_name}, {group} arm",
        joints=tuple(spec.joints[i] for i in keep),
        home=tuple(spec.home[i] for i in keep) if spec.home else (),
    )


def leader_spec(spec: ArmSpec, group: str = "") -> ArmSpec:
    """The leader of `spec` (of one of its arms for ALOHA: `left`/`right`) as an ArmSpec: the follower's joint
    names, ids and limits with the leader's servo models (what `LeaderArm` and a virtual leader arm use)."""
    part = arm_part(spec, group)
    models = LEADER_MOTOR_MODELS.get(spec.name)
    if models is None:
        return part

    def model(joint_name: str) -> str:
        if isinstance(models, str):
            return models
        return models[joint_name.removeprefix(f"{group}_") if group else joint_name]

    return replace(
        part,
        name=f"{part.name}_leader",
        display_name=f"{part.display_name} leader",
        joints=tuple(replace(j, motor_model=model(j.name)) for j in part.joints),
    )


def part_calibration(source: str | Path | Calibration, spec: ArmSpec, group: str = "",
                     leader: bool = False) -> Calibration:
    """The calibration of one arm of `spec` (bus group `group`, see `arm_part`), leader or follower (the
    two share motor names and ids), from a LeRobot-format file or a Calibration.

    For ALOHA the file may name its motors as the spec does (`left_waist`), as on one arm (`waist`, how
    LeRobot stores each arm of a bimanual robot), or hold both arms (`left_*` and `right_*`; this arm's are
    kept). Raises CalibrationError naming the file when the motors do not match the arm, or when it lies in the
    folder of another arm's or the other role's files (`calibration_owner`).
    """
    part = arm_part(spec, group)
    if isinstance(source, (str, Path)):
        check_calibration_owner(source, spec, group, leader=leader)
    cal = source if isinstance(source, Calibration) else Calibration.load(source)
    label = f"calibration {source}" if isinstance(source, (str, Path)) else "calibration"
    if group:
        prefixes = tuple(f"{g}_" for g in bus_groups(spec))
        motors = {n if n.startswith(prefixes) else f"{group}_{n}": c for n, c in cal.motors.items()}
        if set(part.joint_names) <= set(motors):
            motors = {n: motors[n] for n in part.joint_names}
        cal = Calibration(motors)
        label += f" ({group} arm)"
    cal.check_matches(part, source=label)
    return cal


class Teleoperator(Protocol):
    """Anything that yields the next joint targets (SI units, follower spec order)."""

    def get_action(self) -> np.ndarray: ...

    def close(self) -> None: ...


class LeaderArm:
    """A leader arm on its own port: torque off, present positions through its calibration.

    `spec` is the follower's (its leader's servo models are looked up in LEADER_MOTOR_MODELS) or a
    `leader_spec(...)`; `motor_model` forces one model for every joint.
    """

    def __init__(
        self,
        spec: ArmSpec,
        port: str,
        calibration: str | Path | Calibration,
        motor_model: str | None = None,
        baud: int = DEFAULT_BAUD,
        bus: MotorBus | None = None,
    ) -> None:
        self.spec = spec
        joints = leader_spec(spec).joints if spec.name in LEADER_MOTOR_MODELS else spec.joints
        motors = [Motor(j.name, j.motor_id, get_model(motor_model or j.motor_model)) for j in joints]
        if not isinstance(calibration, Calibration):
            check_calibration_owner(calibration, spec, leader=True)
        self.calibration = (
            calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
        )
        self.calibration.check_matches(spec, source="leader calibration")
        self.bus = bus if bus is not None else BUSES[spec.motor_bus](port, motors, baud=baud)
        self.bus.connect()
        try:
            self.bus.disable_torque()
            if not self.bus.calibration_matches(self.calibration):
                self.bus.write_calibration(self.calibration)
        except BaseException:
            self.bus.close()
            raise

    def get_action(self) -> np.ndarray:
        ticks = self.bus.positions()
        return self.calibration.to_si(self.spec, ticks, software_drive_mode=self.bus.software_drive_mode)

    def close(self) -> None:
        self.bus.close()


class BimanualLeader:
    """Two leaders whose actions are concatenated (ALOHA: left joints, then right joints)."""

    def __init__(self, left: Teleoperator, right: Teleoperator) -> None:
        self.left, self.right = left, right

    def get_action(self) -> np.ndarray:
        return np.concatenate([self.left.get_action(), self.right.get_action()])

    def close(self) -> None:
        try:
            self.left.close()
        finally:
            self.right.close()


def make_leader(
    spec: ArmSpec,
    ports: Mapping[str, str],
    calibrations: Mapping[str, str | Path | Calibration],
    baud: int = DEFAULT_BAUD,
) -> Teleoperator:
    """The leader set-up that drives a follower of `spec`, connected and limp.

    `ports` and `calibrations` map each of the follower's bus groups (`multi_bus.bus_groups`: `""` for
    one-bus arms; `left` and `right` for ALOHA) to the port and calibration (see `part_calibration`) of the
    leader arm that drives it; ALOHA gets one `LeaderArm` per side joined by `BimanualLeader`, so the
    left leader drives the left arm and the right leader the right arm.
    """
    groups = bus_groups(spec)
    for what, given in (("port", ports), ("calibration", calibrations)):
        if set(given) != set(groups):
            raise ValueError(
                f"arm {spec.name!r} needs one leader {what} for each of its arms {list(groups)}, "
                f"got {what}s for {sorted(given)}"
            )
    if [n for names in groups.values() for n in names] != list(spec.joint_names):
        raise ValueError(f"arm {spec.name!r}: its bus groups do not list the joints in spec order")
    if len(groups) > 2:
        raise ValueError(f"arm {spec.name!r}: {len(groups)} leader arms; only one or two are supported")
    arms: list[LeaderArm] = []
    try:
        for g in groups:
            arms.append(
                LeaderArm(
                    leader_spec(spec, g), ports[g], part_calibration(calibrations[g], spec, g, leader=True), baud=baud
                )
            )
    except BaseException:
        for arm in arms:
            arm.close()
        raise
    return arms[0] if len(arms) == 1 else BimanualLeader(*arms)


#: Keyboard layout: (increase, decrease) key per joint in spec order.
KEY_PAIRS: tuple[tuple[str, str], ...] = (
    ("q", "a"),
    ("w", "s"),
    ("e", "d"),
    ("r", "f"),
    ("t", "g"),
    ("y", "h"),
    ("u", "j"),
    ("i", "k"),
)


class KeyboardTeleop:
    """Joint-space keyboard control of one arm: each key pair nudges one joint by `step` per press.

    Keys come from a `KeyHub` (a terminal's `TerminalKeys` or a window; other listeners may share it) or from
    `press()` (tests).
    """

    def __init__(
        self,
        spec: ArmSpec,
        start: np.ndarray,
        step: float = 0.03,
        gripper_step: float = 0.05,
        keys: KeyHub | None = None,
    ) -> None:
        if spec.dof > len(KEY_PAIRS):
            raise ValueError(
                f"keyboard teleop supports up to {len(KEY_PAIRS)} joints, {spec.name} has {spec.dof}"
            )
        self.spec = spec
        self.target = spec.clip_action(np.asarray(start, dtype=np.float64))
        self.steps = np.where(spec.gripper_mask, gripper_step, step)
        self._keys = KeyQueue(keys)

    @staticmethod
    def help_text(spec: ArmSpec) -> str:
        return ", ".join(
            f"{j.name}: {up}/{down}" for j, (up, down) in zip(spec.joints, KEY_PAIRS, strict=False)
        )

    def press(self, key: str) -> None:
        self._keys.press(key)

    def get_action(self) -> np.ndarray:
        for key in self._keys.take():
            for i, (up, down) in enumerate(KEY_PAIRS[: self.spec.dof]):
                if key == up:
                    self.target[i] += self.steps[i]
                elif key == down:
                    self.target[i] -= self.steps[i]
        self.target = self.spec.clip_action(self.target)
        return self.target.copy()

    def hold(self, pose: np.ndarray) -> None:
        """Start again from `pose` (a simulated follower's reset put the arm there); pending keys are dropped."""
        self._keys.clear()
        self.target = self.spec.clip_action(np.asarray(pose, dtype=np.float64))

    def close(self) -> None:
        """Nothing to release: the keys belong to whoever made the `KeyHub`."""


@dataclass
class LoopStats:
    """Loop rate bookkeeping: the teleop display's recent rate, and the whole run's typical rate (the median
    period) that judges whether a recording loop kept its fps."""

    steps: int = 0
    periods: deque | None = None

    def __post_init__(self) -> None:
        self.periods = deque(maxlen=300)
        self._last: float | None = None
        self._all = array("d")  # every period since the start, pauses left out (8 bytes a step)

    def pause(self) -> None:
        """The time until the next tick is not a loop period (an episode boundary: saving, a reset period),
        so it does not drag the shown rate down for the next few hundred steps."""
        self._last = None

    def tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.periods.append(now - self._last)
            self._all.append(now - self._last)
        self._last = now
        self.steps += 1

    @property
    def rate_hz(self) -> float:
        return 1.0 / float(np.mean(self.periods)) if self.periods else 0.0

    @property
    def median_rate_hz(self) -> float:
        """The loop's rate from its median period since the start (the display shows the mean of the last 300).
        The median, not the mean: a few start-up overruns of 50-130 ms pulled a loop that kept 30 Hz down to a
        27.7 Hz "average", while a loop slow at every step (a slow camera) still shows slow."""
        return 1.0 / float(np.median(self._all)) if len(self._all) else 0.0

    @property
    def p99_period_ms(self) -> float:
        return float(np.percentile(self.periods, 99)) * 1e3 if self.periods else 0.0

    def line(self) -> str:
        return f"loop {self.rate_hz:6.1f} Hz   p99 period {self.p99_period_ms:6.1f} ms   steps {self.steps}"


def teleoperate(
    leader: Teleoperator,
    follower: Any,
    duration_s: float | None = None,
    max_steps: int | None = None,
    report: Callable[[LoopStats], None] | None = None,
    report_every_s: float = 1.0,
    stats: LoopStats | None = None,
    until: Callable[[], bool] | None = None,
) -> LoopStats:
    """Drive `follower` (a RealArmEnv or any env whose step takes joint targets) from `leader`.

    The follower's step paces the loop to its control rate; `report` is called about once a second.
    Pass `stats` to keep the loop's numbers when it ends by an exception (Ctrl-C). `until()`, asked after
    every step, ends the loop early when it returns True (an operator's key, say).
    """
    stats = stats if stats is not None else LoopStats()
    follower.reset()
    start = last_report = time.perf_counter()
    while True:
        follower.step(np.asarray(leader.get_action(), dtype=np.float32))
        stats.tick()
        now = time.perf_counter()
        if report is not None and now - last_report >= report_every_s:
            report(stats)
            last_report = now
        if (duration_s is not None and now - start >= duration_s) or (
            max_steps is not None and stats.steps >= max_steps
        ) or (until is not None and until()):
            return stats


def cameras_from_args(items: list[str] | None) -> Mapping[str, dict[str, Any]]:
    """`name=path_or_index` (OpenCV) or `name=realsense:SERIAL_OR_FILE` -> camera configs."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        name, _, src = item.partition("=")
        if not src:
            raise ValueError(f"camera {item!r} must look like name=source")
        if src.startswith("realsense:"):
            ref = src.split(":", 1)[1]
            if not Path(ref).is_file() and _names_a_file(ref):  # not a serial number mistyped: a missing file
                raise ValueError(f"--camera {item}: RealSense recording file not found: {ref}")
            key = "playback_file" if Path(ref).is_file() else "serial_number"
            out[name] = {"type": "realsense", key: ref}
        else:
            out[name] = {"type": "opencv", "index_or_path": int(src) if src.isdigit() else src}
    return out


def _names_a_file(ref: str) -> bool:
    """Whether a `realsense:REF` is meant as a recording (a path, or a .bag/.db3 name) rather than a serial number."""
    return "/" in ref or Path(ref).suffix.lower() in (".bag", ".db3")
