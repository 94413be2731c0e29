"""Registry of motor buses by protocol name (`ArmSpec.motor_bus`)."""

from __future__ import annotations

from typing import Any

from twinarm.real.dynamixel_bus import DynamixelBus
from twinarm.real.feetech_bus import FeetechBus
from twinarm.real.motor_bus import MotorBus
from twinarm.spec import ArmSpec

BUSES: dict[str, type[MotorBus]] = {"feetech": FeetechBus, "dynamixel": DynamixelBus}


def make_bus(spec: ArmSpec, port: str, **kwargs: Any) -> MotorBus:
    """The bus for `spec.motor_bus` with one motor per joint of the spec."""
    try:
        cls = BUSES[spec.motor_bus]
    except KeyError:
        raise KeyError(f"arm {spec.name!r}: unknown motor bus {spec.motor_bus!r}; known: {sorted(BUSES)}") from None
    return cls.from_spec(spec, port, **kwargs)
