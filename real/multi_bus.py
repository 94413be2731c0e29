"""Arms whose servos sit on several serial buses (ALOHA: one bus per arm, the same ids on each).

`bus_groups(spec)` splits the joints so ids are unique within a group (by the name prefix before the
first `_` when the spec repeats ids); `MultiBus` makes the groups' buses look like one bus to the env.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from twinarm.real.buses import BUSES
from twinarm.real.calibration import Calibration
from twinarm.real.control_tables import get_model
from twinarm.real.motor_bus import Motor, MotorBus
from twinarm.spec import ArmSpec


def bus_groups(spec: ArmSpec) -> dict[str, list[str]]:
    """{group: joint names}: one group ("") when ids are unique, else one per name prefix (`left`, `right`)."""
    ids = [j.motor_id for j in spec.joints]
    if len(set(ids)) == len(ids):
        return {"": list(spec.joint_names)}
    groups: dict[str, list[str]] = {}
    for j in spec.joints:
        groups.setdefault(j.name.split("_", 1)[0], []).append(j.name)
    for g, names in groups.items():
        gids = [spec.joints[spec.joint_names.index(n)].motor_id for n in names]
        if len(set(gids)) != len(gids):
            raise ValueError(f"arm {spec.name!r}: motor ids repeat within bus group {g!r}: {gids}")
    return groups


class MultiBus:
    """Several buses of one protocol addressed by motor name; the subset of MotorBus the env uses."""

    def __init__(self, buses: Mapping[str, MotorBus]) -> None:
        self.buses = dict(buses)
        first = next(iter(self.buses.values()))
        self.protocol = first.protocol
        self.software_drive_mode = first.software_drive_mode
        self._owner = {name: b for b in self.buses.values() for name in b.motors}
        self.motors = {name: b.motors[name] for b in self.buses.values() for name in b.motors}

    @classmethod
    def from_spec(cls, spec: ArmSpec, ports: Mapping[str, str], **kwargs: Any) -> MultiBus:
        groups = bus_groups(spec)
        if set(ports) != set(groups):
            raise ValueError(f"arm {spec.name!r} needs one port per bus group {sorted(groups)}, got {sorted(ports)}")
        by_name = {j.name: j for j in spec.joints}
        buses = {
            g: BUSES[spec.motor_bus](ports[g], [Motor(n, by_name[n].motor_id, get_model(by_name[n].motor_model))
                                                for n in names], **kwargs)
            for g, names in groups.items()
        }
        return cls(buses)

    @property
    def port(self) -> str:
        return ", ".join(f"{g}={b.port}" for g, b in self.buses.items())

    @property
    def is_connected(self) -> bool:
        return all(b.is_connected for b in self.buses.values())

    def motor(self, name: str) -> Motor:
        return self._owner[name].motor(name)

    def connect(self) -> None:
        try:
            for b in self.buses.values():
                b.connect()
        except Exception:
            self.close()
            raise

    def close(self, disable_torque: bool = False) -> None:
        for b in self.buses.values():
            b.close(disable_torque=disable_torque)

    def _split(self, names: Iterable[str]) -> dict[MotorBus, list[str]]:
        out: dict[MotorBus, list[str]] = {}
        for n in names:
            out.setdefault(self._owner[n], []).append(n)
        return out

    def write(self, register: str, motor: str, value: int) -> None:
        self._owner[motor].write(register, motor, value)

    def write_eeprom(self, register: str, motor: str, value: int) -> None:
        self._owner[motor].write_eeprom(register, motor, value)

    def enable_torque(self, motors: Iterable[str] | None = None) -> None:
        for b, names in self._split(motors if motors is not None else self.motors).items():
            b.enable_torque(names)

    def disable_torque(self, motors: Iterable[str] | None = None) -> None:
        """Torque off on every bus, even when one of them fails (a dead servo on the left arm must not leave
        the right arm powered); the first failure is raised afterwards."""
        first: Exception | None = None
        for b, names in self._split(motors if motors is not None else self.motors).items():
            if b.is_connected:
                try:
                    b.disable_torque(names)
                except Exception as exc:
                    first = first or exc
        if first is not None:
            raise first

    def positions(self, motors: Iterable[str] | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        for b, names in self._split(motors if motors is not None else self.motors).items():
            out.update(b.positions(names))
        return out

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        for b, names in self._split(values).items():
            b.sync_write(register, {n: values[n] for n in names})

    def _sub(self, calibration: Calibration, b: MotorBus) -> Calibration:
        return Calibration({n: c for n, c in calibration.motors.items() if n in b.motors})

    def calibration_matches(self, calibration: Calibration) -> bool:
        return all(b.calibration_matches(self._sub(calibration, b)) for b in self.buses.values())

    def write_calibration(self, calibration: Calibration) -> None:
        for b in self.buses.values():
            b.write_calibration(self._sub(calibration, b))
