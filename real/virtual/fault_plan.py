"""`twinarm virtual-arm --fault MOTOR:KIND[@SECONDS]`: servo faults scheduled from the command line, to rehearse
the failure paths (a servo that stops answering, corrupt or late replies) without writing Python."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twinarm.real.virtual.servo import Faults

#: What each fault kind does to the servo, as `--help` and the start-up lines say it.
KINDS = {
    "silent": "stops answering",
    "corrupt": "answers with a broken checksum",
    "late": "answers {late:g} s late",
}
#: How late a `late` servo answers unless `late=SECONDS` says: past the SDKs' packet timeout (~35 ms at 1 Mbaud).
LATE_S = 0.1

FAULT_HELP = ("make a servo fail SECONDS after serving starts (default 0), repeatable: MOTOR is a joint name as "
              "printed (wrist_flex, left_gripper); KIND is silent (stops answering), corrupt (every reply's "
              f"checksum broken) or late[=S] (every reply S s late, default {LATE_S:g}), e.g. wrist_flex:silent@5")


@dataclass(frozen=True)
class FaultPlan:
    """One scheduled fault: from `at_s` seconds on, the servo of joint `motor` fails as `kind` says."""

    motor: str
    kind: str
    at_s: float = 0.0
    late_s: float = LATE_S

    @classmethod
    def parse(cls, text: str, joints: Sequence[str]) -> FaultPlan:
        """`MOTOR:KIND[=S][@SECONDS]`; ValueError naming the part at fault and what it may be."""
        motor, sep, rest = text.partition(":")
        if not sep or not motor or not rest:
            raise ValueError(f"--fault {text}: give MOTOR:KIND[@SECONDS], e.g. {joints[0]}:silent@5")
        if motor not in joints:
            raise ValueError(f"--fault {text}: no joint {motor!r}; the joints: {', '.join(joints)}")
        what, _, when = rest.partition("@")
        kind, _, arg = what.partition("=")
        if kind not in KINDS:
            raise ValueError(f"--fault {text}: no fault kind {kind!r}; the kinds: silent, corrupt, late[=SECONDS]")
        if arg and kind != "late":
            raise ValueError(f"--fault {text}: only late takes =SECONDS (how late each reply is)")
        at_s, late_s = _seconds(text, when or "0", "@SECONDS"), _seconds(text, arg or str(LATE_S), "late=SECONDS")
        return cls(motor, kind, at_s, late_s)

    def apply(self, faults: Faults) -> None:
        """Set the servo's fault flags (for good: every reply from now on)."""
        if self.kind == "silent":
            faults.silent = True
        elif self.kind == "corrupt":
            faults.corrupt_replies = -1
        else:
            faults.late_reply_s, faults.late_replies = self.late_s, -1

    def describe(self) -> str:
        return f"{self.motor} {KINDS[self.kind].format(late=self.late_s)}"


def _seconds(text: str, value: str, part: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ValueError(f"--fault {text}: {part} must be a number of seconds >= 0, got {value!r}")
    return seconds


def schedule(plans: Sequence[FaultPlan], faults_of: Callable[[str], Faults],
             say: Callable[[str], None]) -> list[threading.Timer]:
    """Start a timer per plan that applies it to `faults_of(plan.motor)` at its time and `say`s so; returns the
    timers (cancel them when serving stops)."""
    timers = []
    for plan in plans:

        def fire(plan: FaultPlan = plan) -> None:
            plan.apply(faults_of(plan.motor))
            say(f"fault: {plan.describe()} (from {plan.at_s:g} s)")

        timer = threading.Timer(plan.at_s, fire)
        timer.daemon = True
        timer.start()
        timers.append(timer)
    return timers
