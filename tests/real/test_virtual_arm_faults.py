"""`twinarm virtual-arm --fault MOTOR:KIND[@SECONDS]` rehearses the failure paths from the command line: a servo
that stops answering mid-run is reported by name (Faults existed only in Python)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from real_helpers import bounded, usage_error

from twinarm.arms import SO101
from twinarm.real.buses import make_bus
from twinarm.real.errors import RealArmError
from twinarm.real.virtual.fault_plan import FaultPlan
from twinarm.real.virtual.servo import Faults


def test_a_servo_goes_silent_when_the_fault_says() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "twinarm.cli.main", "virtual-arm", "--backend", "memory",
                             "--calibrated", "--fault", "wrist_flex:silent@1.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = []
        while not (lines and lines[-1].startswith("port:")):
            line = bounded(proc.stdout.readline, 60)
            assert line, f"virtual-arm ended early: {''.join(lines)}{proc.stderr.read()}"
            lines.append(line)
        served = time.monotonic()
        port = lines[-1].split()[-1]
        assert "fault planned: wrist_flex stops answering from 1.5 s after serving starts\n" in lines
        bus = make_bus(SO101, port)
        bounded(bus.connect, timeout_s=15)  # every servo answers at first
        try:
            time.sleep(max(0.0, served + 2.5 - time.monotonic()))
            with pytest.raises(RealArmError, match=r"wrist_flex.*\(id 4\)"):
                bounded(bus.positions, timeout_s=15)
        finally:
            bus.close()
    finally:
        # SIGTERM, not SIGINT: a test run started in the background by a script inherits an ignored SIGINT, and the
        # server then outlived the test (holding its pty); kill it if it does not go
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "fault: wrist_flex stops answering (from 1.5 s)" in err


@pytest.mark.parametrize(("flag", "why"), [
    ("elbow:silent", "--fault elbow:silent: no joint 'elbow'; the joints: shoulder_pan, shoulder_lift, elbow_flex"),
    ("gripper:melt@2", "--fault gripper:melt@2: no fault kind 'melt'; the kinds: silent, corrupt, late[=SECONDS]"),
    ("gripper:silent@soon", "--fault gripper:silent@soon: @SECONDS must be a number of seconds >= 0, got 'soon'"),
    ("gripper:corrupt=2", "--fault gripper:corrupt=2: only late takes =SECONDS"),
])  # fmt: skip
def test_a_bad_fault_is_a_usage_error_before_anything_is_served(flag: str, why: str,
                                                                capsys: pytest.CaptureFixture) -> None:
    line = usage_error(["virtual-arm", "--backend", "memory", "--fault", flag], capsys)
    assert why in line, line


def test_each_kind_sets_the_servo_faults() -> None:
    joints = SO101.joint_names
    for text, check in (("gripper:corrupt", lambda f: f.corrupt_replies == -1),
                        ("gripper:late=0.3@4", lambda f: (f.late_reply_s, f.late_replies) == (0.3, -1)),
                        ("gripper:silent", lambda f: f.silent)):  # fmt: skip
        faults = Faults()
        FaultPlan.parse(text, joints).apply(faults)
        assert check(faults), text
    assert FaultPlan.parse("gripper:late=0.3@4", joints).at_s == 4.0
