"""Servo control tables: register addresses, sizes and sign encodings, model numbers and baud tables.

Every protocol fact about a servo model lives here, used by both the SDK buses and the virtual bus.
Sources: Feetech `SMS_STS.h`, the ROBOTIS e-Manual X-series tables (see shared/research/hardware.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Encoding = Literal["unsigned", "sign_magnitude", "twos_complement"]


@dataclass(frozen=True)
class Register:
    """One control-table entry; `sign_bit` is the sign bit index for Feetech sign-magnitude values."""

    name: str
    address: int
    size: int
    encoding: Encoding = "unsigned"
    sign_bit: int = 0
    eeprom: bool = False

    def encode(self, value: int) -> int:
        """A signed value -> the unsigned integer stored in the register."""
        value = int(value)
        if self.encoding == "sign_magnitude":
            limit = 1 << self.sign_bit
            if abs(value) >= limit:
                raise ValueError(f"{self.name}: {value} does not fit sign-magnitude with sign bit {self.sign_bit}")
            return (limit | -value) if value < 0 else value
        if self.encoding == "twos_complement":
            lo, hi = -(1 << (8 * self.size - 1)), (1 << (8 * self.size - 1)) - 1
            if not lo <= value <= hi:
                raise ValueError(f"{self.name}: {value} outside [{lo}, {hi}]")
            return value & ((1 << (8 * self.size)) - 1)
        if not 0 <= value < (1 << (8 * self.size)):
            raise ValueError(f"{self.name}: {value} does not fit {self.size} unsigned byte(s)")
        return value

    def decode(self, raw: int) -> int:
        """The unsigned integer stored in the register -> its signed value."""
        raw = int(raw) & ((1 << (8 * self.size)) - 1)
        if self.encoding == "sign_magnitude":
            limit = 1 << self.sign_bit
            return -(raw & (limit - 1)) if raw & limit else raw
        if self.encoding == "twos_complement":
            bits = 8 * self.size
            return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw
        return raw


def _table(*regs: Register) -> dict[str, Register]:
    return {r.name: r for r in regs}


def _r(name: str, address: int, size: int, eeprom_end: int, encoding: Encoding = "unsigned", sign_bit: int = 0) -> Register:
    return Register(name, address, size, encoding, sign_bit, eeprom=address < eeprom_end)


# ----- Feetech STS/SMS (little-endian, protocol "0") -------------------------------------------------
_FE = 40  # EEPROM ends at Torque_Enable
STS_TABLE: dict[str, Register] = _table(
    _r("Firmware_Major_Version", 0, 1, _FE),
    _r("Firmware_Minor_Version", 1, 1, _FE),
    _r("Model_Number", 3, 2, _FE),
    _r("ID", 5, 1, _FE),
    _r("Baud_Rate", 6, 1, _FE),
    _r("Return_Delay_Time", 7, 1, _FE),
    _r("Response_Status_Level", 8, 1, _FE),
    _r("Min_Position_Limit", 9, 2, _FE),
    _r("Max_Position_Limit", 11, 2, _FE),
    _r("Max_Temperature_Limit", 13, 1, _FE),
    _r("Max_Voltage_Limit", 14, 1, _FE),
    _r("Min_Voltage_Limit", 15, 1, _FE),
    _r("Max_Torque_Limit", 16, 2, _FE),
    _r("Phase", 18, 1, _FE),
    _r("Unloading_Condition", 19, 1, _FE),
    _r("LED_Alarm_Condition", 20, 1, _FE),
    _r("P_Coefficient", 21, 1, _FE),
    _r("D_Coefficient", 22, 1, _FE),
    _r("I_Coefficient", 23, 1, _FE),
    _r("Minimum_Startup_Force", 24, 2, _FE),
    _r("CW_Dead_Zone", 26, 1, _FE),
    _r("CCW_Dead_Zone", 27, 1, _FE),
    _r("Protection_Current", 28, 2, _FE),
    _r("Angular_Resolution", 30, 1, _FE),
    _r("Homing_Offset", 31, 2, _FE, "sign_magnitude", 11),
    _r("Operating_Mode", 33, 1, _FE),
    _r("Protective_Torque", 34, 1, _FE),
    _r("Protection_Time", 35, 1, _FE),
    _r("Overload_Torque", 36, 1, _FE),
    _r("Velocity_closed_loop_P_proportional_coefficient", 37, 1, _FE),
    _r("Over_Current_Protection_Time", 38, 1, _FE),
    _r("Velocity_closed_loop_I_integral_coefficient", 39, 1, _FE),
    _r("Torque_Enable", 40, 1, _FE),
    _r("Acceleration", 41, 1, _FE),
    _r("Goal_Position", 42, 2, _FE, "sign_magnitude", 15),
    _r("Goal_Time", 44, 2, _FE),
    _r("Goal_Velocity", 46, 2, _FE, "sign_magnitude", 15),
    _r("Torque_Limit", 48, 2, _FE),
    _r("Lock", 55, 1, _FE),
    _r("Present_Position", 56, 2, _FE, "sign_magnitude", 15),
    _r("Present_Velocity", 58, 2, _FE, "sign_magnitude", 15),
    _r("Present_Load", 60, 2, _FE, "sign_magnitude", 10),
    _r("Present_Voltage", 62, 1, _FE),
    _r("Present_Temperature", 63, 1, _FE),
    _r("Status", 65, 1, _FE),
    _r("Moving", 66, 1, _FE),
    _r("Present_Current", 69, 2, _FE),
)

# ----- Dynamixel X series, Protocol 2.0 (little-endian, two's complement) -----------------------------
_DE = 64  # EEPROM ends at Torque_Enable
_X_COMMON: tuple[Register, ...] = (
    _r("Model_Number", 0, 2, _DE),
    _r("Model_Information", 2, 4, _DE),
    _r("Firmware_Version", 6, 1, _DE),
    _r("ID", 7, 1, _DE),
    _r("Baud_Rate", 8, 1, _DE),
    _r("Return_Delay_Time", 9, 1, _DE),
    _r("Drive_Mode", 10, 1, _DE),
    _r("Operating_Mode", 11, 1, _DE),
    _r("Secondary_ID", 12, 1, _DE),
    _r("Protocol_Type", 13, 1, _DE),
    _r("Homing_Offset", 20, 4, _DE, "twos_complement"),
    _r("Moving_Threshold", 24, 4, _DE),
    _r("Temperature_Limit", 31, 1, _DE),
    _r("Max_Voltage_Limit", 32, 2, _DE),
    _r("Min_Voltage_Limit", 34, 2, _DE),
    _r("PWM_Limit", 36, 2, _DE),
    _r("Velocity_Limit", 44, 4, _DE),
    _r("Max_Position_Limit", 48, 4, _DE),
    _r("Min_Position_Limit", 52, 4, _DE),
    _r("Shutdown", 63, 1, _DE),
    _r("Torque_Enable", 64, 1, _DE),
    _r("LED", 65, 1, _DE),
    _r("Status_Return_Level", 68, 1, _DE),
    _r("Registered_Instruction", 69, 1, _DE),
    _r("Hardware_Error_Status", 70, 1, _DE),
    _r("Velocity_I_Gain", 76, 2, _DE),
    _r("Velocity_P_Gain", 78, 2, _DE),
    _r("Position_D_Gain", 80, 2, _DE),
    _r("Position_I_Gain", 82, 2, _DE),
    _r("Position_P_Gain", 84, 2, _DE),
    _r("Feedforward_2nd_Gain", 88, 2, _DE),
    _r("Feedforward_1st_Gain", 90, 2, _DE),
    _r("Bus_Watchdog", 98, 1, _DE),
    _r("Goal_PWM", 100, 2, _DE, "twos_complement"),
    _r("Goal_Velocity", 104, 4, _DE, "twos_complement"),
    _r("Profile_Acceleration", 108, 4, _DE),
    _r("Profile_Velocity", 112, 4, _DE),
    _r("Goal_Position", 116, 4, _DE, "twos_complement"),
    _r("Realtime_Tick", 120, 2, _DE),
    _r("Moving", 122, 1, _DE),
    _r("Moving_Status", 123, 1, _DE),
    _r("Present_PWM", 124, 2, _DE, "twos_complement"),
    _r("Present_Velocity", 128, 4, _DE, "twos_complement"),
    _r("Present_Position", 132, 4, _DE, "twos_complement"),
    _r("Velocity_Trajectory", 136, 4, _DE, "twos_complement"),
    _r("Position_Trajectory", 140, 4, _DE, "twos_complement"),
    _r("Present_Input_Voltage", 144, 2, _DE),
    _r("Present_Temperature", 146, 1, _DE),
)
#: Current-controlled X models (XL330, XM430, XM540) have a current limit and goal/present current.
X_CURRENT_TABLE: dict[str, Register] = _table(
    *_X_COMMON,
    _r("Current_Limit", 38, 2, _DE),
    _r("Goal_Current", 102, 2, _DE, "twos_complement"),
    _r("Present_Current", 126, 2, _DE, "twos_complement"),
)
#: XL430 has no current sensing: address 126 is Present_Load (0.1 % of max torque), no 38 or 102.
XL430_TABLE: dict[str, Register] = _table(*_X_COMMON, _r("Present_Load", 126, 2, _DE, "twos_complement"))

#: The bus rate twinarm and LeRobot set the servos to (`twinarm setup-motors`), and every command's default.
DEFAULT_BAUD = 1_000_000
FEETECH_BAUDS: dict[int, int] = {
    0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 76_800, 6: 57_600, 7: 38_400
}
DYNAMIXEL_BAUDS: dict[int, int] = {
    0: 9_600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000, 7: 4_500_000
}

FEETECH_MODES: dict[str, int] = {"position": 0, "velocity": 1, "pwm": 2, "step": 3}
DYNAMIXEL_MODES: dict[str, int] = {
    "current": 0, "velocity": 1, "position": 3, "extended_position": 4, "current_position": 5, "pwm": 16,
}


@dataclass(frozen=True)
class MotorModel:
    """A servo model: which protocol speaks to it, its control table and physical constants.

    `velocity_unit` converts the velocity register to encoder counts per second, `stall_torque`
    (N*m) scales the load register, `defaults` are factory register values the virtual bus starts from.
    """

    name: str
    bus: Literal["feetech", "dynamixel"]
    model_number: int
    table: dict[str, Register]
    resolution: int = 4096
    modes: tuple[int, ...] = ()
    velocity_unit: float = 1.0
    stall_torque: float = 1.0
    current_unit_ma: float = 1.0
    defaults: dict[str, int] = field(default_factory=dict)

    @property
    def bauds(self) -> dict[int, int]:
        return FEETECH_BAUDS if self.bus == "feetech" else DYNAMIXEL_BAUDS

    @property
    def mode_names(self) -> dict[str, int]:
        return FEETECH_MODES if self.bus == "feetech" else DYNAMIXEL_MODES

    def register(self, name: str) -> Register:
        try:
            return self.table[name]
        except KeyError:
            raise KeyError(f"motor model {self.name!r} has no register {name!r}") from None

    def baud_index(self, baud: int) -> int:
        for idx, b in self.bauds.items():
            if b == baud:
                return idx
        raise ValueError(f"{self.name}: baud {baud} not supported; choose one of {sorted(self.bauds.values())}")

    @property
    def counts_per_rad(self) -> float:
        return self.resolution / (2 * math.pi)


_STS_DEFAULTS = {
    "Firmware_Major_Version": 3, "Firmware_Minor_Version": 10, "Baud_Rate": 0, "Return_Delay_Time": 0,
    "Response_Status_Level": 1, "Min_Position_Limit": 0, "Max_Position_Limit": 4095,
    "Max_Temperature_Limit": 70, "Max_Voltage_Limit": 140, "Min_Voltage_Limit": 40, "Max_Torque_Limit": 1000,
    "P_Coefficient": 32, "D_Coefficient": 32, "I_Coefficient": 0, "Protection_Current": 500,
    "Angular_Resolution": 1, "Overload_Torque": 80, "Acceleration": 0, "Torque_Limit": 1000, "Lock": 1,
    "Present_Voltage": 120, "Present_Temperature": 30,
}
_X_DEFAULTS = {
    "Firmware_Version": 48, "Baud_Rate": 3, "Return_Delay_Time": 0, "Operating_Mode": 3, "Protocol_Type": 2,
    "Temperature_Limit": 72, "Max_Voltage_Limit": 140, "Min_Voltage_Limit": 60, "PWM_Limit": 885,
    "Velocity_Limit": 445, "Max_Position_Limit": 4095, "Min_Position_Limit": 0, "Status_Return_Level": 2,
    "Position_P_Gain": 800, "Position_I_Gain": 0, "Position_D_Gain": 0, "Velocity_P_Gain": 100,
    "Velocity_I_Gain": 1920, "Present_Input_Voltage": 120, "Present_Temperature": 30, "Moving_Threshold": 10,
}

_X_VEL = 0.229 / 60.0 * 4096  # one velocity unit is 0.229 rpm

MOTOR_MODELS: dict[str, MotorModel] = {
    m.name: m
    for m in (
        MotorModel("sts3215", "feetech", 777, STS_TABLE, modes=(0, 1, 2, 3), stall_torque=2.94,
                   current_unit_ma=6.5, defaults=_STS_DEFAULTS),
        MotorModel("sts3250", "feetech", 2825, STS_TABLE, modes=(0, 1, 2, 3), stall_torque=4.9,
                   current_unit_ma=6.5, defaults=_STS_DEFAULTS),
        MotorModel("xl430-w250", "dynamixel", 1060, XL430_TABLE, modes=(1, 3, 4, 16), velocity_unit=_X_VEL,
                   stall_torque=1.4, defaults={**_X_DEFAULTS, "Baud_Rate": 1}),
        # XC430-W150 (ALOHA's WidowX leader grippers): the XL430's control table; stall torque at 12 V.
        MotorModel("xc430-w150", "dynamixel", 1070, XL430_TABLE, modes=(1, 3, 4, 16), velocity_unit=_X_VEL,
                   stall_torque=1.6, defaults={**_X_DEFAULTS, "Baud_Rate": 1}),
        MotorModel("xl330-m288", "dynamixel", 1200, X_CURRENT_TABLE, modes=(0, 1, 3, 4, 5, 16),
                   velocity_unit=_X_VEL, stall_torque=0.52, current_unit_ma=1.0,
                   defaults={**_X_DEFAULTS, "Current_Limit": 1750}),
        MotorModel("xl330-m077", "dynamixel", 1190, X_CURRENT_TABLE, modes=(0, 1, 3, 4, 5, 16),
                   velocity_unit=_X_VEL, stall_torque=0.215, current_unit_ma=1.0,
                   defaults={**_X_DEFAULTS, "Current_Limit": 1750}),
        MotorModel("xm430-w350", "dynamixel", 1020, X_CURRENT_TABLE, modes=(0, 1, 3, 4, 5, 16),
                   velocity_unit=_X_VEL, stall_torque=4.1, current_unit_ma=2.69,
                   defaults={**_X_DEFAULTS, "Baud_Rate": 1, "Current_Limit": 1193}),
        MotorModel("xm540-w270", "dynamixel", 1120, X_CURRENT_TABLE, modes=(0, 1, 3, 4, 5, 16),
                   velocity_unit=_X_VEL, stall_torque=10.6, current_unit_ma=2.69,
                   defaults={**_X_DEFAULTS, "Baud_Rate": 1, "Current_Limit": 2047}),
    )
}
MODEL_BY_NUMBER: dict[int, MotorModel] = {m.model_number: m for m in MOTOR_MODELS.values()}


def get_model(name: str) -> MotorModel:
    """Look a servo model up by the name used in `JointSpec.motor_model` (`sts3215`, `xl430-w250`)."""
    try:
        return MOTOR_MODELS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown motor model {name!r}; known models: {sorted(MOTOR_MODELS)}") from None
