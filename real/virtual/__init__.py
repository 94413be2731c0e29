"""The virtual servo bus: servos that answer the real Feetech/Dynamixel wire protocol on a pseudo-terminal,
with joints backed by a MuJoCo arm (or an in-memory stand-in for protocol tests)."""

from twinarm.real.virtual.arm import JointMount, VirtualArm
from twinarm.real.virtual.backend import InMemoryBackend, JointBackend
from twinarm.real.virtual.bus import Faults, VirtualBus
from twinarm.real.virtual.pty_server import PtyServer

__all__ = ["Faults", "InMemoryBackend", "JointBackend", "JointMount", "PtyServer", "VirtualArm", "VirtualBus"]
