"""One emulated servo: its register file (control table bytes), write rules and side effects.

Feetech registers are little-endian with sign-magnitude fields; Dynamixel X registers are
little-endian two's complement, EEPROM (< 64) is locked while torque is on, and read-only fields
answer with an access error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from twinarm.real.control_tables import MotorModel, Register
from twinarm.real.virtual import dynamixel_wire as dxw


@dataclass
class Faults:
    """Fault injection for one servo; counters count down per reply (-1 = every reply)."""

    silent: bool = False
    corrupt_replies: int = 0
    late_reply_s: float = 0.0
    late_replies: int = 0

    def take_corrupt(self) -> bool:
        if self.corrupt_replies == 0:
            return False
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
        return True

    def take_late(self) -> float:
        if self.late_replies == 0 or self.late_reply_s <= 0:
            return 0.0
        if self.late_replies > 0:
            self.late_replies -= 1
        return self.late_reply_s


#: Dynamixel X addresses a client may not write (model/firmware info and every Present_* / status field).
_DXL_READ_ONLY = set(range(0, 7)) | {70, 120, 121, 122, 123} | set(range(124, 147))


@dataclass
class VirtualServo:
    """The register file of one servo; `listener` is told which registers a write changed."""

    model: MotorModel
    motor_id: int
    baud: int = 1_000_000
    faults: Faults = field(default_factory=Faults)
    listener: Callable[[VirtualServo, set[str]], None] | None = None

    def __post_init__(self) -> None:
        self.mem = bytearray(256 if self.model.bus == "feetech" else 1024)
        self.factory_reset()
        self.pending: tuple[int, bytes] | None = None  # REG_WRITE buffer
        self._pending_baud: int | None = None

    # ----- raw access -------------------------------------------------------------------------
    def factory_reset(self, keep_id: bool = True, keep_baud: bool = True) -> None:
        ident, baud = self.motor_id, self.baud
        self.mem[:] = bytes(len(self.mem))
        for name, value in self.model.defaults.items():
            if name in self.model.table:
                self.set(name, value)
        self.set("Model_Number", self.model.model_number)
        self.set("ID", ident if keep_id else 1)
        self.motor_id = self.get("ID")
        if keep_baud:
            self.set("Baud_Rate", self.model.baud_index(baud))
        self.baud = self.model.bauds[self.get("Baud_Rate")]

    def _reg(self, name: str) -> Register:
        return self.model.register(name)

    def get(self, name: str) -> int:
        """Decoded (signed) value of a register."""
        reg = self._reg(name)
        return reg.decode(int.from_bytes(self.mem[reg.address: reg.address + reg.size], "little"))

    def set(self, name: str, value: int) -> None:
        """Store a signed value, bypassing every write rule (the servo's own firmware writing)."""
        reg = self._reg(name)
        self.mem[reg.address: reg.address + reg.size] = reg.encode(value).to_bytes(reg.size, "little")

    @property
    def torque_on(self) -> bool:
        return self.get("Torque_Enable") != 0

    def return_delay_s(self) -> float:
        return self.get("Return_Delay_Time") * 2e-6

    def status_level(self) -> int:
        """Dynamixel Status_Return_Level / Feetech Response_Status_Level (0: only ping/read answered)."""
        name = "Status_Return_Level" if self.model.bus == "dynamixel" else "Response_Status_Level"
        return self.get(name)

    # ----- protocol access --------------------------------------------------------------------
    def read(self, address: int, length: int) -> tuple[int, bytes]:
        """(error, bytes) for a READ; out-of-table reads give a range error (Dynamixel) or zeros."""
        if address + length > len(self.mem):
            return (dxw.ERR_DATA_RANGE if self.model.bus == "dynamixel" else 0), bytes(length)
        return 0, bytes(self.mem[address: address + length])

    def write(self, address: int, data: bytes) -> int:
        """Apply a WRITE; returns the status error (0 = ok)."""
        end = address + len(data)
        if end > len(self.mem) or not data:
            return dxw.ERR_DATA_RANGE if self.model.bus == "dynamixel" else 0
        if self.model.bus == "dynamixel":
            err = self._dxl_check(address, data)
            if err:
                return err
        before = bytes(self.mem[address:end])
        self.mem[address:end] = data
        changed = {
            r.name for r in self.model.table.values()
            if r.address < end and address < r.address + r.size
            and (before[max(0, r.address - address): r.address + r.size - address]
                 != bytes(data[max(0, r.address - address): r.address + r.size - address])
                 or r.name in ("Goal_Position", "Torque_Enable"))
        }
        self._apply(changed)
        return 0

    def _dxl_check(self, address: int, data: bytes) -> int:
        span = set(range(address, address + len(data)))
        if span & _DXL_READ_ONLY:
            return dxw.ERR_ACCESS
        if self.torque_on and address < 64:
            return dxw.ERR_ACCESS  # EEPROM is locked while torque is on
        goal = self._reg("Goal_Position")
        if address <= goal.address and goal.address + goal.size <= address + len(data) \
                and self.get("Operating_Mode") == 3:
            raw = int.from_bytes(data[goal.address - address: goal.address - address + 4], "little")
            value = goal.decode(raw)
            if not self.get("Min_Position_Limit") <= value <= self.get("Max_Position_Limit"):
                return dxw.ERR_DATA_LIMIT
        if 11 in span and data[11 - address] not in self.model.modes:
            return dxw.ERR_DATA_RANGE
        if 8 in span and data[8 - address] not in self.model.bauds:
            return dxw.ERR_DATA_RANGE
        return 0

    def _apply(self, changed: set[str]) -> None:
        if "Goal_Position" in changed and self.model.bus == "feetech":
            lo, hi = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
            if hi > lo:
                self.set("Goal_Position", min(hi, max(lo, self.get("Goal_Position"))))
        if "ID" in changed:
            self.motor_id = self.get("ID")
        if "Baud_Rate" in changed:
            idx = self.get("Baud_Rate")
            if idx in self.model.bauds:
                self._pending_baud = self.model.bauds[idx]  # takes effect after the status reply
        if self.listener is not None and changed:
            self.listener(self, changed)

    def after_reply(self) -> None:
        """Side effects that wait until the status packet is out (a new baud rate)."""
        if self._pending_baud is not None:
            self.baud, self._pending_baud = self._pending_baud, None
