"""Named errors of the hardware bridge; every message says which motor, which port and what to try."""

from __future__ import annotations


class RealArmError(RuntimeError):
    """Base class of every error raised by `twinarm.real`."""


class PortNotFoundError(RealArmError):
    """The serial port does not exist or cannot be opened."""

    def __init__(self, port: str, reason: str = "") -> None:
        self.port = port
        super().__init__(
            f"serial port {port!r} cannot be opened{': ' + reason if reason else ''}; "
            "run `twinarm find-port` to find the arm's port (and check permissions, e.g. the dialout group)"
        )


class PortBusyError(RealArmError):
    """Another program has the arm's serial port: two programs on one bus would fight over the arm."""

    def __init__(self, port: str, holders: list[int] | None = None, this_process: bool = False) -> None:
        self.port, self.holders = port, list(holders or [])
        if this_process:  # a second env or bus on one arm in one program (e.g. gym.make_vec of a real id)
            super().__init__(
                f"serial port {port} is already open in this program (another env or bus on the same arm): close() "
                "that one first; one arm serves one env at a time"
            )
            return
        who = f" (pid {', '.join(map(str, self.holders))})" if self.holders else ""
        super().__init__(
            f"serial port {port} is in use by another program{who}; stop it first (a teleop, record, replay or "
            "eval on the same arm, or a script that has the arm open), then try again"
        )


class TerminationSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP (`kill`, `timeout`, a closed terminal or dropped ssh) while a real arm was in use; raised
    after its torque went off, and a KeyboardInterrupt so the code that saves finished work on Ctrl-C runs."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; the arm's torque is off")


class PortDisconnectedError(RealArmError):
    """The serial port went away while in use (USB cable pulled, adapter reset, power loss of the adapter)."""

    def __init__(self, port: str, reason: str = "") -> None:
        self.port = port
        super().__init__(
            f"serial port {port} stopped working{': ' + reason if reason else ''}; check the USB cable and the "
            "arm's power, then reconnect (the motors keep their last torque state until powered down)"
        )


class MotorNotRespondingError(RealArmError):
    """A motor did not answer within the bounded number of tries."""

    def __init__(self, motor: str, motor_id: int, port: str, tries: int = 1, detail: str = "") -> None:
        self.motor, self.motor_id, self.port, self.tries = motor, motor_id, port, tries
        super().__init__(
            f"motor {motor!r} (id {motor_id}) on port {port} is not responding after {tries} tr"
            f"{'y' if tries == 1 else 'ies'}{' (' + detail + ')' if detail else ''}; "
            "check its cable, power supply and id (`twinarm setup-motors`)"
        )


class CommunicationError(RealArmError):
    """No valid reply on any try: corrupt packets (bad checksum/CRC, wrong length) or intermittent timeouts."""

    def __init__(self, what: str, port: str, tries: int, detail: str = "", motor: str | None = None) -> None:
        self.port, self.tries, self.motor = port, tries, motor
        who = f" from motor {motor!r}" if motor else ""
        super().__init__(
            f"{what} on port {port}: no valid reply{who} after {tries} tries ({detail}); "
            "check for loose connectors, electrical noise, or two motors sharing one id"
        )


class BaudRateError(RealArmError):
    """No motor answers at the configured baud rate (possibly they answer at another one)."""

    def __init__(self, port: str, baud: int, found_baud: int | None = None, other_protocol: str | None = None) -> None:
        self.port, self.baud, self.found_baud, self.other_protocol = port, baud, found_baud, other_protocol
        if found_baud:
            hint = (f"the motors answer at {found_baud} baud: use that rate (the command's --baud / --leader-baud "
                    f"{found_baud}, or baud={found_baud} in Python) or set them to {baud} with `twinarm setup-motors`")
        elif other_protocol:
            hint = other_protocol_hint(port, other_protocol)
        else:
            hint = "no motor answered at any supported baud rate; check power and wiring"
        super().__init__(f"no motor answers on port {port} at {baud} baud; {hint}")


#: The arms whose motors speak each protocol, and the --arm that names one.
_ARMS_OF_PROTOCOL = {"dynamixel": ("Dynamixel", "a Koch or ALOHA arm", "--arm koch"),
                     "feetech": ("Feetech", "an SO-100 or SO-101 arm", "--arm so101")}


def other_protocol_hint(port: str, protocol: str) -> str:
    """What to say when the motors on `port` answer the other servo protocol: the port of another kind of arm."""
    vendor, arms, flag = _ARMS_OF_PROTOCOL.get(protocol, (protocol, "another arm", "--arm"))
    return f"{vendor} motors answer on {port}: is this {arms}? ({flag})"


class MotorModelMismatchError(RealArmError):
    """The motor at an id is a different model than the arm spec says."""

    def __init__(self, motor: str, motor_id: int, port: str, expected: str, found: int) -> None:
        self.motor, self.motor_id, self.port = motor, motor_id, port
        super().__init__(
            f"motor {motor!r} (id {motor_id}) on port {port} reports model number {found}, expected {expected}; "
            "is the right arm connected to this port?"
        )


class MotorHardwareError(RealArmError):
    """A motor reported an error in its status packet (overload, overheat, access, data range...)."""

    def __init__(self, motor: str, motor_id: int, port: str, detail: str) -> None:
        self.motor, self.motor_id, self.port = motor, motor_id, port
        super().__init__(f"motor {motor!r} (id {motor_id}) on port {port} reported an error: {detail}")


class CalibrationError(RealArmError):
    """A calibration file is missing, malformed, or does not match the connected motors."""


class NotConnectedError(RealArmError):
    """An operation needs a connected bus/camera/env."""
