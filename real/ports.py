"""Finding the arm's serial port: list ports, ask the user to unplug the arm, see which one vanished."""

from __future__ import annotations

from collections.abc import Callable

from serial.tools import list_ports


def serial_ports() -> list[str]:
    """Serial ports the system knows (USB adapters appear as /dev/ttyACM*, /dev/ttyUSB*)."""
    return sorted(p.device for p in list_ports.comports())


def find_port(prompt: Callable[[str], None], ports: Callable[[], list[str]] = serial_ports) -> str:
    """The port that disappears when the user unplugs the arm's USB cable."""
    before = set(ports())
    prompt(f"Ports now: {sorted(before) or 'none'}. Unplug the arm's USB cable, then press Enter.")
    after = set(ports())
    gone = sorted(before - after)
    if len(gone) == 1:
        return gone[0]
    if not gone:
        raise RuntimeError("no port disappeared; was the arm plugged in?")
    raise RuntimeError(f"several ports disappeared ({gone}); unplug only the arm")
