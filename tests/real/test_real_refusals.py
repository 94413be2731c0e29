"""Bad input to the arm commands (calibrate, setup-motors, find-port, teleop, virtual-arm) is refused at once, in
one line naming the flag, file or port at fault and the way out: before an interactive calibration (not after it,
losing it), and without a traceback or a misleading hint ("check power and wiring" for another kind of arm)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from real_helpers import bounded, lens_file, usage_error

from twinarm.arms import get_arm
from twinarm.cli.main import main
from twinarm.real.buses import make_bus
from twinarm.real.env import RealArmEnv
from twinarm.real.errors import BaudRateError, PortDisconnectedError, PortNotFoundError, RealArmError
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

SIM = "twinarm/SO101-PickCube-v0"



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


def test_the_real_id_fixes_its_arm_and_a_contradicting_one_leaves_it_limp() -> None:
    """arm='so100' under the SO101 real id built an SO-100 env on the SO-101's bus (same servos, same protocol, so
    nothing failed) that every record called SO101; the sim ids refused it already."""
    import gymnasium as gym

    import twinarm  # noqa: F401  (registers the ids)

    arm = VirtualArm(get_arm("so100"))
    with PtyServer(VirtualBus(arm)) as server:
        with pytest.raises(ValueError, match=r"twinarm/SO101-PickCube-Real-v0 is the so101 arm's env, got "
                                             r"arm='so100'; the id fixes the arm"):  # fmt: skip
            gym.make("twinarm/SO101-PickCube-Real-v0", arm="so100", port=server.port,
                     calibration=arm.ideal_calibration(), cameras={}, handle_sigint=False)  # fmt: skip
        assert not any(s.torque_on for s in arm.servos)  # refused after configuration: limp again
        env = gym.make("twinarm/SO100-PickCube-Real-v0", port=server.port, calibration=arm.ideal_calibration(),
                       cameras={}, handle_sigint=False)  # fmt: skip
        assert env.unwrapped.spec_arm.name == "so100"
        env.close()


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



# ----- output paths -----------------------------------------------------------------------------------------------
def _bad_outputs(tmp_path: Path) -> list[tuple[str, str]]:
    (tmp_path / "regular.txt").write_text("x")
    return [(str(tmp_path), "is a directory; give a file in it"),
            (str(tmp_path / "regular.txt" / "x.json"), f"{tmp_path / 'regular.txt'} is a file, not a directory"),
            ("/proc/nope.json", "cannot write in /proc")]  # fmt: skip


def test_calibrate_checks_out_before_the_first_prompt(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The whole interactive calibration used to run, then fail at the save (IsADirectoryError, FileExistsError)."""
    monkeypatch.setattr("builtins.input", lambda *_: pytest.fail("prompted before --out was checked"))
    for out, why in _bad_outputs(tmp_path):
        line = usage_error(["calibrate", "--arm", "so101", "--leader", "--port", "/dev/null", "--out", out], capsys)
        assert line.startswith(f"twinarm calibrate: error: --out {out}") and why in line, line


def test_virtual_arm_checks_write_calibration(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for out, why in _bad_outputs(tmp_path)[:2]:
        line = usage_error(["virtual-arm", "--backend", "memory", "--write-calibration", out], capsys)
        assert line.startswith(f"twinarm virtual-arm: error: --write-calibration {out}") and why in line, line



# ----- wording --------------------------------------------------------------------------------------------------
def test_setup_motors_unknown_joint_lists_the_joints(capsys: pytest.CaptureFixture) -> None:
    line = usage_error(["setup-motors", "--arm", "so101", "--port", "/dev/null", "--motor", "elbow"], capsys)
    assert line == ("twinarm setup-motors: error: --motor elbow: arm so101 has no such joint; its joints: "
                    "shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll, gripper")


def test_virtual_arm_unknown_task_lists_the_tasks(capsys: pytest.CaptureFixture) -> None:
    line = usage_error(["virtual-arm", "--task", "PickCub"], capsys)
    assert "task 'PickCub'; its tasks: PickCube, PickPlace, Reach, StackCube" in line


def test_teleop_sim_with_one_real_flag_is_grammatical(capsys: pytest.CaptureFixture) -> None:
    line = usage_error(["teleop", "--env", SIM, "--port", "/dev/ttyACM0", "--keyboard"], capsys)
    assert line.endswith("--env follows with a simulated arm; --port belongs to a real one")


def test_find_port_puts_its_answer_on_a_line_of_its_own(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    """Without a terminal to echo the Enter, the error used to follow the prompt on its line."""
    monkeypatch.setattr("twinarm.real.ports.serial_ports", lambda: ["/dev/ttyUSB0"])
    monkeypatch.setattr("builtins.input", lambda text: print(text, end=""))  # as input() writes its prompt
    assert main(["find-port"]) == 1
    assert capsys.readouterr().out.endswith("press Enter. \n")


def test_calibrate_ends_its_ranges_line_before_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    """A motor failing during the range step: the error used to follow the live ranges on their line."""

    def fails_while_recording(bus, spec, prompt, done, on_sample, **_):  # noqa: ANN001, ANN003, ANN202
        on_sample({"gripper": 2000}, {"gripper": (1900, 2100)})
        raise RealArmError("motor 'gripper' stopped answering")

    monkeypatch.setattr("twinarm.real.calibrate.run_calibration", fails_while_recording)
    with PtyServer(VirtualBus(VirtualArm(get_arm("so101")))) as server:
        argv = ["calibrate", "--arm", "so101", "--port", server.port, "--out", str(tmp_path / "c.json")]
        assert bounded(lambda: main(argv)) == 1
    captured = capsys.readouterr()
    assert captured.out.endswith("gripper:1900-2100\n") and "stopped answering" in captured.err



def test_lens_for_a_camera_not_given_names_the_cameras_there_are(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lens = lens_file(tmp_path / "lens.json")
    line = usage_error(["teleop", "--port", "/dev/null", "--calibration", "c.json", "--keyboard",
                        "--camera", "front=0", "--lens", f"wrist={lens}"], capsys)  # fmt: skip
    assert line.endswith(f"--lens wrist={lens}: no camera named wrist (--camera gives: front)"), line

