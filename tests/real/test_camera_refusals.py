"""Bad camera input is refused at once, naming the flag or file at fault and the way out: a lens file that would
turn every frame black or zoom it (before a recording, not after it), a RealSense serial that is not connected
(without librealsense's silent wait), find-cameras' and fit-camera's output paths (without a traceback)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from real_helpers import bounded, lens_file, usage_error
from real_media import make_video

from twinarm.cli.main import main
from twinarm.real.cameras import make_camera
from twinarm.real.cameras.base import CameraError
from twinarm.real.cameras.lens import Lens

SIM = "twinarm/SO101-PickCube-v0"


# ----- lens files -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "dist", "field"), [
    ([[0, 0, 0], [0, 0, 0], [0, 0, 0]], None, "focal lengths fx 0, fy 0"),
    ([[500, 0, 900], [0, 500, 240], [0, 0, 1]], None, "principal point (900, 240) lies outside its 640x480"),
    (None, [0.1, float("nan"), 0, 0, 0], "dist_coeffs"),
])  # fmt: skip
def test_a_lens_that_cannot_map_a_frame_is_refused_on_load(tmp_path: Path, k, dist, field: str) -> None:  # noqa: ANN001
    """An all-zero camera matrix used to be taken: every frame came out black (mean 0.0) and the recording lost."""
    path = lens_file(tmp_path / "lens.json", k=k, dist=dist)
    with pytest.raises(ValueError, match="lens file .*lens.json") as info:
        Lens.load(path)
    assert field in str(info.value)


def test_teleop_refuses_a_zero_lens_before_anything_opens(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = lens_file(tmp_path / "zero.json", k=[[0.0] * 3] * 3)
    line = usage_error(["teleop", "--port", "/dev/null", "--calibration", "c.json", "--keyboard",
                        "--camera", "front=0", "--lens", f"front={bad}"], capsys)  # fmt: skip
    assert f"--lens front={bad}: lens file {bad}: camera_matrix focal lengths fx 0, fy 0" in line


def test_a_lens_for_another_frame_size_is_refused_at_the_first_frame(tmp_path: Path) -> None:
    """A 100x120 lens on 640x480 frames came out as a zoomed picture, silently."""
    video = make_video(tmp_path / "cam.mp4", n_frames=5)
    lens = lens_file(tmp_path / "small.json", size=(100, 120))
    cam = make_camera({"type": "opencv", "index_or_path": str(video), "lens": str(lens)}, name="front")
    with pytest.raises(CameraError, match=r"camera 'front': lens file .*small.json is for frames of 120x100, "
                                          r"these are 640x480"):  # fmt: skip
        bounded(lambda: cam.connect(timeout_s=5.0))
    assert not cam.is_connected


def test_fit_camera_refuses_a_lens_for_another_picture_size(tmp_path: Path) -> None:
    picture = tmp_path / "shot.png"
    cv2.imwrite(str(picture), np.zeros((480, 640, 3), np.uint8))
    lens = lens_file(tmp_path / "small.json", size=(100, 120))
    with pytest.raises(SystemExit) as info:
        main(["fit-camera", "--env", SIM, "--image", str(picture), "--lens", str(lens), "--board-center", "0.25",
              "0", "--out", str(tmp_path / "fit")])  # fmt: skip
    assert f"--lens: lens file {lens} is for frames of 120x100, these are 640x480, another aspect ratio" in str(info.value.code)
    assert str(picture) in str(info.value.code)


# ----- find-cameras, fit-camera --print-board ------------------------------------------------------------------
def test_find_cameras_flags(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "regular.txt").write_text("x")
    line = usage_error(["find-cameras", "--max-index", "0", "--out", str(tmp_path / "regular.txt")], capsys)
    assert f"--out {tmp_path / 'regular.txt'} is a file: give a folder" in line
    assert "--max-index: must be at least 0, got -3" in usage_error(["find-cameras", "--max-index", "-3"], capsys)


def test_find_cameras_fails_when_a_requested_camera_fails(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One source asked for by name that gives no frame is a failure a script can see, though another works."""
    video = make_video(tmp_path / "cam.mp4", n_frames=5, height=96, width=128)
    argv = ["find-cameras", "--max-index", "0", "--camera", f"front={video}", "--camera",
            f"top={tmp_path / 'missing.mp4'}", "--out", str(tmp_path / "frames")]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert f"--camera front={video}" in captured.out
    assert f"--camera top={tmp_path / 'missing.mp4'} gave no frame" in captured.err


def test_print_board_needs_an_image_path(tmp_path: Path) -> None:
    for path, why in ((tmp_path, "is a folder: give an image file, e.g."), (tmp_path / "board.txt",
                      "give an image file ending in .png or .jpg or .jpeg")):  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main(["fit-camera", "--print-board", str(path)])
        assert f"--print-board {path}" in str(info.value.code) and why in str(info.value.code)
    from PIL import Image

    assert main(["fit-camera", "--print-board", str(tmp_path / "board.jpg")]) == 0
    with Image.open(tmp_path / "board.jpg") as img:  # prints at its size, as the PNG does
        assert img.info["dpi"] == (300, 300)


# ----- RealSense ------------------------------------------------------------------------------------------------
def test_a_realsense_serial_not_connected_fails_at_once(capsys: pytest.CaptureFixture) -> None:
    """librealsense waits ~15 s before "No device connected"; the device list knows at once."""
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="no RealSense with serial 999 .*`twinarm find-cameras` lists them"):
        make_camera({"type": "realsense", "serial_number": "999"}, name="rs").connect()
    assert main(["find-cameras", "--max-index", "0", "--camera", "rs=realsense:999"]) == 1
    assert "no RealSense with serial 999" in capsys.readouterr().out
    assert time.monotonic() - t0 < 8.0

