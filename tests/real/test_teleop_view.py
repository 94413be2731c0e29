"""`twinarm teleop --view`: the follower's cameras in a window on an X display (Xvfb here), simulated arm or
real (the virtual arm with a file camera), and keys typed into it (xdotool) driving the arm and ending the
recording, with no terminal at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from real_helpers import bounded
from real_media import make_video

from twinarm.arms import SO101
from twinarm.cli.keyboard_tool import KeyboardToolTeleop
from twinarm.cli.teleop_view import FollowerView, window_key
from twinarm.datasets_io.reader import column_to_numpy
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

SIM = "twinarm/SO101-PickCube-v0"
SIZE = (48, 64)


def _frames(root: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    return {k: column_to_numpy(table[k], k) for k in ("action", "observation.state", "episode_index")}


class Cli:
    """`python -m twinarm.cli.main ARGV` with no terminal (stdin /dev/null) on `display`; its output lines."""

    def __init__(self, argv: list[str], display: str) -> None:
        self.env = {**os.environ, "DISPLAY": display}
        self.proc = subprocess.Popen([sys.executable, "-m", "twinarm.cli.main", *argv], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, needle: str) -> None:
        deadline = time.monotonic() + 60  # the deadline only stops a hang
        while not any(needle in line for line in self.lines):
            assert self.proc.poll() is None and time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.05)

    def keys(self, *keys: str) -> None:
        """Type into the command's window at a person's pace (the window hands over one key per frame)."""
        xdo = [shutil.which("xdotool") or "xdotool"]
        window = subprocess.run([*xdo, "search", "--name", "twinarm teleop"], env=self.env, capture_output=True,
                                text=True, timeout=30).stdout.split()[-1]  # fmt: skip
        subprocess.run([*xdo, "key", "--delay", "150", "--window", window, *keys], env=self.env, timeout=30)

    def finish(self) -> str:
        try:
            assert self.proc.wait(timeout=60) == 0, "".join(self.lines)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(timeout=10)
        return "".join(self.lines)


def test_view_tiles_the_cameras_as_one_bgr_image() -> None:
    a = np.zeros((4, 6, 3), np.uint8)
    b = np.zeros((2, 3, 3), np.uint8)
    b[..., 0] = 200  # red in RGB
    image = FollowerView.tile({"front": a, "wrist": b})
    assert image.shape == (4, 9, 3)
    assert (image[:2, 6:, 2] == 200).all() and (image[:2, 6:, :2] == 0).all()  # red is BGR's last channel
    assert (image[2:, 6:] == 0).all()  # the shorter image padded below



VIEW_SCRIPT = """
import cv2, numpy as np
from twinarm.cli.teleop_sim import make_sim_follower
from twinarm.cli.teleop_view import FollowerView, Viewed
import sys
sim = make_sim_follower("twinarm/SO101-PickCube-v0", (48, 64), 0.2, obs_type=sys.argv[1])
f = Viewed(sim, FollowerView("twinarm teleop: test"), sim.status)
shown = []
show = f.view.show
f.view.show = lambda pixels, status: (shown.append(sorted(pixels)), show(pixels, status))
f.reset(seed=0)
for _ in range(5):
    f.step(f.joint_positions())
print("visible", cv2.getWindowProperty(f.view.title, cv2.WND_PROP_VISIBLE))
print("shown", len(shown), shown[-1])
f.close()
print("closed")
"""


@pytest.fixture
def x_display() -> Iterator[str]:
    """A virtual X display (Xvfb, which `bash tools/setup.sh test` installs) for the window tests: its DISPLAY."""
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (`bash tools/setup.sh test` installs it)")
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen([exe, "-displayfd", str(write_fd), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(write_fd)
    try:
        display = bounded(lambda: os.read(read_fd, 16), timeout_s=30).decode().strip()
        assert display.isdigit(), display
        yield f":{display}"
    finally:
        os.close(read_fd)
        xvfb.terminate()
        xvfb.wait(timeout=10)


@pytest.mark.parametrize(("obs_type", "images"), [("pixels_agent_pos", "['front', 'wrist']"), ("state", "['render']")])
def test_view_opens_a_window_on_an_x_display(x_display: str, obs_type: str, images: str) -> None:
    """Every observation is shown: the cameras, or with state observations the sim's first camera, drawn."""
    run = subprocess.run([sys.executable, "-c", VIEW_SCRIPT, obs_type], env={**os.environ, "DISPLAY": x_display},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "visible 1.0" in run.stdout and f"shown 6 {images}" in run.stdout and "closed" in run.stdout


def test_window_key_codes() -> None:
    assert [window_key(c) for c in (65361, 65363, 2424832, 63235, 27, ord("q"), ord(" "), 65505)] == [
        "left", "right", "left", "right", "esc", "q", " ", None]  # fmt: skip


def test_cli_keys_typed_in_the_view_drive_the_sim_and_end_the_recording(x_display: str, tmp_path: Path) -> None:
    """No terminal at all (stdin is /dev/null): `--keyboard tool --view` takes its keys from the window."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (`bash tools/setup.sh test` installs it)")
    root = tmp_path / "kb_window"
    cli = Cli(["teleop", "--env", SIM, "--keyboard", "tool", "--view", "--record", str(root), "--episodes", "1",
               "--episode-time", "60", "--image-size", *map(str, SIZE)], x_display)  # fmt: skip
    cli.wait_for("recording episode 1/1")
    time.sleep(1.0)  # the arm settles at its start
    cli.keys("r", "r", "r", "c")  # 3 cm up, close the gripper
    time.sleep(2.0)
    cli.keys("Escape")  # the episode ends now, kept, and the run stops
    assert "saved 1 episode(s) this run" in cli.finish()
    frames = _frames(root)
    action = SO101.from_lerobot(frames["action"])
    state = SO101.from_lerobot(frames["observation.state"])
    assert action[-1, 5] == pytest.approx(0.0, abs=1e-3)  # c: the gripper told to close
    ik = KeyboardToolTeleop(SO101, SO101.home_pose).ik
    rise = ik.tcp_pose(state[-1, :5])[0][2] - ik.tcp_pose(state[0, :5])[0][2]
    assert rise == pytest.approx(0.03, abs=0.008)  # r r r: 3 cm up


def test_cli_view_of_the_real_arm_shows_its_camera_and_takes_keys(x_display: str, tmp_path: Path) -> None:
    """The real arm (the virtual one on a pty, read through the Feetech SDK) with a camera (a video file):
    keys typed in the window nudge its joints, and the recorded episode holds the camera's frames."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (`bash tools/setup.sh test` installs it)")
    video = make_video(tmp_path / "front.mp4", n_frames=600, height=96, width=128)
    follower = VirtualArm(SO101, step_mode="lockstep")
    root = tmp_path / "real_view"
    with PtyServer(VirtualBus(follower)) as server:
        cal = follower.ideal_calibration().save(tmp_path / "follower.json")
        cli = Cli(["teleop", "--arm", "so101", "--port", server.port, "--calibration", str(cal), "--camera",
                   f"front={video}", "--image-size", "96", "128", "--keyboard", "--view", "--record", str(root),
                   "--task", "Wave.", "--episodes", "1", "--episode-time", "60"], x_display)  # fmt: skip
        cli.wait_for("recording episode 1/1")
        time.sleep(1.0)
        cli.keys("q", "q", "q")  # shoulder_pan up three 0.03 rad steps
        time.sleep(1.0)
        cli.keys("Escape")
        assert "saved 1 episode(s) this run" in cli.finish()
    frames = _frames(root)
    action = SO101.from_lerobot(frames["action"])
    assert action[-1, 0] - action[0, 0] == pytest.approx(0.09, abs=1e-3)
    assert not any(s.torque_on for s in follower.servos)  # limp again at the end
    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    assert "observation.images.front" not in table.column_names  # video, not parquet images
    assert (root / "videos" / "observation.images.front").is_dir()
