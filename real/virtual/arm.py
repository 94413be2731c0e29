"""A virtual arm: one emulated servo per spec joint, mounted on a joint backend (MuJoCo or in-memory).

The mount says where each joint sits on its encoder, like a physically assembled arm whose horns
were fitted anywhere: raw encoder ticks = zero_ticks + direction * q * 4096 / (2 pi) for revolute
joints, closed_ticks + q * (open_ticks - closed_ticks) for grippers. A calibration is therefore needed to
read radians, exactly as on the real arm; `ideal_calibration()` is the one a perfect calibration finds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np

from twinarm.real.calibration import REVOLUTE_CENTER, Calibration, MotorCalibration
from twinarm.real.control_tables import get_model
from twinarm.real.virtual.backend import InMemoryBackend, JointBackend
from twinarm.real.virtual.servo import VirtualServo
from twinarm.spec import ArmSpec

StepMode = Literal["manual", "lockstep", "realtime"]

#: Default horn offsets (ticks from mid-turn), cycled over joints, so calibration is never a no-op.
_DEFAULT_OFFSETS = (-310, 245, -160, 390, 35, -120, 275, -205)
_STALL_CURRENT_MA = 1500.0


@dataclass(frozen=True)
class JointMount:
    """Where a joint sits on its servo's encoder (see the module docstring)."""

    zero_ticks: float = 2048.0
    direction: int = 1
    closed_ticks: float = 2000.0
    open_ticks: float = 3400.0


class VirtualArm:
    """Servos for every joint of `spec`, answering register reads from the backend's joint state.

    step_mode: `manual` (the caller calls `step()`), `lockstep` (the physics advances one control period
    on each SYNC_WRITE of Goal_Position: deterministic, used to compare with the sim env), or
    `realtime` (a thread steps the physics every control period of wall-clock time). `mirrored` joints
    (without an explicit mount) turn their encoder the other way, as a Koch leader's elbow_flex does.
    """

    def __init__(self, spec: ArmSpec, backend: JointBackend | None = None, step_mode: StepMode = "manual",
                 mounts: dict[str, JointMount] | None = None, baud: int = 1_000_000,
                 mirrored: Collection[str] = ()) -> None:
        self.spec = spec
        self.backend: JointBackend = backend if backend is not None else InMemoryBackend(spec)
        self.step_mode: StepMode = step_mode
        self.lock = threading.RLock()  # registers, targets and the published joint snapshot
        self._physics_lock = threading.RLock()  # the backend (taken after `lock` when both are held)
        self._pending_targets: np.ndarray | None = None
        self.mounts: dict[str, JointMount] = {}
        self.servos: list[VirtualServo] = []
        for i, joint in enumerate(spec.joints):
            mount = (mounts or {}).get(joint.name) or JointMount(
                zero_ticks=2048.0 + _DEFAULT_OFFSETS[i % 8], direction=-1 if joint.name in mirrored else 1
            )
            self.mounts[joint.name] = mount
            servo = VirtualServo(get_model(joint.motor_model), joint.motor_id or i + 1, baud=baud,
                                 listener=self._on_write)
            self.servos.append(servo)
        self._joint_of = {id(s): j for j, s in enumerate(self.servos)}
        self.steps = 0
        self._dirty_targets = False
        self._targets = np.zeros(spec.dof)
        self._snapshot()
        self._targets = self._q.copy()
        for servo in self.servos:
            self._refresh(servo)
            servo.set("Goal_Position", servo.get("Present_Position"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- joint <-> encoder ------------------------------------------------------------------
    def _counts_per_unit(self, j: int) -> float:
        joint = self.spec.joints[j]
        mount = self.mounts[joint.name]
        if joint.kind == "gripper":
            return mount.open_ticks - mount.closed_ticks
        return mount.direction * self.servos[j].model.resolution / (2 * math.pi)

    def actual_ticks(self, j: int, q: float) -> float:
        """Raw encoder ticks (before homing offset / drive mode) of joint j at SI position q."""
        joint = self.spec.joints[j]
        mount = self.mounts[joint.name]
        base = mount.closed_ticks if joint.kind == "gripper" else mount.zero_ticks
        return base + q * self._counts_per_unit(j)

    def joint_from_ticks(self, j: int, ticks: float) -> float:
        joint = self.spec.joints[j]
        mount = self.mounts[joint.name]
        base = mount.closed_ticks if joint.kind == "gripper" else mount.zero_ticks
        return (ticks - base) / self._counts_per_unit(j)

    def _present_from_actual(self, servo: VirtualServo, actual: float) -> int:
        res = servo.model.resolution
        if servo.model.bus == "feetech":
            return int(round(actual - servo.get("Homing_Offset"))) % res  # Present = Actual - Offset
        sign = -1 if servo.get("Drive_Mode") & 1 else 1
        return sign * int(round(actual)) + servo.get("Homing_Offset")  # Present = Actual + Offset

    def _actual_from_goal(self, servo: VirtualServo, goal: int, near: float) -> float:
        res = servo.model.resolution
        if servo.model.bus == "feetech":
            raw = goal + servo.get("Homing_Offset")
            return raw + res * round((near - raw) / res)  # single-turn encoder: nearest turn
        sign = -1 if servo.get("Drive_Mode") & 1 else 1
        return sign * (goal - servo.get("Homing_Offset"))

    # ----- state --------------------------------------------------------------------------------
    def _snapshot(self) -> None:
        self._q = self.backend.joint_positions()
        self._v = self.backend.joint_velocities()
        self._eff = self.backend.actuator_efforts()

    def _refresh(self, servo: VirtualServo) -> None:
        j = self._joint_of[id(servo)]
        model = servo.model
        present = self._present_from_actual(servo, self.actual_ticks(j, self._q[j]))
        counts_s = self._v[j] * self._counts_per_unit(j)
        if model.bus == "dynamixel" and servo.get("Drive_Mode") & 1:
            counts_s = -counts_s
        load_frac = float(np.clip(self._eff[j] / model.stall_torque, -1.0, 1.0))
        servo.set("Present_Position", present)
        servo.set("Present_Velocity", int(round(counts_s / model.velocity_unit)))
        servo.set("Moving", int(abs(counts_s) > 4))
        if model.bus == "feetech":
            servo.set("Present_Load", int(round(load_frac * 1000)))
            servo.set("Present_Current", int(round(abs(load_frac) * _STALL_CURRENT_MA / model.current_unit_ma)))
        elif "Present_Current" in model.table:
            servo.set("Present_Current", int(round(load_frac * _STALL_CURRENT_MA / model.current_unit_ma)))
        else:
            servo.set("Present_Load", int(round(load_frac * 1000)))

    def refresh(self, servo: VirtualServo) -> None:
        """Update the Present_* registers of `servo` from the latest joint state."""
        with self.lock:
            self._refresh(servo)

    def _on_write(self, servo: VirtualServo, changed: set[str]) -> None:
        j = self._joint_of[id(servo)]
        if "Torque_Enable" in changed:
            # Enabling torque holds the present position (no jump); disabling leaves the joint where it is.
            self._refresh(servo)
            servo.set("Goal_Position", servo.get("Present_Position"))
            self._targets[j] = self._q[j]
            self._dirty_targets = True
        elif changed & {"Homing_Offset", "Drive_Mode"}:
            self._refresh(servo)
            if not servo.torque_on:
                servo.set("Goal_Position", servo.get("Present_Position"))
        if "Goal_Position" in changed and servo.torque_on:
            actual = self._actual_from_goal(servo, servo.get("Goal_Position"), self.actual_ticks(j, self._q[j]))
            target = self.joint_from_ticks(j, actual)
            joint = self.spec.joints[j]
            self._targets[j] = float(np.clip(target, joint.lower, joint.upper))
            self._dirty_targets = True

    def commit(self, stepped_by_goal_write: bool = False) -> None:
        """Hand changed targets to the physics; in lockstep mode a goal sync-write also advances it.

        In realtime mode the physics thread picks the targets up before its next step, so a request never
        waits for a physics step (requests only touch registers and the published joint snapshot).
        """
        with self.lock:
            pending = self._targets.copy() if self._dirty_targets else None
            self._dirty_targets = False
            if self.step_mode == "realtime":
                if pending is not None:
                    self._pending_targets = pending
                return
            with self._physics_lock:
                if pending is not None:
                    self.backend.set_targets(pending)
                if stepped_by_goal_write and self.step_mode == "lockstep":
                    self._step_locked()

    def _step_locked(self) -> None:
        self.backend.step()
        self.steps += 1
        self._snapshot()

    def step(self) -> None:
        """Advance the backend one control period (targets handed over first)."""
        with self.lock:
            pending, self._pending_targets = self._pending_targets, None
        with self._physics_lock:
            if pending is not None:
                self.backend.set_targets(pending)
            self.backend.step()
            q, v, e = self.backend.joint_positions(), self.backend.joint_velocities(), self.backend.actuator_efforts()
        with self.lock:
            self._q, self._v, self._eff = q, v, e
            self.steps += 1

    def move_to(self, q: np.ndarray) -> None:
        """Place the joints (a hand moving the arm, or the start of an episode); servos hold there."""
        with self.lock, self._physics_lock:
            self._pending_targets = None
            self.backend.move_to(np.asarray(q, dtype=np.float64))
            self._snapshot()
            self._targets = self._q.copy()
            for servo in self.servos:
                self._refresh(servo)
                servo.set("Goal_Position", servo.get("Present_Position"))

    def joint_positions(self) -> np.ndarray:
        with self.lock:
            return self._q.copy()

    @property
    def targets(self) -> np.ndarray:
        with self.lock:
            return self._targets.copy()

    # ----- realtime stepping --------------------------------------------------------------------
    def start(self) -> None:
        """In realtime mode, start the thread that steps the physics every control period."""
        if self.step_mode != "realtime" or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="virtual-arm-physics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        period = self.backend.control_period
        next_t = time.perf_counter()
        while not self._stop.is_set():
            self.step()
            next_t += period
            delay = next_t - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_t = time.perf_counter()

    # ----- calibration of the mount -------------------------------------------------------------
    def ideal_calibration(self) -> Calibration:
        """The LeRobot-format calibration a perfect calibration run finds for this mount (Feetech-style
        half-turn homing: the joint's zero reads mid-range; ranges symmetric about it)."""
        motors: dict[str, MotorCalibration] = {}
        for j, joint in enumerate(self.spec.joints):
            servo = self.servos[j]
            mount = self.mounts[joint.name]
            res = servo.model.resolution
            if joint.kind == "gripper":
                lo, hi = sorted((mount.closed_ticks, mount.open_ticks))
                mid = (lo + hi) / 2
            else:
                lo, hi = sorted((self.actual_ticks(j, joint.lower), self.actual_ticks(j, joint.upper)))
                mid = mount.zero_ticks
            drive_mode = 1 if self._counts_per_unit(j) < 0 else 0
            if servo.model.bus == "feetech":
                offset = int(round(mid)) - REVOLUTE_CENTER  # Present = Actual - Offset
                ends = (lo - offset, hi - offset)
            else:
                sign = -1 if drive_mode else 1
                offset = REVOLUTE_CENTER - sign * int(round(mid))  # Present = sign * Actual + Offset
                ends = (sign * lo + offset, sign * hi + offset)
            p_lo, p_hi = int(math.floor(min(ends))), int(math.ceil(max(ends)))
            if joint.kind != "gripper":
                half = max(REVOLUTE_CENTER - p_lo, p_hi - REVOLUTE_CENTER)
                p_lo, p_hi = REVOLUTE_CENTER - half, REVOLUTE_CENTER + half
            motors[joint.name] = MotorCalibration(
                id=servo.motor_id, drive_mode=drive_mode,
                homing_offset=offset, range_min=max(0, p_lo), range_max=min(res - 1, p_hi))
        return Calibration(motors)
