"""One program per arm, and an arm left limp however its program ends: a second opener of the port is refused by
name (it used to share the bus and turn torque off under the first); `kill`, a closed terminal, an uncaught
exception in the user's loop and a script that never calls close() all take torque off (only Ctrl-C did)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from twinarm.arms import SO101
from twinarm.real.errors import PortBusyError
from twinarm.real.feetech_bus import FeetechBus
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

#: A user's script on the real arm: make it, reset (torque on), then end the way `mode` says.
USER_SCRIPT = textwrap.dedent("""
    import signal, sys, time
    import gymnasium as gym
    import twinarm
    port, cal, mode = sys.argv[1:4]
    # as from a terminal, whatever the test runner inherited (a run started under nohup ignores SIGHUP)
    signal.signal(signal.SIGHUP, signal.SIG_IGN if mode == "nohup" else signal.SIG_DFL)
    env = gym.make("twinarm/SO101-PickCube-Real-v0", port=port, calibration=cal, cameras={}, pace=False)
    env.reset()
    print("ready", flush=True)
    sys.stdin.readline()  # the test has seen the torque on
    if mode == "raise":
        raise RuntimeError("a bug in the user's loop")
    if mode == "forget":
        sys.exit(0)
    time.sleep(60)
""")


def _start(tmp_path: Path, server: PtyServer, arm: VirtualArm, mode: str) -> subprocess.Popen:
    cal = arm.ideal_calibration().save(tmp_path / f"{mode}.json")
    proc = subprocess.Popen([sys.executable, "-c", USER_SCRIPT, server.port, str(cal), mode],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # blocks until the script has the arm, or it died
    if line.strip() != "ready":
        proc.kill()
        pytest.fail(f"the user's script did not start: {line!r} {proc.stderr.read()[-2000:]}")
    assert all(s.torque_on for s in arm.servos)
    proc.stdin.write("go\n")  # only now may it end (it used to raise or exit before this look, under load)
    proc.stdin.flush()
    return proc


def _wait(proc: subprocess.Popen, timeout_s: float = 20.0) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the user's script did not end (hang)")
    return proc.returncode, err


def test_a_second_program_on_the_arm_is_refused_naming_the_holder_and_kill_leaves_it_limp(tmp_path: Path) -> None:
    arm = VirtualArm(SO101)
    with PtyServer(VirtualBus(arm)) as server:
        proc = _start(tmp_path, server, arm, "sleep")
        second = FeetechBus.from_spec(SO101, server.port)
        with pytest.raises(PortBusyError, match=rf"{server.port} is in use by another program \(pid {proc.pid}\)"):
            second.connect()
        assert not second.is_connected
        assert all(s.torque_on for s in arm.servos), "the refused opener must not touch the arm"

        proc.send_signal(signal.SIGTERM)  # `kill PID`, `timeout`, systemd, docker stop
        code, err = _wait(proc)
        assert "TerminationSignal: stopped by SIGTERM" in err
        assert not any(s.torque_on for s in arm.servos)
        second.connect()  # the lock went with the program
        second.close()


def test_two_buses_of_one_process_on_one_port_are_refused_too() -> None:
    arm = VirtualArm(SO101)
    with PtyServer(VirtualBus(arm)) as server:
        first = FeetechBus.from_spec(SO101, server.port)
        first.connect()
        try:
            with pytest.raises(PortBusyError, match="already open in this program"):
                FeetechBus.from_spec(SO101, server.port).connect()
        finally:
            first.close()
        again = FeetechBus.from_spec(SO101, server.port)
        again.connect()  # released by close()
        again.close()


@pytest.mark.parametrize("mode", ["hup", "raise", "forget"])
def test_the_arm_goes_limp_however_the_program_ends(tmp_path: Path, mode: str) -> None:
    arm = VirtualArm(SO101)
    with PtyServer(VirtualBus(arm)) as server:
        proc = _start(tmp_path, server, arm, mode)
        if mode == "hup":  # a closed terminal or a dropped ssh session
            proc.send_signal(signal.SIGHUP)
        code, err = _wait(proc)
        assert code != 0 or mode == "forget", err
        assert not any(s.torque_on for s in arm.servos), f"torque left on after {mode}: {err[-1500:]}"
        if mode in ("raise", "forget"):
            assert "was not closed: taking torque off" in err


def test_a_nohup_program_keeps_the_arm_through_a_hangup(tmp_path: Path) -> None:
    arm = VirtualArm(SO101)
    with PtyServer(VirtualBus(arm)) as server:
        proc = _start(tmp_path, server, arm, "nohup")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None, "an ignored SIGHUP must stay ignored"
        assert all(s.torque_on for s in arm.servos)
        proc.send_signal(signal.SIGTERM)
        _wait(proc)
        assert not any(s.torque_on for s in arm.servos)


def test_a_silent_servo_is_reported_once_however_many_callers_meet_it(caplog: pytest.LogCaptureFixture) -> None:
    """The env's step, its error handler's torque-off and close() each met the dead servo again, and each said
    'torque disabled on ... after a fault' (three times per fault in teleop and eval)."""
    import numpy as np

    from twinarm.real.env import RealArmEnv
    from twinarm.real.errors import MotorNotRespondingError

    arm = VirtualArm(SO101)
    bus = VirtualBus(arm)
    with PtyServer(bus) as server:
        env = RealArmEnv(arm=SO101, port=server.port, calibration=arm.ideal_calibration(), cameras={},
                         handle_sigint=False, pace=False)
        try:
            obs, _ = env.reset()
            bus.faults("wrist_flex").silent = True
            with caplog.at_level("WARNING"), pytest.raises(MotorNotRespondingError, match="wrist_flex"):
                for _ in range(3):
                    env.step(np.asarray(obs["agent_pos"]))
        finally:
            env.close()
        said = [r for r in caplog.records if "after a fault on id(s)" in r.getMessage()]
        assert len(said) == 1, [r.getMessage() for r in said]
        assert not any(s.torque_on for s, j in zip(arm.servos, SO101.joint_names, strict=True) if j != "wrist_flex")


def test_torque_off_confirms_every_motor_when_the_sync_write_did_not_go_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync write that fails at send time (COMM_TX_FAIL: a short write on a USB-serial adapter) raised before the
    per-motor writes ran, so no motor was switched off and the arm stayed powered after an error or Ctrl-C."""
    from twinarm.real.errors import CommunicationError
    from twinarm.real.motor_bus import _Failure

    arm = VirtualArm(SO101)
    with PtyServer(VirtualBus(arm)) as server:
        bus = FeetechBus.from_spec(SO101, server.port)
        bus.connect()
        try:
            bus.enable_torque()
            assert all(s.torque_on for s in arm.servos)

            def tx_fail(*args: object) -> None:
                raise _Failure(-1001)  # the SDK's COMM_TX_FAIL

            monkeypatch.setattr(bus, "_sync_write_raw", tx_fail)
            with pytest.raises(CommunicationError, match="sync write Torque_Enable"):
                bus.disable_torque()
            assert not any(s.torque_on for s in arm.servos), "each motor must still be switched off"
        finally:
            bus.close()
