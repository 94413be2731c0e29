"""Interactive calibration and motor setup procedures, written against callbacks so tests can drive them.

Calibration (LeRobot's procedure): torque off, clear the homing offsets, the user puts the arm in the
middle of its range, homing offsets make that pose read mid-turn (2047), then the user moves every joint
through its full range while the extremes are recorded. Motor setup: with one motor connected, find it
at any id/baud and give it the spec's id and the bus baud.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping

from twinarm.real.calibration import REVOLUTE_CENTER, Calibration, MotorCalibration
from twinarm.real.control_tables import DEFAULT_BAUD, MODEL_BY_NUMBER, MotorModel, get_model
from twinarm.real.errors import RealArmError, other_protocol_hint
from twinarm.real.motor_bus import Motor, MotorBus, other_protocol_on
from twinarm.spec import ArmSpec


def run_calibration(bus: MotorBus, spec: ArmSpec, prompt: Callable[[str], None],
                    recording_done: Callable[[dict[str, int]], bool], sample_period_s: float = 0.02,
                    on_sample: Callable[[dict[str, int], dict[str, tuple[int, int]]], None] | None = None,
                    announce: Callable[[str], None] | None = None,
                    inverted: Collection[str] = (),
                    ) -> Calibration:
    """Run the procedure on a connected bus; returns the calibration (also written to the motors).

    `prompt(text)` returns when the user is ready; `recording_done(latest_positions)` is polled during range
    recording and returns True when the user has finished moving the joints. `announce(text)` shows the range
    step's instruction without waiting (recording starts at once; default: `prompt`). `inverted` names the
    joints whose servo is mounted mirrored (a Koch leader's elbow_flex): they get drive_mode 1, set in the
    servo before homing on Dynamixel, applied in software on Feetech.
    """
    names = list(spec.joint_names)
    unknown = sorted(set(inverted) - set(names))
    if unknown:
        raise ValueError(f"inverted joints {unknown} are not joints of {spec.name}")
    drive = {n: int(n in inverted) for n in names}
    bus.disable_torque()
    for n in names:
        bus.write_eeprom("Homing_Offset", n, 0)
        if not bus.software_drive_mode:
            bus.write_eeprom("Drive_Mode", n, drive[n])
    prompt(f"Move the {spec.display_name} to the middle of its range of motion, then press Enter.")
    mid = bus.positions(names)
    offsets: dict[str, int] = {}
    for n in names:
        offset = mid[n] - REVOLUTE_CENTER if bus.protocol == "feetech" else REVOLUTE_CENTER - mid[n]
        bus.write_eeprom("Homing_Offset", n, offset)
        offsets[n] = offset
    (announce or prompt)("Move every joint through its entire range of motion; press Enter when done.")
    pos = bus.positions(names)
    ranges = {n: (pos[n], pos[n]) for n in names}
    while True:
        pos = bus.positions(names)
        ranges = {n: (min(ranges[n][0], pos[n]), max(ranges[n][1], pos[n])) for n in names}
        if on_sample is not None:
            on_sample(pos, ranges)
        if recording_done(pos):
            break
        time.sleep(sample_period_s)
    check_spans(bus, ranges)
    cal = Calibration({
        n: MotorCalibration(bus.motor(n).id, drive[n], offsets[n], ranges[n][0], ranges[n][1]) for n in names
    })
    bus.write_calibration(cal)
    return cal


#: The least span a joint must sweep during range recording, in degrees: every joint of every arm spans far more
#: (the smallest, the grippers, about 120 degrees; a leader's gripper trigger some 35), while one that was forgotten
#: and only sagged under gravity or jittered moves a few degrees (21 ticks, 1.8 degrees, on a virtual SO-101).
MIN_SPAN_DEG = 9.0


def check_spans(bus: MotorBus, ranges: dict[str, tuple[int, int]]) -> None:
    """Raise RealArmError naming every joint whose recorded range is under MIN_SPAN_DEG, with its span: a joint
    that was not moved would be calibrated to a sliver of its range (and drive the follower through a sliver)."""
    short = {}
    for n, (lo, hi) in ranges.items():
        resolution = bus.motor(n).model.resolution
        if hi - lo < resolution * MIN_SPAN_DEG / 360:
            short[n] = f"{n} {hi - lo} ticks ({(hi - lo) * 360 / resolution:.1f} deg)"
    if short:
        raise RealArmError(f"joints {list(short)} did not move through their range during range recording (spans: "
                           f"{', '.join(short.values())}; each needs at least {MIN_SPAN_DEG:g} deg): move every joint "
                           "from one end of its range to the other; calibration aborted")


def feetech_broadcast_ping(bus: MotorBus, timeout_s: float = 0.05) -> dict[int, int]:
    """{id: model number} of every Feetech servo answering a broadcast PING (the SDK has no such call)."""
    sdk = bus.sdk
    with bus.lock:
        bus._require()
        port, ph = bus._port, bus._ph
        bus._prepare()
        packet = [0xFF, 0xFF, sdk.BROADCAST_ID, 2, sdk.INST_PING, 0]
        if ph.txPacket(port, packet) != sdk.COMM_SUCCESS:
            port.is_using = False
            return {}
        ids = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port.setPacketTimeoutMillis(max(1.0, (deadline - time.monotonic()) * 1000))
            rx, result = ph.rxPacket(port)
            if result == sdk.COMM_SUCCESS:
                ids.append(rx[2])
            elif result == sdk.COMM_RX_TIMEOUT:
                break
        port.is_using = False
    return {i: m for i in ids if (m := bus._ping_once(i)) is not None}


def scan_bus(bus_cls: type[MotorBus], port: str, model: MotorModel) -> tuple[int, dict[int, int]]:
    """(baud, {id: model number}) at the first baud where any motor answers; raises if none does."""
    probe = bus_cls(port, [], baud=DEFAULT_BAUD, retries=0)
    probe.open()
    try:
        for baud in sorted(set(model.bauds.values()), reverse=True):
            if not probe._port.setBaudRate(baud):
                continue
            if bus_cls.protocol == "feetech":
                found = feetech_broadcast_ping(probe)
            else:
                with probe.lock:
                    probe._prepare()
                    data, result = probe._ph.broadcastPing(probe._port)
                found = {i: v[0] for i, v in data.items()} if result == 0 else {}
            if found:
                return baud, found
    finally:
        probe.close()
    # ids a motor being set up likely has: the factory's 1, and the arm's (re-running setup-motors)
    other = other_protocol_on(port, bus_cls.protocol, [1, *range(2, 8)], [DEFAULT_BAUD])
    if other is not None:
        raise RealArmError(f"no {bus_cls.protocol} motor answers on {port} at any baud rate; "
                           f"{other_protocol_hint(port, other)}")
    raise RealArmError(f"no motor answers on {port} at any baud rate; check power and the cable")


def setup_motor(bus_cls: type[MotorBus], port: str, model_name: str, target_id: int,
                target_baud: int = DEFAULT_BAUD, hints: Mapping[int, str] | None = None) -> tuple[int, int]:
    """Give the single motor connected to `port` id `target_id` and baud `target_baud`.

    Returns the (id, baud) it had before. Raises if zero or several motors answer, or the model differs; `hints`
    {model number: advice} is added to that error for models the caller knows (a leader's servo: `--leader`).
    """
    model = get_model(model_name)
    # Checked before anything is written: a baud the motor takes but the SDK cannot open would strand it.
    usable = bus_cls.usable_bauds(port, [model])
    if target_baud not in usable:
        raise RealArmError(f"{model.name} on the {bus_cls.protocol} SDK cannot be reached at {target_baud} baud; "
                           f"choose one of {usable}")
    baud, found = scan_bus(bus_cls, port, model)
    if len(found) != 1:
        raise RealArmError(f"{len(found)} motors answer on {port} (ids {sorted(found)}); connect exactly one")
    (old_id, number), = found.items()
    if number != model.model_number:
        known = MODEL_BY_NUMBER.get(number)
        found_as = f"model number {number}" + (f" ({known.name})" if known else "")
        hint = (hints or {}).get(number)
        raise RealArmError(f"the motor on {port} is {found_as}, expected {model.name} ({model.model_number})"
                           + (f": {hint}" if hint else ""))
    bus = bus_cls(port, [Motor("motor", old_id, model)], baud=baud)
    bus.open()
    try:
        if bus.protocol == "feetech":
            bus.write("Torque_Enable", "motor", 0)
            bus.write("Lock", "motor", 0)
        bus.write_eeprom("ID", "motor", target_id)
        bus.motors["motor"] = Motor("motor", target_id, model)
        if baud != target_baud:
            bus.write_eeprom("Baud_Rate", "motor", model.baud_index(target_baud))
            time.sleep(0.01)
            bus.set_baud(target_baud)
        if bus.protocol == "feetech":
            bus.write("Lock", "motor", 1)
        if bus.ping(target_id) != model.model_number:
            raise RealArmError(f"motor did not answer as id {target_id} at {target_baud} baud after setup")
    finally:
        bus.close()
    return old_id, baud
