"""Helpers shared by the real/ tests: a Koch-like Dynamixel spec, a runner that cannot hang, a raw-SDK
transaction retried as a bus retries it, a hand that calibrates a virtual arm through `twinarm calibrate`, and
`twinarm virtual-arm --leader` in a subprocess, and a CLI command run on a thread while the test watches its output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.spec import ArmSpec, CameraSpec, JointSpec

KOCH_LIKE = ArmSpec(
    name="koch_test",
    display_name="Koch-like test arm",
    robot_type="koch_follower",
    joints=(
        JointSpec("shoulder_pan", -2.0, 2.0, motor_id=1, motor_model="xl430-w250"),
        JointSpec("shoulder_lift", -1.8, 1.8, motor_id=2, motor_model="xl430-w250"),
        JointSpec("elbow_flex", -1.6, 1.6, motor_id=3, motor_model="xl330-m288"),
        JointSpec("wrist_flex", -1.6, 1.6, motor_id=4, motor_model="xl330-m288"),
        JointSpec("wrist_roll", -2.5, 2.5, motor_id=5, motor_model="xl330-m288"),
        JointSpec("gripper", 0.0, 1.0, kind="gripper", motor_id=6, motor_model="xl330-m288"),
    ),
    control_hz=30,
    cameras=(CameraSpec("front"),),
    motor_bus="dynamixel",
)

SPECS = {"so101": SO101, "koch": KOCH_LIKE}


def bounded(fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Run fn in a thread; fail the test (instead of hanging) if it has not returned within timeout_s."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        pytest.fail(f"operation did not finish within {timeout_s} s (hang)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def drop_input(port: Any) -> None:
    """Throw away bytes waiting in an SDK port: late replies. (scservo_sdk's `clearPort` only flushes output;
    dynamixel_sdk's resets input, as this does for both.)"""
    port.ser.reset_input_buffer()


def retried(sdk: Any, port: Any, call: Callable[[], Any], result: Callable[[Any], int], within_s: float = 5.0) -> Any:
    """call()'s answer, the transaction retried like a bus retries it (late replies let arrive and dropped
    between tries) until `result(answer)` is success or `within_s` has passed; None if none succeeded.

    On a loaded 2-core machine an emulator's reply can miss the SDK's ~35 ms packet timeout (an in-thread
    emulator too: one untried Dynamixel write timed out in two full runs), and late in a full run (a 2.5 GB
    test process) the so101 emulators now and then answered nothing for longer than five tries: a forked child
    hung in a garbage collection of inherited decoders (see test_sdk_pty's forked test), and, likely, late
    replies that were never dropped: scservo_sdk's clearPort, which these retries used, keeps them, so a try could
    take the previous try's reply for its own and leave its own for the next, and a Feetech ping is two
    transactions (ping, model read) that such a chain can fail every time. Koch's Dynamixel SDK drops input in
    its clearPort, and the Koch tests never stalled. These tests check the protocol, not the machine's
    scheduling: a wrong answer never succeeds, however long it is retried."""
    deadline = time.monotonic() + within_s
    while True:
        drop_input(port)
        try:
            answer = bounded(call)
        except IndexError:  # a reply the SDK took for this request's but is not (a short status packet)
            answer = None
        if answer is not None and result(answer) == sdk.COMM_SUCCESS:
            return answer
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def calibrate_by_hand(arm: Any, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str]]:
    """Run `twinarm calibrate` (argv without --port) on the virtual arm `arm` while a hand answers its prompts:
    the arm is put in the middle and Enter typed through the real input(); at the range step the hand moves
    every joint from near one limit to near the other, then types the second Enter. Two Enters in all, as the
    prompts ask: a third would never come and the run fails (bounded). Returns (exit code, announcements)."""
    from twinarm.cli import real_cmd
    from twinarm.cli.main import main
    from twinarm.real.virtual import PtyServer, VirtualBus

    spec = arm.spec
    read_fd, write_fd = os.pipe()
    stdin = os.fdopen(read_fd)
    monkeypatch.setattr(sys, "stdin", stdin)
    announced: list[str] = []
    try:
        with PtyServer(VirtualBus(arm)) as server:

            def after_reads(n: int) -> None:
                seen = server.bus.requests
                while server.bus.requests < seen + n:
                    threading.Event().wait(0.005)

            def sweep() -> None:
                after_reads(2)  # the recording has read the first end
                arm.move_to(spec.lower + 0.1)
                after_reads(2)  # ... and the other one
                os.write(write_fd, b"\n")

            def announce(text: str) -> None:  # the range step: recording starts at once, its Enter ends it
                announced.append(text)
                arm.move_to(spec.upper - 0.1)
                threading.Thread(target=sweep, daemon=True).start()

            arm.move_to(np.where(spec.gripper_mask, 0.5, 0.0))
            os.write(write_fd, b"\n")
            monkeypatch.setattr(real_cmd, "_announce", announce)
            rc = bounded(lambda: main([*argv, "--port", server.port]), timeout_s=30)
    finally:
        stdin.close()
        os.close(write_fd)
    return rc, announced


class Leader:
    """`twinarm virtual-arm --leader ...` in a subprocess: its printed ports, stdin for poses."""

    def __init__(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "twinarm.cli.main",
                "virtual-arm",
                "--leader",
                "--backend",
                "memory",
                *flags,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even if the shell ignores it
        )
        self.out: list[str] = []
        self.ports: dict[str, str] = {}
        while not self.out or not self.out[-1].startswith("leader:"):
            line = bounded(self.proc.stdout.readline, 60)
            if not line:
                self.stop()
                pytest.fail(f"virtual-arm --leader ended early: {''.join(self.out)}{self.proc.stderr.read()}")
            self.out.append(line)
            m = re.match(r"port ?(\w*): (\S+)", line)
            if m:
                self.ports[m.group(1)] = m.group(2)

    def type(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> str:
        """Ctrl-C; returns stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
        return err


class Output:
    """What the CLI has printed so far (captured by capsys), read from the test thread."""

    def __init__(self, capsys: pytest.CaptureFixture) -> None:
        self.capsys, self.text = capsys, ""

    def wait_for(self, needle: str, count: int = 1, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.text.count(needle) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} (x{count}) never printed; got:\n{self.text}")
            time.sleep(0.02)
            self.text += self.capsys.readouterr().out


class CliRun:
    """`main(argv)` on a thread, what it prints readable while it runs."""

    def __init__(self, argv: list[str], capsys: pytest.CaptureFixture) -> None:
        self.result: dict[str, int] = {}
        self.out = Output(capsys)
        self.thread = threading.Thread(target=lambda: self.result.setdefault("rc", main(argv)), daemon=True)
        self.thread.start()

    def finish(self, what: str) -> str:
        """Wait for the command (it must end, and with 0); all it printed."""
        bounded(lambda: self.thread.join(60), timeout_s=90)
        assert not self.thread.is_alive(), f"{what} did not stop on Esc"
        self.out.text += self.out.capsys.readouterr().out
        assert self.result["rc"] == 0, self.out.text
        return self.out.text


def lens_file(path: Path, size: tuple[int, int] = (480, 640), k: Any = None, dist: Any = None) -> Path:
    """A lens file (`fit-camera --calibrate-lens`'s format) for frames of `size`, centred pinhole by default."""
    height, width = size
    k = [[500.0, 0, (width - 1) / 2], [0, 500.0, (height - 1) / 2], [0, 0, 1]] if k is None else k
    path.write_text(json.dumps({"image_size": list(size), "camera_matrix": k, "dist_coeffs": dist or [0.0] * 5,
                                "target_fovy": 55}))  # fmt: skip
    return path


def usage_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one error line of a usage error (exit code 2)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2, info.value.code
    return capsys.readouterr().err.strip().splitlines()[-1]
