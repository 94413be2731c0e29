"""Feetech STS/SMS servos (SO-100/SO-101) over `feetech-servo-sdk` (module `scservo_sdk`), unmodified."""

from __future__ import annotations

from typing import Any, ClassVar

import scservo_sdk

from twinarm.real.calibration import MotorCalibration
from twinarm.real.motor_bus import MotorBus

_ERROR_BITS = {1: "input voltage", 2: "angle sensor", 4: "overheat", 8: "over current", 32: "overload"}


class FeetechBus(MotorBus):
    """STS3215-class servos; little-endian registers with sign-magnitude fields (see control_tables)."""

    sdk: ClassVar[Any] = scservo_sdk
    protocol: ClassVar[str] = "feetech"
    software_drive_mode: ClassVar[bool] = True
    RX_TIMEOUT: ClassVar[int] = scservo_sdk.COMM_RX_TIMEOUT

    def _packet_handler(self) -> Any:
        return scservo_sdk.PacketHandler(0)  # 0 = STS/SMS little-endian (sets the SDK's global byte order)

    def _status_error(self, error: int) -> str | None:
        # Feetech status bits report conditions (overload, overheat) while the command still executes;
        # they are logged by the caller's read of Status, not raised.
        return None

    def error_text(self, error: int) -> str:
        return ", ".join(t for bit, t in _ERROR_BITS.items() if error & bit) or "none"

    def _write_calibration_one(self, name: str, c: MotorCalibration) -> None:
        self.write("Torque_Enable", name, 0)
        self.write("Lock", name, 0)  # unlock EEPROM so the values persist
        super()._write_calibration_one(name, c)
        self.write("Lock", name, 1)
