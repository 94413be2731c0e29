"""The hand that moves a virtual leader arm (a leader is limp and moved by hand): a slow sine sweep of
every joint (`wiggle`) or poses typed as `joint=value` lines, applied as `VirtualArm.move_to` does."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np

from twinarm.real.virtual.arm import VirtualArm
from twinarm.spec import ArmSpec

#: Sweep amplitude: revolute joints (rad, at most a quarter of the joint's range); the gripper sweeps 0.1..0.9.
WIGGLE_AMPLITUDE_RAD = 0.5
GRIPPER_CENTER, GRIPPER_AMPLITUDE = 0.5, 0.4


def wiggle_pose(spec: ArmSpec, start: np.ndarray, t: float, period_s: float) -> np.ndarray:
    """The sweep's pose `t` seconds in: joint j swings about its start pose (moved inward so the swing stays
    inside its limits) with phase 2 pi j / dof, so the joints (and ALOHA's two arms) move differently."""
    q = np.empty(spec.dof)
    for j, joint in enumerate(spec.joints):
        phase = 2 * math.pi * (t / period_s + j / spec.dof)
        if joint.kind == "gripper":
            q[j] = GRIPPER_CENTER + GRIPPER_AMPLITUDE * math.sin(phase)
            continue
        amp = min(WIGGLE_AMPLITUDE_RAD, (joint.upper - joint.lower) / 4)
        center = min(max(float(start[j]), joint.lower + amp), joint.upper - amp)
        q[j] = center + amp * math.sin(phase)
    return q


def parse_pose(
    spec: ArmSpec, line: str, current: np.ndarray, on_clip: Callable[[str], None] | None = None
) -> np.ndarray:
    """`current` with the joints named in `line` (`name=value ...`, radians, gripper 0..1) set, each clipped to
    its limits as a hand stops at a joint's end, which `on_clip` is told (joints not named keep their value as
    it is); ValueError naming the bad item."""
    q = np.asarray(current, dtype=np.float64).copy()
    names = list(spec.joint_names)
    for item in line.replace(",", " ").split():
        name, sep, value = item.partition("=")
        if not sep or name not in names:
            raise ValueError(f"{item!r} is not JOINT=VALUE with JOINT one of {', '.join(names)}")
        try:
            x = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: {value!r} is not a number") from None
        if not math.isfinite(x):
            raise ValueError(f"{item!r}: {value!r} is not a finite number")
        joint = spec.joints[names.index(name)]
        q[names.index(name)] = min(max(x, joint.lower), joint.upper)
        if q[names.index(name)] != x and on_clip is not None:
            on_clip(f"{item} is past the joint's range [{joint.lower:g}, {joint.upper:g}]: "
                    f"moved to {q[names.index(name)]:g}")  # fmt: skip
    return q


class Hand:
    """Moves a virtual leader arm, like a hand on a limp arm, while no client holds any of its servos
    with torque on (a held servo resists the hand). `wiggle_period_s` starts the sweep in a thread;
    `pose(line)` applies a typed pose (`read_lines` feeds it from stdin in a thread)."""

    def __init__(
        self,
        arm: VirtualArm,
        wiggle_period_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.arm = arm
        self.wiggle_period_s = wiggle_period_s
        self.clock = clock
        self.start_pose = arm.joint_positions()
        self._t0 = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def held(self) -> bool:
        """Whether a client holds the arm (torque on in any servo), so the hand cannot move it."""
        return any(s.torque_on for s in self.arm.servos)

    def move(self, q: np.ndarray) -> bool:
        """Put the joints at `q` unless the arm is held; True if moved."""
        with self.arm.lock:
            if self.held():
                return False
            self.arm.move_to(q)
            return True

    def pose(self, line: str, on_clip: Callable[[str], None] | None = None) -> bool:
        """Apply one typed pose line (see `parse_pose`); True if the arm moved."""
        return self.move(parse_pose(self.arm.spec, line, self.arm.joint_positions(), on_clip))

    def start(self) -> None:
        """Start the sweep (when `wiggle_period_s` is set): its first pose now, then one every control period."""
        if self.wiggle_period_s is not None:
            self._t0 = self.clock()
            self.move(wiggle_pose(self.arm.spec, self.start_pose, 0.0, self.wiggle_period_s))
            self._spawn(self._wiggle, "virtual-leader-wiggle")

    def read_lines(self, lines: Iterable[str], on_error: Callable[[str], None]) -> None:
        """Apply pose lines from `lines` (e.g. sys.stdin) in a thread until they end; errors and clipped values go
        to `on_error`."""

        def run() -> None:
            for line in lines:
                if self._stop.is_set():
                    return
                if not line.strip():
                    continue
                try:
                    if not self.pose(line, on_error):
                        on_error("the arm is held (torque on): pose ignored")
                except ValueError as exc:
                    on_error(str(exc))

        self._spawn(run, "virtual-leader-poses")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _wiggle(self) -> None:
        assert self.wiggle_period_s is not None
        period = self.arm.backend.control_period
        while not self._stop.wait(period):
            self.move(
                wiggle_pose(self.arm.spec, self.start_pose, self.clock() - self._t0, self.wiggle_period_s)
            )

    def stop(self) -> None:
        """Stop the sweep (a stdin reader blocked on input ends with the process: it is a daemon thread)."""
        self._stop.set()
        for thread in self._threads:
            if thread.name == "virtual-leader-wiggle":
                thread.join(timeout=2.0)
