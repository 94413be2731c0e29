"""Ctrl-C during training: the step in flight finishes and a checkpoint is written before the run stops (a second
Ctrl-C stops at once), so a run loses at most one step instead of every step since its last `--save-freq`."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType


class GracefulStop:
    """While entered (in the main thread of a one-process run), the first SIGINT only sets `requested`; the
    training loop checks it after each step, saves and raises KeyboardInterrupt. Elsewhere it changes nothing:
    torchrun's ranks would stop at different steps and wait on one another for ever."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: object = None

    def __enter__(self) -> GracefulStop:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: finishing this step and saving a checkpoint (Ctrl-C again stops at once, losing the steps "
              "since the last checkpoint)", file=sys.stderr, flush=True)

    def stop(self, step: int, checkpoint: object) -> None:
        """Say where the run stopped and raise KeyboardInterrupt (the CLI exits 130, as for any Ctrl-C)."""
        print(f"stopped at step {step}: checkpoint {checkpoint}; `--resume` continues from there", file=sys.stderr)
        raise KeyboardInterrupt
