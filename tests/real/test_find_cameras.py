"""`twinarm find-cameras`: every source that gives a frame is reported with its size, saved as a PNG and turned
into a `--camera` flag; one that does not is named with the reason; none at all is exit code 1."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from real_media import make_realsense_recording, make_video

from twinarm.cli.main import main


def test_find_cameras_checks_files_and_recordings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    video = make_video(tmp_path / "cam.mp4", n_frames=10, height=96, width=128)
    bag = make_realsense_recording(tmp_path / "rs.db3", n_frames=10, height=96, width=128)
    out = tmp_path / "frames"
    argv = ["find-cameras", "--max-index", "0", "--camera", f"front={video}", "--camera", f"wrist=realsense:{bag}",
            "--camera", f"top={tmp_path / 'missing.mp4'}", "--out", str(out)]  # fmt: skip
    assert main(argv) == 1  # top, asked for by name, gives no frame
    captured = capsys.readouterr()
    text = captured.out
    assert f"--camera top={tmp_path / 'missing.mp4'} gave no frame" in captured.err
    assert "front                    96x128 @ 30 fps " in text and "wrist                    96x128" in text  # HxW
    # The recording's device reports its focal length (500 px on 96 rows): its field of view is printed.
    assert "fovy 11.0 deg (reported)" in text and text.count("(reported)") == 1
    assert "top                      does not open" in text and "missing.mp4" in text
    assert f"flags for teleop / eval: --camera front={video} --camera wrist=realsense:{bag}" in text
    for name in ("front", "wrist"):
        assert cv2.imread(str(out / f"{name}.png")).shape == (96, 128, 3)
    assert not (out / "top.png").exists()


def test_no_camera_is_exit_code_one(capsys: pytest.CaptureFixture) -> None:
    assert main(["find-cameras", "--max-index", "0"]) == 1
    assert "no camera found" in capsys.readouterr().out
