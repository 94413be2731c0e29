"""`twinarm setup-motors --leader [--side]` sets up a leader arm's servos (the Koch leader's XL330-M077s, ALOHA's
WidowX servos), which `setup-motors` refused as the wrong model; forgetting `--leader` says to add it."""

from __future__ import annotations

import pytest
from real_helpers import usage_error

from twinarm.arms import get_arm
from twinarm.cli.main import main
from twinarm.real.teleop import leader_spec
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus
from twinarm.real.virtual.servo import VirtualServo


def one_fresh_motor(spec_name: str, joint: str, group: str = "", factory_baud: int = 57_600) -> tuple[PtyServer, VirtualServo]:
    """A bus holding the single, factory-fresh (id 1) leader motor of `joint`, as `setup-motors` wants it."""
    spec = leader_spec(get_arm(spec_name), group)
    arm = VirtualArm(spec)
    j = spec.joint_names.index(joint)
    fresh = VirtualServo(arm.servos[j].model, 1, baud=factory_baud, listener=arm._on_write)
    for servo in arm.servos:  # the other motors are not connected
        servo.faults.silent = True
    del arm._joint_of[id(arm.servos[j])]
    arm.servos[j] = fresh
    arm._joint_of[id(fresh)] = j
    return PtyServer(VirtualBus(arm)), fresh


def test_a_koch_leader_motor_is_set_up_with_leader(capsys: pytest.CaptureFixture) -> None:
    server, fresh = one_fresh_motor("koch", "elbow_flex")
    with server:
        assert main(["setup-motors", "--arm", "koch", "--leader", "--port", server.port, "--motor", "elbow_flex"]) == 0
    assert (fresh.motor_id, fresh.baud) == (3, 1_000_000)
    assert "elbow_flex: id 1 @ 57600 -> id 3 @ 1000000" in capsys.readouterr().out


def test_a_leader_motor_without_leader_says_to_add_it(capsys: pytest.CaptureFixture) -> None:
    """The XL330-M077 was refused as "model number 1190, expected xl330-m288" with no word of --leader."""
    server, fresh = one_fresh_motor("koch", "elbow_flex")
    with server:
        assert main(["setup-motors", "--arm", "koch", "--port", server.port, "--motor", "elbow_flex"]) == 1
    err = capsys.readouterr().err
    assert "model number 1190 (xl330-m077), expected xl330-m288" in err
    assert "add --leader to set up the leader" in err
    assert fresh.motor_id == 1  # nothing written


def test_an_aloha_leader_motor_is_set_up_by_side(capsys: pytest.CaptureFixture) -> None:
    server, fresh = one_fresh_motor("aloha", "left_gripper", group="left")
    with server:
        line = usage_error(["setup-motors", "--arm", "aloha", "--leader", "--port", server.port], capsys)
        assert "--arm aloha is 2 arms on separate ports: set up each one with --side left / --side right" in line
        assert main(["setup-motors", "--arm", "aloha", "--side", "left", "--leader", "--port", server.port,
                     "--motor", "gripper"]) == 0  # fmt: skip
    assert fresh.motor_id == 9 and fresh.model.name == "xc430-w150"
