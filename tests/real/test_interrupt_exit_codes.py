"""Ctrl-C ends every command with exit status 130, and a SIGTERM/SIGHUP the real env turned into a
KeyboardInterrupt carrying `.signum` N with 128 + N, what was finished saved as before: `teleop --record` exited 1
on Ctrl-C, `teleop` 0 and `eval` 130."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from real_helpers import Leader, bounded

from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

SIM = "twinarm/SO101-PickCube-v0"


class Hangup(KeyboardInterrupt):
    """What the real env raises on SIGHUP (twinarm.real.errors.TerminationSignal): a KeyboardInterrupt with .signum."""

    signum = int(signal.SIGHUP)


def interrupt_after(monkeypatch: pytest.MonkeyPatch, target: str, calls: int, exc: type[KeyboardInterrupt]) -> None:
    """Make `target` (module:Class.method or module:function) raise `exc` on its `calls`-th call, as Ctrl-C would."""
    import importlib

    module_name, _, attr = target.partition(":")
    owner = importlib.import_module(module_name)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    original, count = getattr(owner, name), {"n": 0}

    def wrapper(*a, **k):  # noqa: ANN002, ANN003, ANN202
        count["n"] += 1
        if count["n"] >= calls:
            raise exc()
        return original(*a, **k)

    monkeypatch.setattr(owner, name, wrapper)


@pytest.mark.parametrize(("exc", "status"), [(KeyboardInterrupt, 130), (Hangup, 129)])
def test_teleop_record_stopped_keeps_its_episodes_and_exits_128_plus_the_signal(
        exc: type[KeyboardInterrupt], status: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    interrupt_after(monkeypatch, "twinarm.cli.teleop_record:TeleopPolicy.__call__", 25, exc)  # in episode 2
    leader = VirtualArm(SO101)  # an SO-101 leader has the follower's servos
    root = tmp_path / "demos"
    with PtyServer(VirtualBus(leader)) as server:
        cal = leader.ideal_calibration().save(tmp_path / "leader.json")
        argv = ["teleop", "--env", SIM, "--leader-port", server.port, "--leader-calibration", str(cal),
                "--record", str(root), "--episodes", "3", "--episode-time", "0.5", "--reset-time", "0",
                "--image-size", "48", "64"]  # fmt: skip
        assert bounded(lambda: main(argv), timeout_s=120) == status
    out = capsys.readouterr().out
    assert f"{root}: saved 1 episode(s) this run" in out


def test_teleop_without_recording_exits_130_on_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    interrupt_after(monkeypatch, "twinarm.real.teleop:teleoperate", 1, KeyboardInterrupt)
    leader = VirtualArm(SO101)
    with PtyServer(VirtualBus(leader)) as server:
        cal = leader.ideal_calibration().save(tmp_path / "leader.json")
        argv = ["teleop", "--env", SIM, "--leader-port", server.port, "--leader-calibration", str(cal),
                "--image-size", "48", "64"]  # fmt: skip
        assert bounded(lambda: main(argv), timeout_s=120) == 130


def test_eval_stopped_by_a_hangup_exits_129(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture, tiny_act_checkpoint) -> None:  # noqa: ANN001
    interrupt_after(monkeypatch, "twinarm.agents.eval:evaluate", 1, Hangup)
    argv = ["eval", "--policy", str(tiny_act_checkpoint()), "--env", SIM, "--episodes", "1", "--out",
            str(tmp_path / "eval"), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 129


def test_virtual_arm_exits_130_on_ctrl_c() -> None:
    leader = Leader()
    time.sleep(0.5)  # serving (its ports are printed just before it starts its servers)
    err = leader.stop()
    assert leader.proc.returncode == 130, err
