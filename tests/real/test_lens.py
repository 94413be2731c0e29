"""Lens calibration and undistortion: pictures of the board rendered by MuJoCo's pinhole, distorted by a known
barrel lens, calibrate it back; the camera then delivers frames as the sim camera's pinhole renders them."""

from __future__ import annotations

import json
import math

import av
import cv2
import mujoco
import numpy as np
import pytest

from twinarm.cli.camera_views import sim_view
from twinarm.cli.main import main
from twinarm.envs.camera_fit import Board, BoardPlacement, calibrate_lens, detect_corners, pose_change
from twinarm.envs.camera_poses import CameraPose, load_camera_poses
from twinarm.real.cameras import make_camera
from twinarm.real.cameras.lens import Lens

SIZE = (480, 640)
FOVY = 62.0  # the real lens's own field of view
FOCAL = (SIZE[0] / 2) / math.tan(math.radians(FOVY / 2))
K = np.array([[FOCAL, 0, (SIZE[1] - 1) / 2], [0, FOCAL, (SIZE[0] - 1) / 2], [0, 0, 1]])
DIST = np.array([-0.28, 0.09, 0.0, 0.0, 0.0])  # a webcam's barrel distortion
BOARD = Board()
PLACE = BoardPlacement(0.25, 0.0, height=0.001)


def look_at(eye: np.ndarray, target: np.ndarray, fovy: float) -> CameraPose:
    """A MuJoCo camera at `eye` looking at `target` (it looks along its -z, +y up)."""
    z = (eye - target) / np.linalg.norm(eye - target)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.stack([x, np.cross(z, x), z], axis=1).ravel())
    return CameraPose(tuple(eye.tolist()), tuple(quat.tolist()), fovy)


def distort(image: np.ndarray) -> np.ndarray:
    """What the lens (K, DIST) sees of a scene MuJoCo rendered through the pinhole K."""
    v, u = np.mgrid[0 : SIZE[0], 0 : SIZE[1]].astype(np.float32)
    pixels = np.stack([u.ravel(), v.ravel()], axis=1)[:, None]
    ideal = cv2.undistortPoints(pixels, K, DIST, P=K).reshape(SIZE[0], SIZE[1], 2)
    return cv2.remap(image, ideal[..., 0], ideal[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def view(eye, target, fovy: float = FOVY) -> np.ndarray:
    return sim_view("so101", "front", look_at(np.asarray(eye, float), np.asarray(target, float), fovy), SIZE, BOARD, PLACE)


@pytest.fixture(scope="module")
def calibration_pictures() -> list[np.ndarray]:
    """The board seen through the lens from eight places around it, 0.26-0.32 m away, tilted 15-40 degrees,
    off the picture's centre (where distortion shows) in turn up, down, left and right."""
    centre, shots = np.array([0.25, 0.0, 0.0]), []
    for az, el, r, dx, dy in ((-80, 55, 0.30, 0.06, 0.05), (-40, 65, 0.28, -0.06, 0.05), (0, 60, 0.30, 0.06, -0.05),
                              (40, 65, 0.28, -0.06, -0.05), (80, 55, 0.30, 0.0, 0.07), (-20, 75, 0.26, 0.07, 0.0),
                              (20, 50, 0.32, -0.07, 0.0), (60, 70, 0.27, 0.0, -0.07)):  # fmt: skip
        a, e = np.radians(az), np.radians(el)
        eye = centre + r * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
        shots.append(distort(view(eye, centre + [dx, dy, 0.0])))
    return shots


def test_calibration_recovers_the_lens(calibration_pictures) -> None:
    views = [detect_corners(p, BOARD, f"shot {i}") for i, p in enumerate(calibration_pictures)]
    k, dist, rms = calibrate_lens(views, SIZE)
    assert rms < 0.5
    np.testing.assert_allclose(k[[0, 1], [0, 1]], FOCAL, rtol=0.01)
    np.testing.assert_allclose(k[:2, 2], K[:2, 2], atol=3.0)
    # The lens maps the picture alike where the board was seen (the coefficients trade off a little, and
    # extrapolate beyond that): compare where points land.
    grid = np.stack(np.meshgrid(np.linspace(130, 520, 7), np.linspace(80, 400, 5)), -1).reshape(-1, 1, 2)
    fitted = cv2.undistortPoints(grid, k, dist, P=K)
    true = cv2.undistortPoints(grid, K, DIST, P=K)
    assert np.abs(fitted - true).max() < 2.0
    with pytest.raises(ValueError, match="needs the board in 4 pictures or more"):
        calibrate_lens(views[:3], SIZE)


def test_frames_come_out_as_the_sim_pinhole_renders_them(tmp_path) -> None:
    """A distorted picture remapped through the lens to the sim's field of view (55) matches MuJoCo's own render
    at 55 degrees; the raw picture does not. Through a camera (a video file) likewise."""
    lens = Lens(SIZE, K, DIST, target_fovy=55.0)
    eye, target = (0.47, 0.26, 0.36), (0.2, 0.0, 0.0)
    raw, sim = distort(view(eye, target)), view(eye, target, fovy=55.0)
    remapped = cv2.remap(raw, *lens.maps(SIZE), cv2.INTER_LINEAR)
    inner = (slice(40, -40), slice(40, -40))  # where the lens saw what the pinhole sees

    def diff(a: np.ndarray) -> float:
        return float(np.abs(a[inner].astype(int) - sim[inner].astype(int)).mean())

    assert diff(remapped) < 4.0 < 12.0 < diff(raw), (diff(remapped), diff(raw))
    path = tmp_path / "lens.json"
    lens.save(path)
    video = tmp_path / "cam.mp4"
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt, stream.options = SIZE[1], SIZE[0], "yuv420p", {"crf": "12"}
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(raw, format="rgb24")))
        container.mux(stream.encode())
    cam = make_camera({"type": "opencv", "index_or_path": str(video), "lens": str(path)}, name="front")
    cam.connect()
    try:
        assert diff(cam.read()) < 5.0
        assert cam.intrinsics()["fy"] == pytest.approx((SIZE[0] / 2) / math.tan(math.radians(27.5)))
    finally:
        cam.disconnect()


def test_cli_calibrates_then_places_through_the_lens(calibration_pictures, tmp_path, capsys) -> None:
    """`fit-camera --calibrate-lens` writes the lens file (its target: the sim camera's field of view); then
    `fit-camera --lens FILE` places the camera from a distorted picture, the field of view held at that target."""
    shots = []
    for i, pic in enumerate(calibration_pictures):
        shots.append(str(tmp_path / f"shot_{i}.png"))
        cv2.imwrite(shots[-1], cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
    out = tmp_path / "fit"
    assert main(["fit-camera", "--env", "twinarm/SO101-PickCube-v0", "--calibrate-lens", "--image", *shots,
                 "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "front lens from 8 picture(s) of 640x480" in text and "a pinhole of fovy 55 deg" in text, text
    lens = Lens.load(out / "lens_front.json")
    assert lens.target_fovy == 55.0 and abs(lens.fovy - FOVY) < 0.5 and lens.info["camera"] == "front"
    # --target-fovy own keeps the lens's field of view (no picture lost) and says how the sim gets it.
    assert main(["fit-camera", "--env", "twinarm/SO101-PickCube-v0", "--calibrate-lens", "--image", *shots,
                 "--target-fovy", "own", "--out", str(tmp_path / "own")]) == 0  # fmt: skip
    assert "the lens's own field of view" in capsys.readouterr().out
    own = Lens.load(tmp_path / "own" / "lens_front.json")
    assert own.target_fovy == pytest.approx(own.fovy) and abs(own.target_fovy - FOVY) < 0.5
    # The real camera, 4 cm and a few degrees off the model's, seen through the lens.
    real = look_at(np.array([0.50, 0.23, 0.38]), np.array([0.21, 0.02, 0.0]), FOVY)
    shot = tmp_path / "pose.png"
    cv2.imwrite(str(shot), cv2.cvtColor(distort(sim_view("so101", "front", real, SIZE, BOARD, PLACE)), cv2.COLOR_RGB2BGR))
    argv = ["fit-camera", "--env", "twinarm/SO101-PickCube-v0", "--image", str(shot), "--lens", str(out / "lens_front.json"),
            "--board-center", str(PLACE.x), str(PLACE.y), "--board-height", str(PLACE.height), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "55.00 deg (held: the lens file's target pinhole" in capsys.readouterr().out
    fitted = load_camera_poses(out / "camera_poses.json")["front"]
    err = pose_change(real, fitted)
    assert err["position_m"] < 0.004 and err["view_angle_deg"] < 0.2 and fitted.fovy == pytest.approx(55.0), err


def test_lens_flags_are_checked(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"image_size": [480, 640], "camera_matrix": [[1, 0], [0, 1]], "dist_coeffs": [0] * 5,
                               "target_fovy": 55}))  # fmt: skip
    with pytest.raises(ValueError, match="bad.json: image_size"):
        Lens.load(bad)
    base = ["teleop", "--arm", "so101", "--keyboard", "--port", "/dev/null", "--calibration", str(bad), "--camera",
            "front=0"]  # fmt: skip
    for lens, says in ((f"wrist={bad}", "no camera named wrist (--camera gives: front)"), (f"front={bad}", "bad.json: image_size"),
                       (f"front={tmp_path / 'none.json'}", "does not exist")):  # fmt: skip
        with pytest.raises(SystemExit):
            main([*base, "--lens", lens])
        assert says in capsys.readouterr().err


def test_a_lens_scales_to_another_resolution_of_the_same_aspect(tmp_path) -> None:
    """A camera run at half its calibrated resolution (binned) is undistorted with the matrix halved: the same
    picture as the full-size frame undistorted and then halved, to interpolation."""
    import cv2

    from twinarm.real.cameras.lens import Lens, Undistorter

    lens = Lens((480, 640), np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), np.array([-0.2, 0.05, 0, 0, 0]), 50.0)
    rng = np.random.default_rng(0)
    full = cv2.resize(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    half = cv2.resize(full, (320, 240), interpolation=cv2.INTER_AREA)
    undistort = Undistorter(lens)
    got = undistort(half).astype(float)
    want = cv2.resize(undistort(full), (320, 240), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(got - want)[20:-20, 20:-20].mean() < 6  # 2.9 here; an unscaled matrix gives 103
