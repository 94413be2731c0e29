"""The virtual bus without a transport: instruction handling, register semantics, physics coupling."""

from __future__ import annotations

import numpy as np
from real_helpers import KOCH_LIKE

from twinarm.arms import SO101
from twinarm.real.virtual import VirtualArm, VirtualBus
from twinarm.real.virtual import dynamixel_wire as dxw
from twinarm.real.virtual import feetech_wire as few


def _one(replies: list) -> bytes:
    assert len(replies) == 1
    return replies[0].data


def test_feetech_ping_read_write_and_sync() -> None:
    bus = VirtualBus(VirtualArm(SO101))
    assert _one(bus.handle(few.instruction(3, few.PING))) == few.status(3, 0)
    model = few.Parser().feed(_one(bus.handle(few.instruction(3, few.READ, bytes([3, 2])))))[0]
    assert int.from_bytes(model.params, "little") == 777
    # broadcast ping: every servo answers, in id order
    assert [few.Parser().feed(r.data)[0].servo_id for r in bus.handle(few.instruction(0xFE, few.PING))] == [1, 2, 3, 4, 5, 6]
    assert bus.handle(few.instruction(9, few.PING)) == []  # nobody has id 9
    # sync read of Present_Position: one status packet per listed id
    replies = bus.handle(few.instruction(0xFE, few.SYNC_READ, bytes([56, 2, 1, 2, 6])))
    assert [few.Parser().feed(r.data)[0].servo_id for r in replies] == [1, 2, 6]
    # sync write has no reply
    payload = bytes([42, 2]) + b"".join(bytes([i]) + (2048).to_bytes(2, "little") for i in range(1, 7))
    assert bus.handle(few.instruction(0xFE, few.SYNC_WRITE, payload)) == []
    assert bus.servo(1).get("Goal_Position") == 2048


def test_feetech_sign_magnitude_and_homing_offset() -> None:
    arm = VirtualArm(SO101)
    bus = VirtualBus(arm)
    s = bus.servo("shoulder_pan")
    before = s.get("Present_Position")
    raw_offset = (1 << 11) | 100  # -100, sign-magnitude with sign bit 11
    bus.handle(few.instruction(1, few.WRITE, bytes([31]) + raw_offset.to_bytes(2, "little")))
    assert s.get("Homing_Offset") == -100
    bus.handle(few.instruction(1, few.READ, bytes([56, 2])))
    assert s.get("Present_Position") == before + 100  # Present = Actual - Offset


def test_goal_moves_joint_only_with_torque_on() -> None:
    arm = VirtualArm(SO101)
    bus = VirtualBus(arm)
    s = bus.servo(1)
    goal = (s.get("Present_Position") + 300).to_bytes(2, "little")
    bus.handle(few.instruction(1, few.WRITE, bytes([42]) + goal))
    arm.step()
    assert arm.joint_positions()[0] == 0.0  # torque off: the goal is ignored
    bus.handle(few.instruction(1, few.WRITE, bytes([40, 1])))  # torque on holds the present position
    assert s.get("Goal_Position") == s.get("Present_Position")
    bus.handle(few.instruction(1, few.WRITE, bytes([42]) + goal))
    for _ in range(20):
        arm.step()
    assert np.isclose(arm.joint_positions()[0], 300 * 2 * np.pi / 4096)


def test_velocity_register_is_sign_magnitude_when_moving_backwards() -> None:
    arm = VirtualArm(SO101)
    bus = VirtualBus(arm)
    s = bus.servo(2)
    bus.handle(few.instruction(2, few.WRITE, bytes([40, 1])))
    goal = (s.get("Present_Position") - 500).to_bytes(2, "little")
    bus.handle(few.instruction(2, few.WRITE, bytes([42]) + goal))
    arm.step()
    raw = few.Parser().feed(_one(bus.handle(few.instruction(2, few.READ, bytes([58, 2])))))[0].params
    value = int.from_bytes(raw, "little")
    assert value & 0x8000 and (value & 0x7FFF) > 0


def test_lockstep_steps_once_per_goal_sync_write() -> None:
    arm = VirtualArm(SO101, step_mode="lockstep")
    bus = VirtualBus(arm)
    payload = bytes([42, 2]) + b"".join(bytes([i]) + (2048).to_bytes(2, "little") for i in range(1, 7))
    bus.handle(few.instruction(0xFE, few.SYNC_WRITE, payload))
    bus.handle(few.instruction(0xFE, few.SYNC_WRITE, bytes([40, 1]) + b"".join(bytes([i, 1]) for i in range(1, 7))))
    assert arm.steps == 1


def test_dynamixel_ping_eeprom_lock_and_errors() -> None:
    arm = VirtualArm(KOCH_LIKE)
    bus = VirtualBus(arm)
    status = dxw.Parser().feed(_one(bus.handle(dxw.instruction(1, dxw.PING))))[0]
    assert status.code == dxw.STATUS and status.params[1:3] == (1060).to_bytes(2, "little")
    # EEPROM (Operating_Mode, address 11) writable with torque off ...
    ok = dxw.Parser().feed(_one(bus.handle(dxw.instruction(3, dxw.WRITE, bytes([11, 0, 4])))))[0]
    assert ok.params[0] == 0 and bus.servo(3).get("Operating_Mode") == 4
    # ... locked while torque is on: access error, value unchanged
    bus.handle(dxw.instruction(3, dxw.WRITE, bytes([64, 0, 1])))
    locked = dxw.Parser().feed(_one(bus.handle(dxw.instruction(3, dxw.WRITE, bytes([11, 0, 3])))))[0]
    assert locked.params[0] == dxw.ERR_ACCESS and bus.servo(3).get("Operating_Mode") == 4
    # unknown instruction, and a request with a bad CRC, both answered with the matching error
    assert dxw.Parser().feed(_one(bus.handle(dxw.instruction(3, 0x55 + 0x20))))[0].params[0] == dxw.ERR_INSTRUCTION
    bad = bytearray(dxw.instruction(3, dxw.PING))
    bad[-1] ^= 0xFF
    assert dxw.Parser().feed(_one(bus.handle(bytes(bad))))[0].params[0] == dxw.ERR_CRC
    # XL430 has no operating mode 5 (current-based position)
    err = dxw.Parser().feed(_one(bus.handle(dxw.instruction(1, dxw.WRITE, bytes([11, 0, 5])))))[0]
    assert err.params[0] == dxw.ERR_DATA_RANGE


def test_dynamixel_twos_complement_offset_and_drive_mode() -> None:
    arm = VirtualArm(KOCH_LIKE)
    bus = VirtualBus(arm)
    s = bus.servo(2)
    actual = s.get("Present_Position")
    bus.handle(dxw.instruction(2, dxw.WRITE, bytes([20, 0]) + (-1000).to_bytes(4, "little", signed=True)))
    bus.handle(dxw.instruction(2, dxw.READ, bytes([132, 0, 4, 0])))
    assert s.get("Homing_Offset") == -1000 and s.get("Present_Position") == actual - 1000  # Present = Actual + Offset
    bus.handle(dxw.instruction(2, dxw.WRITE, bytes([10, 0, 1])))  # reverse direction
    bus.handle(dxw.instruction(2, dxw.READ, bytes([132, 0, 4, 0])))
    assert s.get("Present_Position") == -actual - 1000


def test_id_and_baud_change_take_effect() -> None:
    bus = VirtualBus(VirtualArm(SO101))
    bus.handle(few.instruction(6, few.WRITE, bytes([5, 16])))
    assert bus.handle(few.instruction(6, few.PING)) == []
    assert len(bus.handle(few.instruction(16, few.PING))) == 1
    bus.handle(few.instruction(16, few.WRITE, bytes([6, 4])))  # baud index 4 = 115200, after the reply
    assert bus.handle(few.instruction(16, few.PING), client_baud=1_000_000) == []
    assert len(bus.handle(few.instruction(16, few.PING), client_baud=115_200)) == 1
