"""Feetech STS/SCS packet framing: `FF FF ID LEN INST/ERR P.. CHK`, checksum = ~(sum from ID) & 0xFF."""

from __future__ import annotations

from dataclasses import dataclass

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE

PING, READ, WRITE, REG_WRITE, ACTION, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x82, 0x83

# Status error bits
ERR_VOLTAGE, ERR_ANGLE, ERR_OVERHEAT, ERR_CURRENT, ERR_OVERLOAD = 1, 2, 4, 8, 32


def checksum(body: bytes | bytearray) -> int:
    """Checksum over ID, LEN, INST/ERR and parameters (everything after the header, before CHK)."""
    return ~sum(body) & 0xFF


def _frame(servo_id: int, code: int, params: bytes) -> bytes:
    body = bytes([servo_id, len(params) + 2, code]) + bytes(params)
    return HEADER + body + bytes([checksum(body)])


def instruction(servo_id: int, inst: int, params: bytes = b"") -> bytes:
    """An instruction packet (what a client sends)."""
    return _frame(servo_id, inst, params)


def status(servo_id: int, error: int, params: bytes = b"") -> bytes:
    """A status packet (what a servo answers)."""
    return _frame(servo_id, error, params)


@dataclass(frozen=True)
class Packet:
    """A decoded packet; `code` is the instruction (requests) or the error byte (status replies)."""

    servo_id: int
    code: int
    params: bytes
    valid: bool = True


class Parser:
    """Incremental decoder: feed bytes, get whole packets; corrupt packets come back with valid=False."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        out: list[Packet] = []
        while True:
            start = self._buf.find(HEADER)
            if start < 0:
                # keep a trailing 0xFF: it may be the first half of the next header
                del self._buf[: max(0, len(self._buf) - 1)]
                return out
            del self._buf[:start]
            # skip extra 0xFF bytes (an ID is never 0xFF)
            while len(self._buf) >= 3 and self._buf[2] == 0xFF:
                del self._buf[0]
            if len(self._buf) < 4:
                return out
            length = self._buf[3]
            if length < 2:
                del self._buf[:2]
                continue
            total = 4 + length
            if len(self._buf) < total:
                return out
            pkt = bytes(self._buf[:total])
            del self._buf[:total]
            body = pkt[2:-1]
            out.append(Packet(pkt[2], pkt[4], pkt[5:-1], valid=checksum(body) == pkt[-1]))

    def clear(self) -> None:
        self._buf.clear()
