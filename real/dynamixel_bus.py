"""Dynamixel X-series servos (Koch, ALOHA) over `dynamixel-sdk`, Protocol 2.0, unmodified."""

from __future__ import annotations

from typing import Any, ClassVar

import dynamixel_sdk

from twinarm.real.calibration import MotorCalibration
from twinarm.real.motor_bus import MotorBus

_ERRORS = {1: "result fail", 2: "instruction error", 3: "CRC error", 4: "data range error",
           5: "data length error", 6: "data limit error", 7: "access error (EEPROM locked while torque is on?)"}


class DynamixelBus(MotorBus):
    """XL330/XL430/XM430/XM540 servos; drive mode and homing offset live in the servo (EEPROM)."""

    sdk: ClassVar[Any] = dynamixel_sdk
    protocol: ClassVar[str] = "dynamixel"
    software_drive_mode: ClassVar[bool] = False
    RX_TIMEOUT: ClassVar[int] = dynamixel_sdk.COMM_RX_TIMEOUT

    def _packet_handler(self) -> Any:
        return dynamixel_sdk.PacketHandler(2.0)

    def _status_error(self, error: int) -> str | None:
        if error == 0:
            return None
        number = error & 0x7F
        if number == 0:  # only the hardware-alert bit: the command was executed
            return None
        alert = " (hardware alert: read Hardware_Error_Status)" if error & 0x80 else ""
        return _ERRORS.get(number, f"error {number}") + alert

    def _write_calibration_one(self, name: str, c: MotorCalibration) -> None:
        self.write_eeprom("Drive_Mode", name, c.drive_mode & 1)
        super()._write_calibration_one(name, c)
