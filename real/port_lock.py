"""One program per arm: an exclusive lock on the serial device for as long as a bus holds it open.

Two programs on one bus interleave their packets on the wire, and the one that exits first turns torque off under
the other, which then drives a limp arm without noticing. The lock is a `flock` on a second descriptor of the
device, not on the SDK's, because the SDK closes and reopens its own at every baud change.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from twinarm.real.errors import PortBusyError


def port_holders(port: str) -> list[int]:
    """Other processes with `port` open (best effort: /proc, only the ones this user may look into)."""
    try:
        device = os.stat(port).st_rdev
    except OSError:
        return []
    pids = filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else [])
    return [int(pid) for pid in pids if int(pid) != os.getpid() and _has_open(pid, device)]


def _has_open(pid: str, device: int) -> bool:
    """Whether process `pid` has the character device `device` open (False where /proc does not say)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == device:
            return True
    return False


def lock_port(port: str) -> int | None:
    """Take the exclusive lock on `port`; the descriptor holding it (close it to release), or None where the
    device cannot be opened or takes no locks (the SDK's own open then reports the port). Raises PortBusyError
    when another program holds it."""
    if not os.path.exists(port):
        return None
    try:
        fd = os.open(port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            holders = port_holders(port)
            here = not holders and _has_open("self", os.stat(port).st_rdev)
            raise PortBusyError(port, holders, this_process=here) from None
        return None
    return fd


def unlock_port(fd: int | None) -> None:
    """Release a lock `lock_port` took (closing its descriptor releases it)."""
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
