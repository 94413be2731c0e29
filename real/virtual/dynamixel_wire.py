"""Dynamixel Protocol 2.0 framing: `FF FF FD 00 ID LEN_L LEN_H INST P.. CRC_L CRC_H`, CRC-16 (poly 0x8005,
init 0, not reflected) over the stuffed packet, byte stuffing of `FF FF FD` -> `FF FF FD FD`."""

from __future__ import annotations

from dataclasses import dataclass

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
STATUS = 0x55

PING, READ, WRITE, REG_WRITE, ACTION, FACTORY_RESET, REBOOT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08
CLEAR, SYNC_READ, SYNC_WRITE, FAST_SYNC_READ, BULK_READ, BULK_WRITE = 0x10, 0x82, 0x83, 0x8A, 0x92, 0x93

# Status error numbers (bit 7 = hardware alert)
ERR_RESULT_FAIL, ERR_INSTRUCTION, ERR_CRC, ERR_DATA_RANGE, ERR_DATA_LENGTH, ERR_DATA_LIMIT, ERR_ACCESS = (
    1, 2, 3, 4, 5, 6, 7
)
ERR_HARDWARE_ALERT = 0x80


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc_table()


def crc16(data: bytes | bytearray, crc: int = 0) -> int:
    """CRC-16/BUYPASS (poly 0x8005, init 0, no reflection) as used by Protocol 2.0."""
    for b in data:
        crc = ((crc << 8) ^ _TABLE[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff(payload: bytes) -> bytes:
    """Insert an extra 0xFD after every `FF FF FD` in the payload (instruction/status byte onwards)."""
    out = bytearray()
    for b in payload:
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(payload: bytes) -> bytes:
    """Remove the stuffing byte from every `FF FF FD FD`."""
    out = bytearray()
    i = 0
    while i < len(payload):
        b = payload[i]
        out.append(b)
        if b == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF and i + 1 < len(payload) \
                and payload[i + 1] == 0xFD:
            i += 1
        i += 1
    return bytes(out)


def _frame(servo_id: int, payload: bytes) -> bytes:
    body = stuff(payload)
    n = len(body) + 2
    pkt = HEADER + bytes([servo_id, n & 0xFF, n >> 8]) + body
    crc = crc16(pkt)
    return pkt + bytes([crc & 0xFF, crc >> 8])


def instruction(servo_id: int, inst: int, params: bytes = b"") -> bytes:
    """An instruction packet (what a client sends)."""
    return _frame(servo_id, bytes([inst]) + bytes(params))


def status(servo_id: int, error: int, params: bytes = b"") -> bytes:
    """A status packet (what a servo answers)."""
    return _frame(servo_id, bytes([STATUS, error]) + bytes(params))


@dataclass(frozen=True)
class Packet:
    """A decoded packet: `code` is the instruction (or 0x55 for status), `params` unstuffed."""

    servo_id: int
    code: int
    params: bytes
    valid: bool = True


class Parser:
    """Incremental decoder: feed bytes, get whole packets; CRC failures come back with valid=False."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        out: list[Packet] = []
        while True:
            start = self._buf.find(HEADER[:3])
            if start < 0:
                del self._buf[: max(0, len(self._buf) - 2)]
                return out
            del self._buf[:start]
            if len(self._buf) < 7:
                return out
            if self._buf[3] != 0x00:
                del self._buf[:3]
                continue
            length = self._buf[5] | (self._buf[6] << 8)
            if length < 3:
                del self._buf[:3]
                continue
            total = 7 + length
            if len(self._buf) < total:
                return out
            pkt = bytes(self._buf[:total])
            del self._buf[:total]
            valid = crc16(pkt[:-2]) == (pkt[-2] | (pkt[-1] << 8))
            payload = unstuff(pkt[7:-2])
            out.append(Packet(pkt[4], payload[0], payload[1:], valid=valid))

    def clear(self) -> None:
        self._buf.clear()
