"""A command whose output goes to a reader that stops early (`twinarm envs --real | head -2`) ends quietly, exit
code 1, with no BrokenPipeError traceback or "Exception ignored" note on stderr (docs audit C3)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes")
def test_a_reader_that_closes_after_the_first_line_gets_no_traceback() -> None:
    """The pipe is full when the command starts (a slow reader; `envs --real`'s 4 kB table alone would fit in the
    pipe before `head` exits, which made the failure a race): the reader takes one line and closes, so the
    command's write always meets the closed pipe, whenever it comes."""
    read_fd, write_fd = os.pipe()
    first = b"a first line\n"
    os.write(write_fd, first)
    os.set_blocking(write_fd, False)
    for size in (4096, 1):  # fill it to the last byte
        try:
            while True:
                os.write(write_fd, b"." * size)
        except BlockingIOError:
            pass
    os.set_blocking(write_fd, True)
    env = {k: v for k, v in os.environ.items() if k != "TWINARM_TRACEBACK"}
    env.setdefault("MUJOCO_GL", "egl")
    proc = subprocess.Popen([sys.executable, "-m", "twinarm.cli.main", "envs", "--real"], stdout=write_fd,
                            stderr=subprocess.PIPE, env=env)  # fmt: skip
    os.close(write_fd)
    try:
        assert os.read(read_fd, len(first)) == first  # the reader takes its one line...
    finally:
        os.close(read_fd)  # ... and goes, as `head -1` does
    _, err = proc.communicate(timeout=240)
    text = err.decode()
    assert "Traceback" not in text and "BrokenPipeError" not in text and "Exception ignored" not in text, text
    assert proc.returncode == 1
