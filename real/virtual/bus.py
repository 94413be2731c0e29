"""The virtual bus: decodes instruction packets, lets the addressed servos answer, applies faults.

`handle(bytes) -> [Reply]` is transport-free; `PtyServer` puts it on a pseudo-terminal.
"""

from __future__ import annotations

from dataclasses import dataclass

from twinarm.real.virtual import dynamixel_wire as dxw
from twinarm.real.virtual import feetech_wire as few
from twinarm.real.virtual.arm import VirtualArm
from twinarm.real.virtual.servo import Faults, VirtualServo

__all__ = ["Faults", "Reply", "VirtualBus"]


@dataclass(frozen=True)
class Reply:
    """Bytes one servo puts on the wire, and how long after the request it starts (s) beyond wire time."""

    data: bytes
    delay_s: float = 0.0


class VirtualBus:
    """All servos of a `VirtualArm` on one bus, speaking the arm's protocol (spec.motor_bus)."""

    def __init__(self, arm: VirtualArm, joints: list[str] | None = None, drives_lockstep: bool = True) -> None:
        """`joints`: serve only these joints' servos (one bus of a multi-bus arm); `drives_lockstep`: whether a
        goal sync-write on this bus advances a lockstep arm (give it to exactly one bus of the arm)."""
        self.arm = arm
        names = list(arm.spec.joint_names)
        self._servos = [arm.servos[names.index(n)] for n in joints] if joints is not None else None
        self.drives_lockstep = drives_lockstep
        self.protocol = arm.spec.motor_bus
        self._wire = few if self.protocol == "feetech" else dxw
        self._parser = self._wire.Parser()
        self.requests = 0
        self.bad_requests = 0

    @property
    def servos(self) -> list[VirtualServo]:
        return self._servos if self._servos is not None else self.arm.servos

    def servo(self, motor: str | int) -> VirtualServo:
        """A servo by joint name or (current) id."""
        for s in self.servos:
            if s.motor_id == motor or self.arm.spec.joints[self.arm._joint_of[id(s)]].name == motor:
                return s
        raise KeyError(f"no virtual servo {motor!r}")

    def faults(self, motor: str | int) -> Faults:
        return self.servo(motor).faults

    def clear_faults(self) -> None:
        for s in self.servos:
            s.faults = Faults()

    def reset_parser(self) -> None:
        self._parser.clear()

    # ----- request handling -----------------------------------------------------------------
    def handle(self, data: bytes, client_baud: int | None = None) -> list[Reply]:
        """Feed request bytes; return the replies the servos put on the wire, in order."""
        replies: list[Reply] = []
        with self.arm.lock:
            for pkt in self._parser.feed(data):
                self.requests += 1
                listening = [s for s in self.servos if not s.faults.silent
                             and (client_baud is None or s.baud == client_baud)]
                if self.protocol == "feetech":
                    out, goal_sync = self._feetech(pkt, listening)
                else:
                    out, goal_sync = self._dynamixel(pkt, listening)
                self.arm.commit(stepped_by_goal_write=goal_sync and self.drives_lockstep)
                for servo, raw in out:
                    replies.append(self._apply_faults(servo, raw))
                for s in self.servos:
                    s.after_reply()
        return replies

    def _apply_faults(self, servo: VirtualServo, raw: bytes) -> Reply:
        if servo.faults.take_corrupt():
            raw = raw[:-1] + bytes([raw[-1] ^ 0x5A])
        return Reply(raw, servo.return_delay_s() + servo.faults.take_late())

    def _targets(self, ident: int, listening: list[VirtualServo]) -> list[VirtualServo]:
        if ident == few.BROADCAST_ID:
            return sorted(listening, key=lambda s: s.motor_id)
        return [s for s in listening if s.motor_id == ident]

    def _read(self, servo: VirtualServo, address: int, length: int) -> tuple[int, bytes]:
        self.arm._refresh(servo)
        return servo.read(address, length)

    # ----- Feetech -----------------------------------------------------------------------------
    def _feetech(self, pkt: few.Packet, listening: list[VirtualServo]) -> tuple[list, bool]:
        out: list[tuple[VirtualServo, bytes]] = []
        if not pkt.valid:
            self.bad_requests += 1
            return out, False  # a servo ignores a packet with a bad checksum
        p, inst, bcast = pkt.params, pkt.code, pkt.servo_id == few.BROADCAST_ID
        goal_sync = False
        if inst == few.PING:
            out = [(s, few.status(s.motor_id, 0)) for s in self._targets(pkt.servo_id, listening)]
        elif inst == few.READ and len(p) >= 2 and not bcast:
            for s in self._targets(pkt.servo_id, listening):
                err, data = self._read(s, p[0], p[1])
                out.append((s, few.status(s.motor_id, err, data)))
        elif inst in (few.WRITE, few.REG_WRITE) and len(p) >= 2:
            for s in self._targets(pkt.servo_id, listening):
                ident = s.motor_id  # a new ID applies after the status reply, which carries the old one
                if inst == few.WRITE:
                    err = s.write(p[0], p[1:])
                else:
                    s.pending, err = (p[0], bytes(p[1:])), 0
                if not bcast and s.status_level() >= 1:
                    out.append((s, few.status(ident, err)))
        elif inst == few.ACTION:
            for s in self._targets(pkt.servo_id, listening):
                if s.pending is not None:
                    s.write(*s.pending)
                    s.pending = None
                if not bcast and s.status_level() >= 1:
                    out.append((s, few.status(s.motor_id, 0)))
        elif inst == few.SYNC_READ and len(p) >= 2:
            address, length = p[0], p[1]
            for ident in p[2:]:
                for s in self._targets(ident, listening):
                    err, data = self._read(s, address, length)
                    out.append((s, few.status(s.motor_id, err, data)))
        elif inst == few.SYNC_WRITE and len(p) >= 2:
            address, length = p[0], p[1]
            for k in range(2, len(p) - length, length + 1):
                for s in self._targets(p[k], listening):
                    s.write(address, p[k + 1: k + 1 + length])
            goal_reg = self.servos[0].model.register("Goal_Position")
            goal_sync = address <= goal_reg.address < address + length
        return out, goal_sync

    # ----- Dynamixel Protocol 2.0 ----------------------------------------------------------------
    def _dynamixel(self, pkt: dxw.Packet, listening: list[VirtualServo]) -> tuple[list, bool]:
        out: list[tuple[VirtualServo, bytes]] = []
        p, inst, bcast = pkt.params, pkt.code, pkt.servo_id == dxw.BROADCAST_ID
        targets = self._targets(pkt.servo_id, listening)
        if not pkt.valid:
            self.bad_requests += 1
            if not bcast:
                out = [(s, dxw.status(s.motor_id, dxw.ERR_CRC)) for s in targets]
            return out, False

        def u16(i: int) -> int:
            return p[i] | (p[i + 1] << 8)

        def answer(s: VirtualServo, err: int, data: bytes = b"", is_read: bool = False,
                   ident: int | None = None) -> None:
            level = s.status_level()
            if inst == dxw.PING or (is_read and level >= 1) or level >= 2:
                out.append((s, dxw.status(s.motor_id if ident is None else ident, err, data)))

        goal_sync = False
        if inst == dxw.PING:
            for s in targets:
                answer(s, 0, s.get("Model_Number").to_bytes(2, "little") + bytes([s.get("Firmware_Version")]))
        elif inst == dxw.READ and len(p) >= 4 and not bcast:
            for s in targets:
                err, data = self._read(s, u16(0), u16(2))
                answer(s, err, data if err == 0 else b"", is_read=True)
        elif inst in (dxw.WRITE, dxw.REG_WRITE) and len(p) >= 3:
            for s in targets:
                ident = s.motor_id  # a new ID applies after the status reply, which carries the old one
                if inst == dxw.WRITE:
                    err = s.write(u16(0), p[2:])
                else:
                    s.pending, err = (u16(0), bytes(p[2:])), 0
                if not bcast:
                    answer(s, err, ident=ident)
        elif inst == dxw.ACTION:
            for s in targets:
                if s.pending is not None:
                    s.write(*s.pending)
                    s.pending = None
                if not bcast:
                    answer(s, 0)
        elif inst == dxw.REBOOT:
            for s in targets:
                s.set("Torque_Enable", 0)
                self.arm._on_write(s, {"Torque_Enable"})
                if not bcast:
                    answer(s, 0)
        elif inst == dxw.FACTORY_RESET and not bcast:
            option = p[0] if p else 0xFF
            for s in targets:
                s.factory_reset(keep_id=option in (0x01, 0x02), keep_baud=option == 0x02)
                answer(s, 0)
        elif inst == dxw.SYNC_READ and len(p) >= 4:
            for ident in p[4:]:
                for s in self._targets(ident, listening):
                    err, data = self._read(s, u16(0), u16(2))
                    answer(s, err, data if err == 0 else b"", is_read=True)
        elif inst == dxw.SYNC_WRITE and len(p) >= 4:
            address, length = u16(0), u16(2)
            for k in range(4, len(p) - length, length + 1):
                for s in self._targets(p[k], listening):
                    s.write(address, p[k + 1: k + 1 + length])
            goal_reg = self.servos[0].model.register("Goal_Position")
            goal_sync = address <= goal_reg.address < address + length
        elif inst == dxw.BULK_READ:
            for k in range(0, len(p) - 4, 5):
                for s in self._targets(p[k], listening):
                    err, data = self._read(s, u16(k + 1), u16(k + 3))
                    answer(s, err, data if err == 0 else b"", is_read=True)
        elif inst == dxw.BULK_WRITE:
            k = 0
            while k + 5 <= len(p):
                length = u16(k + 3)
                for s in self._targets(p[k], listening):
                    s.write(u16(k + 1), p[k + 5: k + 5 + length])
                k += 5 + length
        elif not bcast:
            for s in targets:
                answer(s, dxw.ERR_INSTRUCTION)
        return out, goal_sync
