"""fit-camera taking its pictures from a camera (`--camera NAME=SOURCE`): a RealSense recording whose software
device reports its intrinsics (the field of view is then held at the device's), a video file through OpenCV
(fitted), and intrinsics that follow a rotated camera."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from real_media import make_realsense_recording

from twinarm.cli.camera_views import sim_view
from twinarm.cli.main import main
from twinarm.envs.camera_fit import Board, BoardPlacement, pose_change
from twinarm.envs.camera_poses import CameraPose, load_camera_poses
from twinarm.real.cameras.base import Camera

PLACE = BoardPlacement(0.24, 0.03, yaw=12.0, height=0.001)
REAL = CameraPose(pos=(0.5, 0.24, 0.375), quat=(0.3873, 0.1829, 0.4052, 0.8077), fovy=50.0)
ENV = "twinarm/SO101-PickCube-v0"


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return sim_view("so101", "front", REAL, (480, 640), Board(), PLACE)


def fit_args(tmp_path, source: str) -> list[str]:
    return ["fit-camera", "--env", ENV, "--camera", f"front={source}", "--board-center", str(PLACE.x), str(PLACE.y),
            "--board-yaw", str(PLACE.yaw), "--board-height", str(PLACE.height), "--frames", "3", "--out", str(tmp_path)]  # fmt: skip


def test_realsense_recording_gives_the_field_of_view(picture: np.ndarray, tmp_path, capsys) -> None:
    focal = 240.0 / math.tan(math.radians(REAL.fovy / 2))  # the device's calibration: the truth
    bag = make_realsense_recording(tmp_path / "cam.db3", n_frames=6, frames=lambda i: picture, focal=focal)
    assert main(fit_args(tmp_path / "fit", f"realsense:{bag}")) == 0
    text = capsys.readouterr().out
    assert "took 3 picture(s)" in text and "50.00 deg (held: the camera's own calibration" in text, text
    content = json.loads((tmp_path / "fit" / "camera_poses.json").read_text())
    assert content["fit"]["front"]["camera_intrinsics"]["fy"] == pytest.approx(focal, rel=1e-5)
    assert len(content["fit"]["front"]["images"]) == 3 and content["fit"]["front"]["corners"] == 72
    err = pose_change(REAL, load_camera_poses(tmp_path / "fit" / "camera_poses.json")["front"])
    assert err["position_m"] < 0.002 and err["view_angle_deg"] < 0.1 and err["fovy_deg"] == pytest.approx(0, abs=1e-4)
    # --fit-fovy fits it instead (and finds the same).
    assert main([*fit_args(tmp_path / "fitted", f"realsense:{bag}"), "--fit-fovy"]) == 0
    assert "(held" not in capsys.readouterr().out
    fitted = load_camera_poses(tmp_path / "fitted" / "camera_poses.json")["front"]
    assert abs(fitted.fovy - REAL.fovy) < 0.1


def test_video_file_through_opencv_fits_the_field_of_view(picture: np.ndarray, tmp_path, capsys) -> None:
    import av

    path = tmp_path / "cam.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"crf": "18"}
        for _ in range(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    assert main(fit_args(tmp_path / "fit", str(path))) == 0
    assert "(held" not in capsys.readouterr().out  # a webcam reports no calibration: fitted
    err = pose_change(REAL, load_camera_poses(tmp_path / "fit" / "camera_poses.json")["front"])
    assert err["position_m"] < 0.004 and err["view_angle_deg"] < 0.2 and abs(err["fovy_deg"]) < 0.2, err
    with pytest.raises(SystemExit):
        main([*fit_args(tmp_path, str(path)), "--image", str(path)])
    assert "the pictures come from one of them" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--camera front=.*missing.mp4"):
        main(fit_args(tmp_path, str(tmp_path / "missing.mp4")))


class _Reporting(Camera):
    """A camera that reports a 640x480 sensor's intrinsics, principal point off centre."""

    def _open(self) -> None: ...

    def _grab(self) -> np.ndarray | None:
        return None

    def _close(self) -> None: ...

    def _intrinsics(self) -> dict[str, float]:
        return {"fx": 600.0, "fy": 610.0, "ppx": 330.0, "ppy": 250.0, "width": 640, "height": 480}


def test_intrinsics_follow_the_rotation() -> None:
    assert _Reporting().intrinsics()["ppx"] == 330.0
    assert _Reporting(rotation=180).intrinsics() == {"fx": 600.0, "fy": 610.0, "ppx": 309.0, "ppy": 229.0,
                                                      "width": 640, "height": 480}  # fmt: skip
    # Turned a quarter clockwise, pixel (x, y) lands at (479 - y, x): the axes and focal lengths swap.
    assert _Reporting(rotation=90).intrinsics() == {"fx": 610.0, "fy": 600.0, "ppx": 229.0, "ppy": 330.0,
                                                     "width": 480, "height": 640}  # fmt: skip
    assert _Reporting(rotation=-90).intrinsics() == {"fx": 610.0, "fy": 600.0, "ppx": 250.0, "ppy": 309.0,
                                                      "width": 480, "height": 640}  # fmt: skip
