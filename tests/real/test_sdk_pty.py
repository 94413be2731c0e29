"""The unmodified vendor SDKs over a real pseudo-terminal: emulator in a thread, and `twinarm virtual-arm`
in another process."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import time

import dynamixel_sdk as dxl
import pytest
import scservo_sdk as scs
from real_helpers import bounded, drop_input, retried

from twinarm.real.control_tables import get_model
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus


def _sdk(spec_bus: str):  # noqa: ANN202
    return (scs, scs.PacketHandler(0)) if spec_bus == "feetech" else (dxl, dxl.PacketHandler(2.0))


def _wait_until_served(sdk, ph, port, motor_id: int) -> None:  # noqa: ANN001
    """Ping (retried as `retried` does, up to 5 s) until the emulator answers once, then drop replies still in
    flight: a just-started emulator can miss the SDK's ~35 ms timeout, and a late reply left in the port would
    be read as the next request's answer."""
    assert retried(sdk, port, lambda: ph.ping(port, motor_id), lambda a: a[1]) is not None, (
        "the emulator never answered a ping"
    )
    time.sleep(0.1)  # replies to the timed-out pings may still be on their way
    drop_input(port)


def _ping(sdk, ph, port, motor_id: int) -> tuple[int, int]:  # noqa: ANN001
    """(model number, result) of a retried ping."""
    answer = retried(sdk, port, lambda: ph.ping(port, motor_id), lambda a: a[1])
    return (answer[0], answer[1]) if answer is not None else (0, sdk.COMM_RX_TIMEOUT)


def test_sdk_ping_sync_write_sync_read_in_thread(served: PtyServer) -> None:
    arm = served.bus.arm
    sdk, ph = _sdk(arm.spec.motor_bus)
    port = sdk.PortHandler(served.port)
    assert port.openPort()
    try:
        _wait_until_served(sdk, ph, port, arm.servos[0].motor_id)
        ids = [s.motor_id for s in arm.servos]
        for servo in arm.servos:
            model, result = _ping(sdk, ph, port, servo.motor_id)
            assert result == sdk.COMM_SUCCESS and model == servo.model.model_number
        _, result, _ = bounded(lambda: ph.ping(port, 42))
        assert result == sdk.COMM_RX_TIMEOUT
        goal = arm.servos[0].model.register("Goal_Position")
        torque = arm.servos[0].model.register("Torque_Enable").address
        for mid in ids:
            assert retried(sdk, port, lambda m=mid: ph.write1ByteTxRx(port, m, torque, 1), lambda a: a[0]) == (0, 0)
        goals = {mid: 2000 + 10 * mid for mid in ids}
        gsw = sdk.GroupSyncWrite(port, ph, goal.address, goal.size)
        for mid, g in goals.items():
            gsw.addParam(mid, list(g.to_bytes(goal.size, "little")))
        assert gsw.txPacket() == sdk.COMM_SUCCESS
        gsr = sdk.GroupSyncRead(port, ph, goal.address, goal.size)
        for mid in ids:
            gsr.addParam(mid)
        assert retried(sdk, port, gsr.txRxPacket, lambda a: a) == sdk.COMM_SUCCESS
        assert {mid: gsr.getData(mid, goal.address, goal.size) for mid in ids} == goals
        if arm.spec.motor_bus == "dynamixel":
            found, result = bounded(lambda: ph.broadcastPing(port))
            assert result == sdk.COMM_SUCCESS and sorted(found) == ids
    finally:
        port.closePort()


@pytest.mark.parametrize("arm", ["so101"])
def test_sdk_drives_virtual_arm_cli_in_another_process(arm: str) -> None:
    """`twinarm virtual-arm` (MuJoCo physics, realtime) in a subprocess; this process moves a joint."""
    proc = subprocess.Popen([sys.executable, "-m", "twinarm.cli.main", "virtual-arm", "--arm", arm],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port_name = None
        deadline = time.monotonic() + 60
        while port_name is None and time.monotonic() < deadline:
            line = bounded(proc.stdout.readline, 60)
            if not line:
                break
            m = re.match(r"port: (\S+)", line)
            port_name = m.group(1) if m else None
        assert port_name, f"virtual-arm printed no port; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        port = scs.PortHandler(port_name)
        ph = scs.PacketHandler(0)
        assert port.openPort()
        _wait_until_served(scs, ph, port, 1)  # the MuJoCo process may still be starting its physics
        assert _ping(scs, ph, port, 1) == (777, scs.COMM_SUCCESS)
        start, result, _ = retried(scs, port, lambda: ph.read2ByteTxRx(port, 1, 56), lambda a: a[1])
        assert result == scs.COMM_SUCCESS
        assert retried(scs, port, lambda: ph.write1ByteTxRx(port, 1, 40, 1), lambda a: a[0])[0] == scs.COMM_SUCCESS
        goal = lambda: ph.write2ByteTxRx(port, 1, 42, start + 300)  # noqa: E731
        assert retried(scs, port, goal, lambda a: a[0])[0] == scs.COMM_SUCCESS
        moved = start
        deadline = time.monotonic() + 10
        while abs(moved - (start + 300)) > 15 and time.monotonic() < deadline:
            time.sleep(0.1)
            moved, result, _ = retried(scs, port, lambda: ph.read2ByteTxRx(port, 1, 56), lambda a: a[1])
        assert abs(moved - (start + 300)) <= 15, f"joint went from {start} to {moved}, goal {start + 300}"
        port.closePort()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_emulator_in_forked_process_serves_sdk(spec) -> None:  # noqa: ANN001
    """The pty opened here, the emulator serving from a forked child process."""
    server = PtyServer(VirtualBus(VirtualArm(spec)))
    # The child must never finalize objects it inherits: late in a full run this process holds garbage from
    # earlier tests (PyAV decoders among it), and freeing FFmpeg state inherited through fork can block
    # forever (datasets_io.video.VideoPool keeps such decoders for that reason). A child that ran a garbage
    # collection could hang mid-test, which is how this test failed now and then (answers, then silence).
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # child: serve until killed
        try:
            server.serve_forever()
        finally:
            os._exit(0)
    gc.unfreeze()
    try:
        sdk, ph = _sdk(spec.motor_bus)
        port = sdk.PortHandler(server.port)
        assert port.openPort()
        _wait_until_served(sdk, ph, port, spec.joints[0].motor_id)  # the forked child may not run yet
        for j in spec.joints:
            model, result = _ping(sdk, ph, port, j.motor_id)
            assert result == sdk.COMM_SUCCESS and model == get_model(j.motor_model).model_number
        port.closePort()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        server.stop()
