"""Key presses from the terminal (or a window), read by one thread and handed to every listener.

Keyboard teleoperation and the recording keys (end the episode, re-record it, stop) read the same stdin: one
reader decodes it (arrow keys and Esc by name, other keys as their character) so neither steals the other's
keys. The terminal is put in cbreak mode (keys arrive unbuffered, Ctrl-C still interrupts) and restored on
`close()`.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TextIO

#: ANSI/VT100 sequences of the keys with names (normal and application cursor mode).
NAMED_SEQUENCES = {
    "\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left",
    "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left",
}  # fmt: skip
ESC = "\x1b"

Listener = Callable[[str], None]


def decode_keys(data: str) -> list[str]:
    """The keys in one read from a terminal: arrow keys as "up"/"down"/"right"/"left", a lone Esc as "esc",
    other escape sequences (function keys, Alt+key) dropped, every other character as itself."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data[i] != ESC:
            keys.append(data[i])
            i += 1
            continue
        seq = data[i:i + 3]
        if seq in NAMED_SEQUENCES:
            keys.append(NAMED_SEQUENCES[seq])
            i += 3
        elif i + 1 == len(data) or data[i + 1] == ESC:
            keys.append("esc")
            i += 1
        else:  # another sequence (F-keys, Home..., Alt+key): skip to its final byte
            j = i + 2
            while j < len(data) and not ("@" <= data[j] <= "~"):
                j += 1
            i = j + 1
    return keys


class KeyHub:
    """Hands every key pressed, whatever its source, to every listener: a terminal (`TerminalKeys`), a window
    (`press`, e.g. the simulated follower's view), or both."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(key)` for every key pressed from now on (on the source's thread: keep it short)."""
        with self._lock:
            self._listeners.append(listener)

    def press(self, key: str) -> None:
        """A key by name ("left", "esc", "q", ...) from any source, handed to every listener."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(key)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Nothing to hand back without a terminal."""
        yield

    def close(self) -> None:
        """Nothing to release without a terminal."""


class KeyQueue:
    """The keys pressed since the last `take()`, from a `KeyHub` and/or `press()`: what a keyboard teleoperator
    acts on at each control step (thread-safe: keys arrive on the hub's thread)."""

    def __init__(self, keys: KeyHub | None = None) -> None:
        self._keys: deque[str] = deque()
        self._lock = threading.Lock()
        if keys is not None:
            keys.subscribe(self.press)

    def press(self, key: str) -> None:
        with self._lock:
            self._keys.append(key)

    def take(self) -> list[str]:
        """The keys pressed since the last call, in order."""
        with self._lock:
            keys, self._keys = list(self._keys), deque()
        return keys

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


class TerminalKeys(KeyHub):
    """Reads key presses from `stream` (stdin by default, which must be a terminal) on a daemon thread.
    `suspended()` hands the terminal back for a while, e.g. to `input()` a line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        import termios

        super().__init__()
        stream = stream if stream is not None else sys.stdin
        try:
            if not stream.isatty():
                raise OSError
            self._fd = stream.fileno()
            self._saved: Any = termios.tcgetattr(self._fd)
        except (OSError, ValueError, termios.error):  # io.UnsupportedOperation is both OSError and ValueError
            raise OSError("key presses are read from an interactive terminal; stdin is not one") from None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start()

    def _start(self) -> None:
        import tty

        tty.setcbreak(self._fd)
        self._stop.clear()
        self._thread = threading.Thread(target=self._read, daemon=True, name="terminal-keys")
        self._thread.start()

    def _halt(self) -> None:
        import termios

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Stop reading keys and restore the terminal's line mode for the block (a prompt's `input()`)."""
        if self._saved is None:  # closed
            yield
            return
        self._halt()
        try:
            yield
        finally:
            self._start()

    def _read(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 64)
            except OSError:  # the terminal went away
                return
            if not data:
                return
            for key in decode_keys(data.decode(errors="ignore")):
                self.press(key)

    def close(self) -> None:
        """Stop reading and give the terminal its settings back."""
        if self._saved is not None:
            self._halt()
            self._saved = None
