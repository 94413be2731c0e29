"""Serve a `VirtualBus` on a pseudo-terminal: any program that opens the printed /dev/pts/N path
(the vendor SDKs unmodified, LeRobot) talks to the emulated servos as if to a USB serial adapter.

Optional simulated wire time (10 bits per byte at the client's baud, plus each servo's return delay);
the client's baud is read from the terminal settings (TCGETS2), so a wrong baud goes unanswered.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import threading
import time
import tty

from twinarm.real.virtual.bus import VirtualBus

_TCGETS2 = 0x802C542A  # Linux asm-generic ioctl, struct termios2 (44 bytes)


def client_baud(fd: int) -> int | None:
    """The output speed a client set on the terminal behind `fd` (termios2 `c_ospeed`), if readable."""
    buf = array.array("I", [0] * 11)
    try:
        fcntl.ioctl(fd, _TCGETS2, buf, True)
    except OSError:
        return None
    return int(buf[10]) or None  # c_iflag, c_oflag, c_cflag, c_lflag, c_line+c_cc[19] (5 words), c_ispeed, c_ospeed


class PtyServer:
    """A pseudo-terminal with the bus answering behind it; use as a context manager or start()/stop().

    check_baud: drop requests whose client baud differs from each servo's baud (a real servo sees garbage).
    wire_time: delay every reply by the time its bytes and the request's bytes take at the client baud.
    """

    def __init__(self, bus: VirtualBus, check_baud: bool = True, wire_time: bool = False,
                 default_baud: int = 1_000_000) -> None:
        self.bus = bus
        self.check_baud = check_baud
        self.wire_time = wire_time
        self.default_baud = default_baud
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo / line editing, whoever opens it
        self.port = os.ttyname(self.slave)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    def __enter__(self) -> PtyServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is None:
            self.bus.arm.start()
            self._thread = threading.Thread(target=self._serve, name=f"virtual-bus {self.port}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.bus.arm.stop()
        for fd in (self.master, self.slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() (or KeyboardInterrupt)."""
        self.bus.arm.start()
        self._serve()

    def _baud(self) -> int:
        return client_baud(self.slave) or self.default_baud

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master, self._wake_r], [], [], 0.5)
            if self._wake_r in ready or self._stop.is_set():
                return
            if self.master not in ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            t_rx = time.perf_counter()
            self.bytes_in += len(data)
            baud = self._baud()
            replies = self.bus.handle(data, client_baud=baud if self.check_baud else None)
            byte_s = 10.0 / baud
            t = t_rx + (len(data) * byte_s if self.wire_time else 0.0)
            for reply in replies:
                t += reply.delay_s + (len(reply.data) * byte_s if self.wire_time else 0.0)
                # a stop() while late replies wait ends the thread before it writes: past stop()'s join its fds
                # are closed, and their numbers may already be another server's (stray bytes, stolen requests)
                if _sleep_until(t, self._stop):
                    return
                try:
                    os.write(self.master, reply.data)
                except OSError:
                    return
                self.bytes_out += len(reply.data)


def _sleep_until(deadline: float, stop: threading.Event) -> bool:
    """Sleep to `deadline` (perf_counter); the last 0.3 ms is spun for sub-millisecond accuracy. True, at once,
    when `stop` is set meanwhile."""
    while True:
        left = deadline - time.perf_counter()
        if stop.is_set():
            return True
        if left <= 0:
            return False
        if left > 3e-4:
            stop.wait(left - 2e-4)
