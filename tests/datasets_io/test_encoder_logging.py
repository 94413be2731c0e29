"""SVT-AV1 logs its whole configuration (`Svt[info]` lines) to stderr from C at every encoder it opens; an AV1
recording keeps its errors only."""

from __future__ import annotations

import os
import subprocess
import sys

ENCODE = """
import numpy as np
from twinarm.datasets_io.video import EpisodeEncoder
enc = EpisodeEncoder(64, 48, 30, codec="av1")
for _ in range(4):
    enc.add(np.zeros((48, 64, 3), np.uint8))
{end}
"""


def stderr_of(end: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    run = subprocess.run([sys.executable, "-c", ENCODE.format(end=end)], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stderr


def test_av1_encoding_prints_svts_errors_only() -> None:
    assert "Svt[" not in stderr_of("assert enc.finish()")
    # an encoder left without its end of stream is an SVT error, still shown
    assert "Svt[error]" in stderr_of("pass")
