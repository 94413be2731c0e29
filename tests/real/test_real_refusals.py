"""Bad input to the arm commands (calibrate, setup-motors, find-port, teleop, virtual-arm) is refused at once, in
one line naming the flag, file or port at fault and the way out: before an interactive calibration (not after it,
losing it), and without a traceback or a misleading hint ("check power and wiring" for another kind of arm)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from real_helpers import bounded

from twinarm.arms import get_arm
from twinarm.cli.main import main
from twinarm.real.buses import make_bus
from twinarm.real.env import RealArmEnv
from twinarm.real.errors import BaudRateError, PortDisconnectedError, PortNotFoundError, RealArmError
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus


# ----- ports and buses ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("served", "asked", "hint"), [
    ("koch", "so101", "Dynamixel motors answer on {port}: is this a Koch or ALOHA arm? (--arm koch)"),
    ("so101", "koch", "Feetech motors answer on {port}: is this an SO-100 or SO-101 arm? (--arm so101)"),
])  # fmt: skip
def test_the_port_of_the_other_kind_of_arm_is_named_as_such(served: str, asked: str, hint: str) -> None:
    """A Koch port given to an SO-101 command (or the reverse) said "check power and wiring"."""
    with PtyServer(VirtualBus(VirtualArm(get_arm(served)))) as server:
        bus = make_bus(get_arm(asked), server.port)
        with pytest.raises(BaudRateError) as info:
            bounded(bus.connect, timeout_s=15)
        assert hint.format(port=server.port) in str(info.value)
        assert not bus.is_connected
        right = make_bus(get_arm(served), server.port)  # the port is left as it was found
        bounded(right.connect)
        right.close()


def test_setup_motors_names_a_dynamixel_port(capsys: pytest.CaptureFixture) -> None:
    with PtyServer(VirtualBus(VirtualArm(get_arm("koch")))) as server:
        assert main(["setup-motors", "--arm", "so101", "--port", server.port, "--motor", "gripper"]) == 1
    assert f"Dynamixel motors answer on {server.port}: is this a Koch or ALOHA arm?" in capsys.readouterr().err


def test_a_regular_file_is_not_a_serial_device(tmp_path: Path) -> None:
    path = tmp_path / "regular.txt"
    path.write_text("x")
    with pytest.raises(PortNotFoundError, match="not a serial device"):
        make_bus(get_arm("so101"), str(path)).connect()


def test_a_vanished_port_reports_the_torque_it_could_not_disable_once(caplog: pytest.LogCaptureFixture) -> None:
    arm = VirtualArm(get_arm("so101"))
    server = PtyServer(VirtualBus(arm))
    server.start()
    env = RealArmEnv(arm="so101", port=server.port, calibration=arm.ideal_calibration(), cameras={},
                     handle_sigint=False)  # fmt: skip
    try:
        bounded(env.reset)
        server.stop()
        with caplog.at_level(logging.WARNING), pytest.raises(RealArmError):
            for _ in range(3):
                bounded(lambda: env.step(env.action_space.sample() * 0), timeout_s=10)
    finally:
        with caplog.at_level(logging.WARNING):
            env.close()
    assert sum("could not disable torque" in r.getMessage() for r in caplog.records) == 1, caplog.text


def test_disable_torque_on_a_vanished_port_closes_the_bus() -> None:
    server = PtyServer(VirtualBus(VirtualArm(get_arm("so101"))))
    server.start()
    bus = make_bus(get_arm("so101"), server.port)
    bounded(bus.connect)
    server.stop()
    with pytest.raises(PortDisconnectedError):
        bounded(bus.disable_torque, timeout_s=10)
    assert not bus.is_connected

