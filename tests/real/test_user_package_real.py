"""The real twin of a user's own task on a user's own arm variant (tests/fixtures/user_package/mytasks): made from
the user's id, on the virtual arm of that variant, with the sim id's spaces and the task's instruction. In a
subprocess, so that the registrations stay out of this test process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "fixtures" / "user_package"


def test_a_users_task_on_a_users_arm_has_a_real_twin_with_the_sims_spaces(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import gymnasium as gym
        import numpy as np
        import twinarm
        from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus
        from twinarm.registration import entry_for

        entry = entry_for("mytasks/SO101Small-ReachLow-Real-v0")  # imports mytasks, named by the namespace
        arm = twinarm.get_arm(entry.arm)
        sim = gym.make(entry.sim_id)
        virtual = VirtualArm(arm, step_mode="lockstep")
        with PtyServer(VirtualBus(virtual)) as server:
            real = gym.make(entry.real_id, port=server.port, calibration=virtual.ideal_calibration(), cameras={},
                            pace=False)
            try:
                assert real.unwrapped.instruction == "Touch the point just above the table."
                assert real.action_space == sim.action_space
                assert real.observation_space["agent_pos"] == sim.observation_space["agent_pos"]
                obs, info = real.reset()
                obs, *_ = real.step(obs["agent_pos"])
                assert real.observation_space.contains(obs)
            finally:
                real.close()
        print("ok", arm.display_name)
    """)
    env = {**os.environ, "PYTHONPATH": str(PACKAGE), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok SO-101 (96x128 cameras)"
