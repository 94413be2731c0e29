"""What the Feetech and Dynamixel buses share: named motors, one lock per bus, bounded retries, named
errors and torque safety, over the vendor SDKs' PortHandler / PacketHandler / GroupSync* (unmodified).

The two SDKs have the same method names; a subclass names its SDK module and protocol quirks.
Values are register values (signed, decoded with the control table); unit conversion lives in
`calibration.py`.
"""

from __future__ import annotations

import abc
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from twinarm.real.calibration import Calibration, MotorCalibration
from twinarm.real.control_tables import DEFAULT_BAUD, MOTOR_MODELS, MotorModel, Register, get_model
from twinarm.real.errors import (
    BaudRateError,
    CalibrationError,
    CommunicationError,
    MotorHardwareError,
    MotorModelMismatchError,
    MotorNotRespondingError,
    NotConnectedError,
    PortDisconnectedError,
    PortNotFoundError,
    RealArmError,
)
from twinarm.real.port_lock import lock_port, unlock_port
from twinarm.spec import ArmSpec

try:  # a pty or tty whose device went away fails tcflush with termios.error, which is not an OSError
    from termios import error as _TermiosError
except ImportError:  # not POSIX
    _TermiosError = OSError
#: What the port raises once it is gone (pyserial's SerialException is an OSError).
_PORT_GONE = (OSError, _TermiosError)

log = logging.getLogger(__name__)


def other_protocol_on(port: str, protocol: str, ids: Iterable[int], bauds: Iterable[int]) -> str | None:
    """The other protocol (`dynamixel`, `feetech`) whose motors answer a ping on `port` at one of `bauds`, or None;
    one ping per id and baud through that protocol's SDK (bounded: ids x bauds packet timeouts). Asked when no
    motor of `protocol` answers: the port may be another kind of arm's (a Koch port given to so101)."""
    from twinarm.real.buses import BUSES

    ids = list(dict.fromkeys(ids))
    for other, cls in BUSES.items():
        if other == protocol:
            continue
        probe = cls(port, [], retries=0)
        try:
            probe.open(lock=False)  # the caller holds the port (or has just let it go)
        except RealArmError:
            continue
        try:
            for baud in dict.fromkeys(bauds):
                if probe._port.setBaudRate(baud) and any(probe._ping_once(i) is not None for i in ids):
                    return other
        except _PORT_GONE:
            pass
        finally:
            probe.close()
    return None


@dataclass(frozen=True)
class Motor:
    """A named motor on a bus."""

    name: str
    id: int
    model: MotorModel


class _Failure(Exception):
    """One failed transaction (internal): the SDK result code and, for a status error, the error byte."""

    def __init__(self, result: int, error: int = 0) -> None:
        super().__init__(result, error)
        self.result, self.error = result, error


class MotorBus(abc.ABC):
    """A serial bus of servos of one protocol; all access goes through one lock.

    retries: extra tries after a failed transaction (each one bounded by the SDK's packet timeout).
    drain_s: after a failure, wait this long and discard input, so a late reply is not taken as the
    answer to the next request.
    settle_s: after a failed group transaction, a motor that fails its ping is asked again, and only then
    blamed, once the line has been quiet this long (late answers of another servo are dropped meanwhile; one
    answering later than that can still bury a healthy motor's answer).
    """

    sdk: ClassVar[ModuleType]
    protocol: ClassVar[str]
    #: Whether calibration drive_mode is applied in software (Feetech) or by the servo (Dynamixel).
    software_drive_mode: ClassVar[bool]
    RX_TIMEOUT: ClassVar[int]

    def __init__(self, port: str, motors: Iterable[Motor], baud: int = DEFAULT_BAUD, retries: int = 2,
                 drain_s: float = 0.04, torque_off_on_fault: bool = True, settle_s: float = 0.6) -> None:
        self.port = port
        self.settle_s = settle_s
        self.motors: dict[str, Motor] = {m.name: m for m in motors}
        self.baud = baud
        self.retries = retries
        self.drain_s = drain_s
        self.torque_off_on_fault = torque_off_on_fault
        self.lock = threading.RLock()
        self._port: Any = None
        self._ph: Any = None
        self._lock_fd: int | None = None  # the exclusive lock on the device (port_lock), held while open
        self._faulted: frozenset[int] = frozenset()  # ids whose fault already took torque off (logged once)
        self.stats = {"transactions": 0, "failed_tries": 0}

    @classmethod
    def from_spec(cls, spec: ArmSpec, port: str, **kwargs: Any) -> MotorBus:
        """A bus with one motor per spec joint (name, id and model from the JointSpec)."""
        motors = [Motor(j.name, j.motor_id, get_model(j.motor_model)) for j in spec.joints]
        return cls(port, motors, **kwargs)

    # ----- SDK plumbing (subclasses override the few differences) ----------------------------
    @abc.abstractmethod
    def _packet_handler(self) -> Any:
        """The SDK's protocol packet handler."""

    def _result_text(self, result: int) -> str:
        return self._ph.getTxRxResult(result) if self._ph is not None else str(result)

    @abc.abstractmethod
    def _status_error(self, error: int) -> str | None:
        """Text of a status error that must stop the caller, or None when it is only a warning."""

    @property
    def is_connected(self) -> bool:
        return self._port is not None and bool(self._port.is_open)

    def _require(self) -> None:
        if not self.is_connected:
            raise NotConnectedError(f"bus on {self.port} is not connected; call connect() first")

    def motor(self, name: str) -> Motor:
        try:
            return self.motors[name]
        except KeyError:
            raise KeyError(f"no motor {name!r} on the bus at {self.port}; motors: {list(self.motors)}") from None

    def _name_of(self, motor_id: int) -> str:
        for m in self.motors.values():
            if m.id == motor_id:
                return m.name
        return f"id{motor_id}"

    def register(self, name: str, motors: Iterable[Motor] | None = None) -> Register:
        """The register `name`; it must sit at the same address/size on every given motor model."""
        ms = list(motors if motors is not None else self.motors.values())
        regs = {(m.model.register(name).address, m.model.register(name).size) for m in ms}
        if len(regs) != 1:
            raise ValueError(f"register {name!r} differs between the motor models on {self.port}: {regs}")
        return ms[0].model.register(name)

    # ----- connection ---------------------------------------------------------------------------
    @classmethod
    def usable_bauds(cls, port: str, models: Iterable[MotorModel]) -> list[int]:
        """The baud rates every one of `models` takes (without models: any of this protocol's models) and this
        SDK can open on `port`."""
        sdk_port = cls.sdk.PortHandler(port)
        rates = [set(m.bauds.values()) for m in models]
        if not rates:
            rates = [set().union(*(m.bauds.values() for m in MOTOR_MODELS.values() if m.bus == cls.protocol))]
        candidates = set.intersection(*rates)
        return sorted(b for b in candidates if sdk_port.getCFlagBaud(b) != -1)

    def open(self, lock: bool = True) -> None:
        """Open the port at `baud` (no motor check), holding it against other programs (PortBusyError when one
        has it); `lock=False` only for a probe while this process holds the port or has just closed it."""
        with self.lock:
            models = {m.model.name: m.model for m in self.motors.values()}
            usable = self.usable_bauds(self.port, models.values())
            if self.baud not in usable:
                who = f"the {'/'.join(sorted(models))} motors and " if models else ""
                raise RealArmError(f"{self.baud} baud on {self.port}: not a rate {who}the {self.protocol} SDK "
                                   f"share; use one of {usable}")
            if os.path.exists(self.port) and not stat.S_ISCHR(os.stat(self.port).st_mode):
                kind = "a directory" if os.path.isdir(self.port) else "a regular file"
                raise PortNotFoundError(self.port, f"not a serial device ({kind})")
            lock_fd = lock_port(self.port) if lock else None  # before the SDK touches the line settings
            port = self.sdk.PortHandler(self.port)
            try:
                ok = port.openPort() if self.baud == DEFAULT_BAUD else port.setBaudRate(self.baud)
            except Exception as exc:  # serial.SerialException, OSError
                unlock_port(lock_fd)
                raise PortNotFoundError(self.port, str(exc)) from None
            if not ok:
                unlock_port(lock_fd)
                raise PortNotFoundError(self.port, f"the {self.protocol} SDK could not open it at {self.baud} baud")
            self._port, self._lock_fd = port, lock_fd
            self._ph = self._packet_handler()

    def connect(self, check_motors: bool = True) -> None:
        """Open the port and check that every motor answers with its expected model number."""
        self.open()
        if not check_motors:
            return
        try:
            self.check_motors()
        except Exception:
            self.close()
            raise

    def check_motors(self) -> None:
        found: dict[str, int | None] = {}
        for m in self.motors.values():
            found[m.name] = self.ping(m.id)
        if all(v is None for v in found.values()):
            found_baud = self._scan_baud()
            other = None
            if found_baud is None:  # nothing at any baud: an arm of the other protocol (a Koch port given to so101)?
                with self.lock:
                    self._port.closePort()  # the probe opens the port itself
                    try:
                        other = other_protocol_on(self.port, self.protocol, [m.id for m in self.motors.values()],
                                                  [self.baud, DEFAULT_BAUD])
                    finally:
                        self._port.setBaudRate(self.baud)  # reopens it
            raise BaudRateError(self.port, self.baud, found_baud, other)
        for m in self.motors.values():
            model = found[m.name]
            if model is None:
                self._on_fault([m.id])
                raise MotorNotRespondingError(m.name, m.id, self.port, self.retries + 1, "ping")
            if model != m.model.model_number:
                raise MotorModelMismatchError(m.name, m.id, self.port, f"{m.model.name} ({m.model.model_number})",
                                              model)

    def _scan_baud(self) -> int | None:
        """The first other supported baud at which any motor answers (the port is left at `baud`)."""
        models = {m.model.name: m.model for m in self.motors.values()}
        candidates = sorted({b for model in models.values() for b in model.bauds.values()} - {self.baud},
                            reverse=True)
        found = None
        with self.lock:
            for b in candidates:
                if not self._port.setBaudRate(b):
                    continue
                if any(self._ping_once(m.id) is not None for m in list(self.motors.values())[:2]):
                    found = b
                    break
            self._port.setBaudRate(self.baud)
        return found

    def close(self, disable_torque: bool = False) -> None:
        with self.lock:
            if self._port is None:
                return
            if disable_torque:
                try:
                    self.disable_torque()
                except Exception as exc:  # the port may be gone; closing must still happen
                    log.warning("could not disable torque on %s while closing: %s", self.port, exc)
            try:
                self._port.closePort()
            except Exception:
                pass
            self._port = None
            self._release_lock()

    def _release_lock(self) -> None:
        unlock_port(self._lock_fd)
        self._lock_fd = None

    # ----- transactions -------------------------------------------------------------------------
    def _prepare(self) -> None:
        self._port.is_using = False
        try:
            self._port.ser.reset_input_buffer()
        except Exception:
            pass

    def _drain(self) -> None:
        time.sleep(self.drain_s)
        self._prepare()

    def _settle(self) -> None:
        """Drop what arrives until the line has been quiet for `settle_s` (bounded: 5 x `settle_s`)."""
        start = quiet_since = time.monotonic()
        while (now := time.monotonic()) - start < 5 * self.settle_s and now - quiet_since < self.settle_s:
            time.sleep(0.02)
            try:
                waiting = self._port.ser.in_waiting
            except Exception:
                return
            if waiting:
                self._prepare()
                quiet_since = time.monotonic()
        self._prepare()

    def _try(self, fn: Callable[[], Any], tries: int | None = None) -> Any:
        """Run fn (which raises _Failure) up to 1 + retries times; re-raise the last failure, or the last one in
        which the motor answered at all (a garbled reply says it is there: one late reply on a busy machine
        must not turn a noisy line into "not responding")."""
        self._require()
        n = self.retries + 1 if tries is None else tries
        last: _Failure | None = None
        answered: _Failure | None = None
        for _ in range(n):
            self.stats["transactions"] += 1
            self._prepare()
            try:
                return fn()
            except _Failure as f:
                last = f
                if f.result != self.RX_TIMEOUT:
                    answered = f
                self.stats["failed_tries"] += 1
                if f.error:  # a well-formed status error: retrying will not help
                    break
                self._drain()
            except _PORT_GONE as exc:  # the port itself is gone: retrying won't help
                raise PortDisconnectedError(self.port, str(exc)) from exc
            except (IndexError, TypeError) as exc:  # the SDK choking on a malformed packet
                last = answered = _Failure(-7, 0)
                self.stats["failed_tries"] += 1
                log.debug("SDK error on %s: %r", self.port, exc)
                self._drain()
        assert last is not None
        raise answered or last

    def _raise_for(self, f: _Failure, what: str, motor_ids: list[int], tries: int) -> None:
        if f.error:
            name = self._name_of(motor_ids[0])
            raise MotorHardwareError(name, motor_ids[0], self.port, self._status_error(f.error) or str(f.error))
        if len(motor_ids) == 1:
            name = self._name_of(motor_ids[0])
            if f.result == self.RX_TIMEOUT:
                self._on_fault(motor_ids)
                raise MotorNotRespondingError(name, motor_ids[0], self.port, tries, what)
            raise CommunicationError(what, self.port, tries, self._result_text(f.result), motor=name)
        # a group transaction failed: find out who by asking each motor, with the bus's usual retries (one late
        # reply from a healthy motor must not get it blamed). A motor that fails is asked once more after the line
        # has settled: a servo answering far past the timeout sends its answers to the failed group reads while
        # the others are asked, and they buried a healthy motor's answer, which got the blame.
        for mid in motor_ids:
            try:
                self._try(lambda mid=mid: self._ping_raw(mid))
                continue
            except _Failure:
                self._settle()
            try:
                self._try(lambda mid=mid: self._ping_raw(mid))
            except _Failure as pf:
                if pf.result == self.RX_TIMEOUT:
                    self._on_fault([mid])
                    raise MotorNotRespondingError(self._name_of(mid), mid, self.port, tries, what) from None
                raise CommunicationError(what, self.port, tries, self._result_text(pf.result),
                                         motor=self._name_of(mid)) from None
        raise CommunicationError(what, self.port, tries, self._result_text(f.result))

    def _on_fault(self, bad_ids: list[int]) -> None:
        """Safety: a motor stopped answering, so take torque off all the others (best effort)."""
        if not self.torque_off_on_fault or not self.is_connected:
            return
        others = [m for m in self.motors.values() if m.id not in bad_ids]
        if others:
            try:
                self._sync_write_raw(self.register("Torque_Enable", others), {m.id: 0 for m in others})
            except Exception as exc:
                log.warning("could not sync-write torque off after a fault on %s: %s", self.port, exc)
            for m in others:  # confirm one by one (each reply also proves the sync write was handled)
                try:
                    self._try(lambda m=m: self._write_raw(m.id, m.model.register("Torque_Enable"), 0), tries=1)
                except (_Failure, PortDisconnectedError):
                    log.warning("motor %r did not confirm torque off on %s", m.name, self.port)
            said = frozenset(bad_ids) <= self._faulted  # the same fault met again by a retry or a later caller
            (log.debug if said else log.warning)("torque disabled on %s after a fault on id(s) %s",
                                                 [m.name for m in others], bad_ids)
            self._faulted |= frozenset(bad_ids)

    # raw SDK calls: raise _Failure on anything but success
    def _ping_raw(self, motor_id: int) -> int:
        model, result, error = self._ph.ping(self._port, motor_id)
        if result != 0:
            raise _Failure(result)
        return int(model)

    def _ping_once(self, motor_id: int) -> int | None:
        try:
            return self._try(lambda: self._ping_raw(motor_id), tries=1)
        except _Failure:
            return None

    def _read_raw(self, motor_id: int, reg: Register) -> int:
        data, result, error = self._ph.readTxRx(self._port, motor_id, reg.address, reg.size)
        if result != 0:
            raise _Failure(result)
        if self._status_error(error):
            raise _Failure(0, error)
        if len(data) != reg.size:
            raise _Failure(-7)
        return reg.decode(int.from_bytes(bytes(data), "little"))

    def _write_raw(self, motor_id: int, reg: Register, value: int) -> None:
        data = list(reg.encode(value).to_bytes(reg.size, "little"))
        result, error = self._ph.writeTxRx(self._port, motor_id, reg.address, reg.size, data)
        if result != 0:
            raise _Failure(result)
        if self._status_error(error):
            raise _Failure(0, error)

    def _sync_read_raw(self, reg: Register, ids: list[int]) -> dict[int, int]:
        group = self.sdk.GroupSyncRead(self._port, self._ph, reg.address, reg.size)
        for mid in ids:
            group.addParam(mid)
        result = group.txRxPacket()
        if result != 0:
            raise _Failure(result)
        out = {}
        for mid in ids:
            raw = bytes(group.data_dict.get(mid) or b"")
            if len(raw) < reg.size:
                raise _Failure(-7)
            out[mid] = reg.decode(int.from_bytes(raw[: reg.size], "little"))
        return out

    def _sync_write_raw(self, reg: Register, values: Mapping[int, int]) -> None:
        group = self.sdk.GroupSyncWrite(self._port, self._ph, reg.address, reg.size)
        for mid, value in values.items():
            group.addParam(mid, list(reg.encode(value).to_bytes(reg.size, "little")))
        self._prepare()
        try:
            result = group.txPacket()
        except _PORT_GONE as exc:
            raise PortDisconnectedError(self.port, str(exc)) from exc
        if result != 0:
            raise _Failure(result)

    # ----- public API ---------------------------------------------------------------------------
    def ping(self, motor_id: int) -> int | None:
        """Model number of the motor at `motor_id`, or None if it does not answer (with retries)."""
        with self.lock:
            try:
                return self._try(lambda: self._ping_raw(motor_id))
            except _Failure:
                return None

    def read(self, register: str, motor: str) -> int:
        """One register of one motor (signed value)."""
        m = self.motor(motor)
        reg = m.model.register(register)
        with self.lock:
            try:
                return self._try(lambda: self._read_raw(m.id, reg))
            except _Failure as f:
                self._raise_for(f, f"read {register}", [m.id], self.retries + 1)
        raise AssertionError("unreachable")

    def write(self, register: str, motor: str, value: int) -> None:
        """Write one register of one motor and wait for its status reply."""
        m = self.motor(motor)
        reg = m.model.register(register)
        with self.lock:
            try:
                self._try(lambda: self._write_raw(m.id, reg, value))
            except _Failure as f:
                self._raise_for(f, f"write {register}", [m.id], self.retries + 1)

    def sync_read(self, register: str, motors: Iterable[str] | None = None) -> dict[str, int]:
        """One register of several motors in one round trip: {motor name: value}."""
        ms = [self.motor(n) for n in (motors if motors is not None else self.motors)]
        reg = self.register(register, ms)
        ids = [m.id for m in ms]
        with self.lock:
            try:
                values = self._try(lambda: self._sync_read_raw(reg, ids))
            except _Failure as f:
                self._raise_for(f, f"sync read {register}", ids, self.retries + 1)
        return {m.name: values[m.id] for m in ms}

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        """One register of several motors in one packet (no reply, so no per-motor check)."""
        ms = [self.motor(n) for n in values]
        reg = self.register(register, ms)
        with self.lock:
            self._require()
            try:
                self._sync_write_raw(reg, {m.id: int(values[m.name]) for m in ms})
            except _Failure as f:
                raise CommunicationError(f"sync write {register}", self.port, 1, self._result_text(f.result)) \
                    from None

    def enable_torque(self, motors: Iterable[str] | None = None) -> None:
        names = list(motors if motors is not None else self.motors)
        self._faulted = frozenset()  # torque on again: a new fault is news
        for name in names:
            self.write("Torque_Enable", name, 1)

    def disable_torque(self, motors: Iterable[str] | None = None) -> None:
        """Torque off: sync-written first (reaches every motor even if one is dead), then written to each motor
        and confirmed, every motor tried even when the sync write or an earlier one failed (a sync write that
        did not go out used to skip every confirmation); the first failure is raised after all were tried."""
        names = list(motors if motors is not None else self.motors)
        failures: list[RealArmError] = []
        try:
            self._attempt(lambda: self.sync_write("Torque_Enable", {n: 0 for n in names}), failures)
            for name in names:
                self._attempt(lambda name=name: self.write("Torque_Enable", name, 0), failures)
        except PortDisconnectedError:
            # The port is gone: drop it, so a second attempt (an env's close after its error handler's) finds the
            # bus closed instead of reporting the same failure again.
            self._forget_port()
            raise
        if failures:
            raise failures[0]

    @staticmethod
    def _attempt(send: Callable[[], None], failures: list[RealArmError]) -> None:
        """Run one transaction of a sequence that must go on past a failed one (a gone port still stops it)."""
        try:
            send()
        except PortDisconnectedError:
            raise
        except RealArmError as exc:
            failures.append(exc)

    def _forget_port(self) -> None:
        with self.lock:
            if self._port is not None:
                try:
                    self._port.closePort()
                except Exception:
                    pass
                self._port = None
                self._release_lock()

    def torque_enabled(self, motors: Iterable[str] | None = None) -> dict[str, bool]:
        return {n: bool(v) for n, v in self.sync_read("Torque_Enable", motors).items()}

    def write_eeprom(self, register: str, motor: str, value: int) -> None:
        """Write an EEPROM register (torque is turned off first, as EEPROM is locked while it is on)."""
        self.write("Torque_Enable", motor, 0)
        self.write(register, motor, value)

    def set_operating_mode(self, mode: str | int, motors: Iterable[str] | None = None) -> None:
        """Operating mode by name (`position`, `extended_position`, `current_position`, ...) or number."""
        for name in list(motors if motors is not None else self.motors):
            m = self.motor(name)
            value = m.model.mode_names.get(mode, -1) if isinstance(mode, str) else int(mode)
            if value not in m.model.modes:
                raise ValueError(f"motor {name!r} ({m.model.name}) has no operating mode {mode!r}")
            self.write_eeprom("Operating_Mode", name, value)

    def set_baud(self, baud: int) -> None:
        """Change the port's baud rate (not the motors')."""
        with self.lock:
            self._require()
            if not self._port.setBaudRate(baud):
                raise ValueError(f"baud rate {baud} not supported by the {self.protocol} SDK")
            self.baud = baud

    # ----- calibration --------------------------------------------------------------------------
    def positions(self, motors: Iterable[str] | None = None) -> dict[str, int]:
        return self.sync_read("Present_Position", motors)

    def read_calibration(self) -> Calibration:
        """The calibration stored in the motors' registers (Feetech keeps drive_mode only in the file)."""
        offsets = self.sync_read("Homing_Offset")
        mins = self.sync_read("Min_Position_Limit")
        maxs = self.sync_read("Max_Position_Limit")
        modes = self.sync_read("Drive_Mode") if not self.software_drive_mode else {n: 0 for n in self.motors}
        return Calibration({
            n: MotorCalibration(self.motors[n].id, modes[n] & 1, offsets[n], mins[n], maxs[n]) for n in self.motors
        })

    def write_calibration(self, calibration: Calibration) -> None:
        """Store homing offsets and position limits (and Dynamixel drive modes) in the motors."""
        self.check_calibration_ids(calibration)
        for name, c in calibration.motors.items():
            self._write_calibration_one(name, c)

    def _write_calibration_one(self, name: str, c: MotorCalibration) -> None:
        self.write_eeprom("Homing_Offset", name, c.homing_offset)
        self.write("Min_Position_Limit", name, c.range_min)
        self.write("Max_Position_Limit", name, c.range_max)

    def check_calibration_ids(self, calibration: Calibration) -> None:
        mine = {n: m.id for n, m in self.motors.items()}
        theirs = {n: c.id for n, c in calibration.motors.items()}
        if mine != theirs:
            raise CalibrationError(
                f"calibration does not match the motors on {self.port}: file has {theirs}, bus has {mine}")

    def calibration_matches(self, calibration: Calibration) -> bool:
        """Whether the motors' registers already hold `calibration` (drive_mode compared where stored)."""
        stored = self.read_calibration()
        for name, c in calibration.motors.items():
            s = stored[name]
            if (s.homing_offset, s.range_min, s.range_max) != (c.homing_offset, c.range_min, c.range_max):
                return False
            if not self.software_drive_mode and s.drive_mode != c.drive_mode:
                return False
        return True
