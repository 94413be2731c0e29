"""twinarm: sim-first robot learning for low-cost arms. Importing it registers every env id.

Subpackages (`twinarm.envs`, `twinarm.real`, `twinarm.datasets_io`, `twinarm.agents`) load lazily,
so `import twinarm` stays cheap and never pulls in torch or the servo SDKs.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# MuJoCo picks its GL backend when it is first imported; without a display GLFW cannot work, so
# default to headless EGL before anything imports mujoco (an explicit MUJOCO_GL always wins).
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from twinarm.arms import ARMS, get_arm, register_arm  # noqa: E402
from twinarm.registration import ENV_ENTRIES, TASKS, register_all, register_env  # noqa: E402
from twinarm.spec import ArmSpec, CameraSpec, JointSpec  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "ARMS", "ENV_ENTRIES", "TASKS", "ArmSpec", "CameraSpec", "JointSpec", "get_arm", "register_all", "register_arm",
    "register_env",
]

_SUBPACKAGES = ("envs", "real", "datasets_io", "agents", "assets", "cli")

register_all()


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"twinarm.{name}")
    raise AttributeError(f"module 'twinarm' has no attribute {name!r}")
