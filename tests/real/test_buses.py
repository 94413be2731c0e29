"""FeetechBus / DynamixelBus over the pty: connect, sync read/write, torque, modes, calibration registers."""

from __future__ import annotations

import numpy as np
import pytest

from twinarm.real.buses import make_bus
from twinarm.real.calibrate import setup_motor
from twinarm.real.dynamixel_bus import DynamixelBus
from twinarm.real.errors import NotConnectedError
from twinarm.real.feetech_bus import FeetechBus
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus
from twinarm.real.virtual.servo import VirtualServo


def test_connect_read_write_torque(served: PtyServer) -> None:
    arm = served.bus.arm
    spec = arm.spec
    bus = make_bus(spec, served.port)
    bus.connect()
    try:
        names = list(spec.joint_names)
        pos = bus.positions()
        assert pos == {n: s.get("Present_Position") for n, s in zip(names, arm.servos, strict=True)}
        bus.enable_torque()
        assert all(bus.torque_enabled().values())
        bus.sync_write("Goal_Position", {n: pos[n] + 100 for n in names})
        bus.positions()  # a round trip: the (reply-less) sync write has been handled before we step
        for _ in range(10):
            arm.step()
        after = bus.positions()
        assert all(abs(after[n] - pos[n] - 100) <= 1 for n in names)
        assert bus.read("Goal_Position", names[0]) == pos[names[0]] + 100
        bus.disable_torque()
        assert not any(bus.torque_enabled().values())
    finally:
        bus.close()
    with pytest.raises(NotConnectedError):
        bus.positions()


def test_operating_modes_and_eeprom_writes(served: PtyServer) -> None:
    spec = served.bus.arm.spec
    bus = make_bus(spec, served.port)
    bus.connect()
    try:
        bus.enable_torque()
        mode = "position" if spec.motor_bus == "feetech" else "extended_position"
        bus.set_operating_mode(mode)  # EEPROM: the bus turns torque off first
        assert set(bus.sync_read("Operating_Mode").values()) == {bus.motor(spec.joint_names[0]).model.mode_names[mode]}
        with pytest.raises(ValueError):
            bus.set_operating_mode("no_such_mode")
    finally:
        bus.close()


def test_calibration_registers_roundtrip(served: PtyServer) -> None:
    arm = served.bus.arm
    bus = make_bus(arm.spec, served.port)
    bus.connect()
    try:
        cal = arm.ideal_calibration()
        assert not bus.calibration_matches(cal)
        bus.write_calibration(cal)
        assert bus.calibration_matches(cal)
        q = cal.to_si(arm.spec, bus.positions(), software_drive_mode=bus.software_drive_mode)
        np.testing.assert_allclose(q, arm.joint_positions(), atol=2 * np.pi / 4095)
    finally:
        bus.close()


@pytest.mark.parametrize(("bus_cls", "model", "factory_baud"),
                         [(FeetechBus, "sts3215", 1_000_000), (DynamixelBus, "xl430-w250", 57_600)])
def test_setup_motor_gives_id_and_baud(bus_cls, model: str, factory_baud: int) -> None:  # noqa: ANN001
    """One factory-fresh motor (id 1) on the bus gets the spec's id and 1 Mbaud."""
    from real_helpers import SPECS

    spec = SPECS["so101" if bus_cls is FeetechBus else "koch"]
    arm = VirtualArm(spec)
    fresh = VirtualServo(arm.servos[0].model, 1, baud=factory_baud, listener=arm._on_write)
    arm.servos[:] = [fresh]
    arm._joint_of = {id(fresh): 0}
    with PtyServer(VirtualBus(arm)) as server:
        old = setup_motor(bus_cls, server.port, model, target_id=4, target_baud=1_000_000)
        assert old == (1, factory_baud)
        assert fresh.motor_id == 4 and fresh.baud == 1_000_000
