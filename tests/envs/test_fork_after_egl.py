"""A vector env forked from a process that had rendered with EGL (Gymnasium's async default on Linux) hung for
ever in its workers' first render: EGL's driver threads do not survive fork(). It now fails at once, naming the
way out. Run in a subprocess, so a regression fails by timeout, not by hanging the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import gymnasium as gym
import twinarm

if __name__ == "__main__":
    env = gym.make("twinarm/SO101-Reach-v0", image_size=(24, 32))
    env.reset(seed=0)  # the parent renders: an EGL context exists before the fork
    env.close()
    kwargs = {"context": sys.argv[1]} if len(sys.argv) > 1 else {}
    vec = gym.make_vec("twinarm/SO101-Reach-v0", num_envs=2, vectorization_mode="async", vector_kwargs=kwargs,
                       image_size=(24, 32))
    try:
        obs, _ = vec.reset(seed=0)
        print("rendered", obs["pixels"]["front"].shape)
    finally:
        vec.close()
"""


def _run(script: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, env=env)


def test_forked_workers_after_egl_fail_at_once_and_forkserver_ones_render(tmp_path: Path) -> None:
    script = tmp_path / "fork_after_egl.py"  # a file: forkserver workers import the main module by its path
    script.write_text(SCRIPT)
    forked = _run(script)
    assert forked.returncode != 0
    assert "ForkedAfterEGLError: this process was forked from one that had rendered with EGL" in forked.stderr
    assert "vector_kwargs={'context': 'forkserver'}" in forked.stderr
    served = _run(script, "forkserver")
    assert served.returncode == 0, served.stderr[-2000:]
    assert "rendered (2, 24, 32, 3)" in served.stdout
