"""`teleop --record --reset-time 0` goes straight on to the next episode; it announced "reset the scene: 0 s of
teleoperation, not recorded" (and ran one unrecorded step)."""

from __future__ import annotations

from pathlib import Path

import pytest
from real_helpers import bounded

from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus


def test_no_reset_period_is_announced_with_reset_time_0(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    leader = VirtualArm(SO101)  # an SO-101 leader has the follower's servos
    with PtyServer(VirtualBus(leader)) as server:
        cal = leader.ideal_calibration().save(tmp_path / "leader.json")
        argv = ["teleop", "--env", "twinarm/SO101-PickCube-v0", "--leader-port", server.port, "--leader-calibration",
                str(cal), "--record", str(tmp_path / "demos"), "--episodes", "2", "--episode-time", "0.3",
                "--reset-time", "0", "--image-size", "48", "64"]  # fmt: skip
        assert bounded(lambda: main(argv), timeout_s=120) == 0
    out = capsys.readouterr().out
    assert "episode 1 saved\n" in out and "recording episode 2/2" in out
    assert "reset the scene" not in out
