"""Keys from a terminal (a pty here): decoding, one reader shared by keyboard teleop and the recording keys, the
terminal restored; and `teleop --record` steered by LeRobot's recording keys (end now, re-record, stop)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from real_helpers import CliRun

from twinarm.arms import SO101
from twinarm.datasets_io.validator import check_dataset
from twinarm.real.teleop import KeyboardTeleop
from twinarm.real.terminal_keys import TerminalKeys, decode_keys
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

pytestmark = pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")

RIGHT, LEFT, ESC = b"\x1b[C", b"\x1b[D", b"\x1b"


def test_decode_keys() -> None:
    assert decode_keys("qa\x1b[C\x1b[D\x1bOA\x1b") == ["q", "a", "right", "left", "up", "esc"]
    assert decode_keys("\x1b\x1bx") == ["esc"]  # Esc, then Alt+x (dropped: not Esc)
    assert decode_keys("\x1b[15~w") == ["w"]  # F5 is dropped, the key after it kept


def test_one_reader_feeds_keyboard_teleop_and_other_listeners(terminal) -> None:
    master, stream = terminal
    before = termios.tcgetattr(stream.fileno())
    keys = TerminalKeys(stream)
    try:
        assert not termios.tcgetattr(stream.fileno())[3] & termios.ICANON  # cbreak: keys arrive one by one
        kb = KeyboardTeleop(SO101, np.zeros(6), step=0.1, keys=keys)
        seen: list[str] = []
        keys.subscribe(seen.append)
        os.write(master, b"qq" + RIGHT + b"w")
        deadline = time.monotonic() + 5
        while len(seen) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == ["q", "q", "right", "w"]
        np.testing.assert_allclose(kb.get_action(), [0.2, 0.1, 0, 0, 0, 0])
        with keys.suspended():  # a prompt's input() gets the terminal in line mode, and its keys
            assert termios.tcgetattr(stream.fileno())[3] & termios.ICANON
            os.write(master, b"y\n")
            assert stream.readline() == "y\n" and seen == ["q", "q", "right", "w"]
        assert not termios.tcgetattr(stream.fileno())[3] & termios.ICANON
        os.write(master, RIGHT)
        deadline = time.monotonic() + 5
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen[4:] == ["right"]  # read again afterwards
    finally:
        keys.close()
    assert termios.tcgetattr(stream.fileno()) == before  # the terminal's settings are back


def test_terminal_keys_refuse_a_non_terminal(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w+") as f, pytest.raises(OSError, match="interactive terminal"):
        TerminalKeys(f)


@contextlib.contextmanager
def teleop_recording(tmp_path: Path, root: Path, capsys, flags: list[str]) -> Iterator[tuple[VirtualArm, CliRun]]:
    """`teleop --record root` of a virtual SO-101 follower driven by a virtual leader (each on its own pty), running
    on a thread with `flags`: (the follower, the run) while both servers answer."""
    follower, leader = VirtualArm(SO101, step_mode="lockstep"), VirtualArm(SO101)
    with PtyServer(VirtualBus(follower)) as f_server, PtyServer(VirtualBus(leader)) as l_server:
        f_cal = follower.ideal_calibration().save(tmp_path / "f.json")
        l_cal = leader.ideal_calibration().save(tmp_path / "l.json")
        argv = ["teleop", "--arm", "so101", "--port", f_server.port, "--calibration", str(f_cal),
                "--leader-port", l_server.port, "--leader-calibration", str(l_cal), "--record", str(root),
                "--task", "Pick up the cube.", *flags]  # fmt: skip
        yield follower, CliRun(argv, capsys)


def test_teleop_record_keys_end_rerecord_and_stop(terminal, tmp_path: Path, capsys, monkeypatch) -> None:
    """Three 60 s episodes with 60 s reset periods asked for; the keys end episode 1 after a moment, skip the
    reset, discard episode 2 and record it again, then stop: two short episodes saved, exit code 0."""
    master, stream = terminal
    monkeypatch.setattr("sys.stdin", stream)
    root = tmp_path / "demos"
    flags = ["--episodes", "3", "--episode-time", "60", "--reset-time", "60"]
    with teleop_recording(tmp_path, root, capsys, flags) as (follower, run):
        steps = [("recording episode 1/3", 1, RIGHT), ("episode 1 saved; reset the scene", 1, RIGHT),
                 ("recording episode 2/3", 1, LEFT), ("episode 2 discarded; reset the scene", 1, RIGHT),
                 ("recording episode 2/3", 2, ESC)]  # fmt: skip
        for i, (needle, count, key) in enumerate(steps):
            run.out.wait_for(needle, count)
            time.sleep(1.3 if i == 0 else 0.3)  # a few control steps of it (the first: past its status line)
            os.write(master, key)
        text = run.finish("teleop --record")
    assert "keys: -> end the episode" in text and "1 episode(s) discarded and recorded again" in text
    assert "saved 2 episode(s) this run" in text
    assert re.search(r"episode 1/3: +5\d s left \| loop", text)  # the status line, redrawn each second
    assert check_dataset(root, deep=True) == []
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2
    # Each episode was cut short by a key, far below the 60 s (1800 frames) asked for.
    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    lengths = np.bincount(table.column("episode_index").to_numpy())
    assert len(lengths) == 2 and all(0 < n < 300 for n in lengths), lengths
    assert not any(s.torque_on for s in follower.servos)


def test_eval_on_the_real_arm_keys_end_an_episode_and_the_run(terminal, tmp_path: Path, capsys, monkeypatch,
                                                               tiny_act_checkpoint) -> None:
    """`eval` on a -Real id from a terminal: right arrow ends the running episode (it counts as it stands), Esc
    ends the next one and the run; the prompts' input() still works around the key reader (none here)."""
    master, stream = terminal
    monkeypatch.setattr("sys.stdin", stream)
    arm = VirtualArm(SO101, step_mode="lockstep")
    out_dir = tmp_path / "eval"
    with PtyServer(VirtualBus(arm)) as server:
        cal = arm.ideal_calibration().save(tmp_path / "f.json")
        argv = ["eval", "--policy", str(tiny_act_checkpoint()), "--env", "twinarm/SO101-PickCube-Real-v0",
                "--port", server.port, "--calibration", str(cal), "--episodes", "3", "--max-steps", "900",
                "--reset-time", "0", "--no-ask-success", "--videos", "0", "--threads", "1", "--out", str(out_dir)]  # fmt: skip
        run = CliRun(argv, capsys)
        run.out.wait_for("episode 1/3 starts")
        time.sleep(1.5)  # into the episode (30 s long unless cut)
        os.write(master, RIGHT)
        run.out.wait_for("eval 1/3")
        time.sleep(1.5)
        os.write(master, ESC)
        text = run.finish("eval")
    assert "keys: -> end the episode now" in text and "stopped by Esc after 2 of 3 episodes" in text
    lengths = [e["length"] for e in json.loads((out_dir / "eval_info.json").read_text())["per_episode"]]
    assert len(lengths) == 2 and all(0 < n < 900 for n in lengths), lengths
    assert not any(s.torque_on for s in arm.servos)


def test_teleop_record_saves_a_demonstration_again_after_a_failed_save(terminal, tmp_path: Path, capsys,
                                                                      monkeypatch) -> None:
    """The disk is full when episode 1 is saved: the operator is asked, frees space, presses Enter, and the same
    demonstration is saved (not lost); episode 2 follows as usual."""
    import errno

    from twinarm.datasets_io.writer import DatasetWriter

    master, stream = terminal
    monkeypatch.setattr("sys.stdin", stream)
    real_commit, lengths = DatasetWriter.commit, []

    def full_once(self: DatasetWriter, episode) -> int:
        if not lengths:
            lengths.append(episode.length)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_commit(self, episode)

    monkeypatch.setattr(DatasetWriter, "commit", full_once)
    root = tmp_path / "demos"
    flags = ["--episodes", "2", "--episode-time", "1", "--reset-time", "0"]
    with teleop_recording(tmp_path, root, capsys, flags) as (follower, run):
        run.out.wait_for("press Enter to save it again")
        assert follower.servos[0].torque_on  # the arm holds while the operator sees to the disk
        os.write(master, b"\n")
        text = run.finish("teleop --record")
    assert re.search(r"saving episode 1 into \S+ failed: OSError: \[Errno 28\] No space left", text)
    assert "episode 1 saved" in text and "saved 2 episode(s) this run" in text
    assert check_dataset(root, deep=True) == []
    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    assert np.bincount(table.column("episode_index").to_numpy())[0] == lengths[0]  # the demonstration kept
    assert not any(s.torque_on for s in follower.servos)
