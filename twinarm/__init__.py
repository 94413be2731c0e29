"""twinarm: sim-first robot learning for low-cost arms. Importing it registers every env id.

Subpackages (`twinarm.envs`, `twinarm.real`, `twinarm.datasets_io`, `twinarm.agents`) load lazily,
so `import twinarm` stays cheap and never pulls in torch or the servo SDKs.
"""

from __future__ import annotations

import importlib
from typing import Any

from twinarm.arms import ARMS, get_arm
from twinarm.registration import ENV_ENTRIES, TASKS, register_all
from twinarm.spec import ArmSpec, CameraSpec, JointSpec

__version__ = "0.1.0"
__all__ = ["ARMS", "ENV_ENTRIES", "TASKS", "ArmSpec", "CameraSpec", "JointSpec", "get_arm", "register_all"]

_SUBPACKAGES = ("envs", "real", "datasets_io", "agents", "assets", "cli")

register_all()


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"twinarm.{name}")
    raise AttributeError(f"module 'twinarm' has no attribute {name!r}")
