"""fit-camera: the pose and field of view of a camera are recovered from its picture of a ChArUco board (the
picture rendered by MuJoCo from a known camera, so the truth is known), and envs render from a placed camera."""

from __future__ import annotations

import json
import math

import cv2
import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.cli.camera_views import sim_view
from twinarm.cli.main import main
from twinarm.envs.camera_fit import (
    Board,
    BoardNotFound,
    BoardPlacement,
    detect_corners,
    fit_camera,
    pose_change,
    project,
)  # fmt: skip
from twinarm.envs.camera_poses import CameraPose, apply_camera_poses, load_camera_poses, model_camera_pose
from twinarm.envs.physics import ArmPhysics
from twinarm.spec import CameraSpec

BOARD = Board()
PLACEMENT = BoardPlacement(0.24, 0.03, yaw=12.0, height=0.001)
SIZE = (480, 640)


def turned(pose: CameraPose, axis: np.ndarray, deg: float) -> np.ndarray:
    """`pose`'s quaternion turned by `deg` about the world `axis`."""
    import mujoco

    q = np.zeros(4)
    mujoco.mju_axisAngle2Quat(q, axis / np.linalg.norm(axis), math.radians(deg))
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, q, np.asarray(pose.quat))
    return out


@pytest.fixture(scope="module")
def truth() -> CameraPose:
    """The SO-101 front camera moved 4 cm, turned 3 degrees and zoomed: where the 'real' camera is."""
    nominal = model_camera_pose(ArmPhysics.from_arm("so101").model, "front")
    quat = turned(nominal, np.array([0.3, -1.0, 0.4]), 3.0)
    pos = np.add(nominal.pos, [0.03, -0.02, 0.015])
    return CameraPose(pos=tuple(pos.tolist()), quat=tuple(quat.tolist()), fovy=50.0)


def render_board(arm: str, camera: str, pose: CameraPose, placement: BoardPlacement = PLACEMENT,
                 board: Board = BOARD, joints: np.ndarray | None = None) -> np.ndarray:
    """What a camera at `pose` sees of the board (the overlay's sim view: the arm at `joints`)."""
    return sim_view(arm, camera, pose, SIZE, board, placement, joints)


@pytest.fixture(scope="module")
def picture(truth: CameraPose) -> np.ndarray:
    return render_board("so101", "front", truth)


def test_board_frame_is_the_documented_one() -> None:
    """At yaw 0 the page's top-left corner lies toward -x and -y of its centre, its right edge along +y;
    turned 90 degrees counter-clockwise the right edge points along -x."""
    w, h = BOARD.size
    rot, t = BoardPlacement(0.3, 0.1, yaw=0.0, height=0.002).board_to_world(BOARD)
    np.testing.assert_allclose(t, [0.3 - h / 2, 0.1 - w / 2, 0.002], atol=1e-12)
    np.testing.assert_allclose(rot @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(rot @ [0, 0, 1], [0, 0, -1], atol=1e-12)  # OpenCV's board z points into the table
    rot, _ = BoardPlacement(0.3, 0.1, yaw=90.0).board_to_world(BOARD)
    np.testing.assert_allclose(rot @ [1, 0, 0], [-1, 0, 0], atol=1e-12)


def test_fit_recovers_the_camera_from_its_picture(truth: CameraPose, picture: np.ndarray) -> None:
    obj, px = detect_corners(picture, BOARD)
    assert len(obj) == (BOARD.squares_x - 1) * (BOARD.squares_y - 1)  # every inner corner seen
    fit = fit_camera([(obj, px, PLACEMENT)], SIZE, BOARD)
    err = pose_change(truth, fit.pose)
    assert err["position_m"] < 0.002 and err["view_angle_deg"] < 0.1 and abs(err["fovy_deg"]) < 0.1, err
    assert fit.rms_px < 0.3
    # It says how tightly the picture pins the camera down, and the truth lies within that.
    assert fit.sigma["position_m"] < 0.002 and fit.sigma["fovy_deg"] < 0.2
    assert err["position_m"] < 4 * fit.sigma["position_m"] and abs(err["fovy_deg"]) < 4 * fit.sigma["fovy_deg"]
    # The fitted camera puts the board's corners where the picture shows them.
    rot, t = PLACEMENT.board_to_world(BOARD)
    assert np.abs(project(fit.pose, SIZE, obj @ rot.T + t) - px).max() < 1.0
    # Holding the true field of view gives the same pose.
    held = fit_camera([(obj, px, PLACEMENT)], SIZE, BOARD, fovy=truth.fovy)
    assert held.pose.fovy == truth.fovy and held.sigma["fovy_deg"] == 0.0
    assert pose_change(truth, held.pose)["position_m"] < 0.002


def test_a_board_said_to_lie_elsewhere_moves_the_camera_with_it(truth: CameraPose, picture: np.ndarray) -> None:
    """The fit is anchored by the stated placement: 5 cm off in x puts the camera 5 cm off in x."""
    moved = BoardPlacement(PLACEMENT.x + 0.05, PLACEMENT.y, PLACEMENT.yaw, PLACEMENT.height)
    fit = fit_camera([(*detect_corners(picture, BOARD), moved)], SIZE, BOARD)
    np.testing.assert_allclose(np.subtract(fit.pose.pos, truth.pos), [0.05, 0.0, 0.0], atol=0.003)


def test_env_renders_from_the_fitted_camera(truth: CameraPose, picture: np.ndarray, tmp_path) -> None:
    fit = fit_camera([(*detect_corners(picture, BOARD), PLACEMENT)], SIZE, BOARD)
    path = tmp_path / "camera_poses.json"
    path.write_text(json.dumps({"arm": "so101", "cameras": {"front": fit.pose.to_dict()}}))

    def front(**kw) -> np.ndarray:
        env = gym.make("twinarm/SO101-PickCube-v0", cameras=["front"], **kw)
        try:
            return env.reset(seed=3)[0]["pixels"]["front"].astype(np.int16)
        finally:
            env.close()

    real = front(camera_poses={"front": truth.to_dict()})
    fitted, model = front(camera_poses=str(path)), front()
    assert np.abs(fitted - real).mean() < 1.0 < 5.0 < np.abs(model - real).mean()
    # Camera nudges of the randomization draw around the placed camera, not the model's.
    env = gym.make("twinarm/SO101-PickCube-v0", camera_poses=str(path), randomization={"visual": {"camera_pos_std": 1e-6}})
    try:
        cam = env.unwrapped.physics.model.camera("front")
        np.testing.assert_allclose(cam.fovy, [fit.pose.fovy])
        env.reset(seed=0)
        assert not np.array_equal(cam.pos, fit.pose.pos)  # drawn ...
        np.testing.assert_allclose(cam.pos, fit.pose.pos, atol=1e-4)  # ... around the fitted pose
    finally:
        env.close()


def test_a_camera_aimed_at_a_body_is_placed_where_it_looked() -> None:
    """ALOHA's top camera tracks the table; placed at the pose it had, the sim renders the same picture."""

    def top(**kw) -> np.ndarray:
        env = gym.make("twinarm/Aloha-TransferCube-v0", image_size=(120, 160), **kw)
        try:
            return env.reset(seed=1)[0]["pixels"]["top"].astype(np.int16)
        finally:
            env.close()

    pose = model_camera_pose(ArmPhysics.from_arm("aloha").model, "top")
    assert np.abs(top(camera_poses={"top": pose.to_dict()}) - top()).max() <= 2


def test_a_camera_looking_straight_down_says_so_and_a_raised_board_pins_it() -> None:
    """ALOHA's top camera looks straight down on the table 0.8 m away: boards on the table (one, or four spread
    out: all at one depth) leave its field of view and height trading off, and the fit says so (its sigma
    covers its error); a board also raised on a box, at two depths, fixes it. The board is A3 (5x4 squares of
    60 mm): from 0.8 m the A4 one's marker bits are a pixel and a half across."""
    board = Board(5, 4, 0.06, 0.045)
    nominal = model_camera_pose(ArmPhysics.from_arm("aloha").model, "top")
    real = CameraPose(pos=tuple(np.add(nominal.pos, [0.02, 0.03, -0.05]).tolist()),
                      quat=tuple(turned(nominal, np.array([1.0, 0.2, 0.0]), 4.0).tolist()), fovy=70.0)  # fmt: skip
    places = [BoardPlacement(x, y, yaw=yaw, height=z) for x, y, yaw, z in (
        (0.05, 0.6, -30.0, 0.001), (-0.22, 0.38, 0.0, 0.001), (0.22, 0.82, 90.0, 0.001), (-0.2, 0.82, 45.0, 0.001),
        (-0.2, 0.82, 45.0, 0.2), (0.15, 0.75, -20.0, 0.2))]  # fmt: skip
    views = [(*detect_corners(render_board("aloha", "top", real, p, board), board, f"place {i}"), p)
             for i, p in enumerate(places)]  # fmt: skip
    for flat in (views[:1], views[:4]):
        fit = fit_camera(flat, SIZE, board)
        err = pose_change(real, fit.pose)
        assert fit.sigma["fovy_deg"] > 1.0 and fit.sigma["position_m"] > 0.01, fit.sigma  # it knows it cannot tell
        assert abs(err["fovy_deg"]) < 4 * fit.sigma["fovy_deg"] and err["position_m"] < 4 * fit.sigma["position_m"]
    fit = fit_camera([views[0], *views[4:]], SIZE, board)
    err = pose_change(real, fit.pose)
    assert err["position_m"] < 0.003 and err["view_angle_deg"] < 0.1 and abs(err["fovy_deg"]) < 0.2, err
    assert fit.sigma["fovy_deg"] < 0.2 and fit.sigma["position_m"] < 0.003, fit.sigma


def test_errors_name_what_is_wrong(tmp_path) -> None:
    model = ArmPhysics.from_arm("so101").model
    pose = CameraPose((0.0, 0.0, 1.0), (1.0, 0.0, 0.0, 0.0), 45.0)
    with pytest.raises(ValueError, match=r"no camera 'side'; its cameras are \['front', 'wrist'\]"):
        apply_camera_poses(model, {"side": pose})
    bad = tmp_path / "poses.json"
    bad.write_text(json.dumps({"cameras": {"front": {"pos": [0, 0, 1], "quat": [1, 0, 0, 0]}}}))
    with pytest.raises(ValueError, match=rf"{bad}: camera 'front': fovy must be"):
        load_camera_poses(bad)
    with pytest.raises(ValueError, match="pos must be a list of 3"):
        load_camera_poses({"front": {"pos": [0, 1], "quat": [1, 0, 0, 0], "fovy": 40}})
    with pytest.raises(BoardNotFound, match="shot.png: found 0 of the board's corners"):
        detect_corners(np.full((240, 320, 3), 200, np.uint8), BOARD, "shot.png")
    with pytest.raises(ValueError, match="COLSxROWS"):
        Board.parse("7x5")


def test_cli_fits_writes_the_file_and_the_overlay(truth: CameraPose, picture: np.ndarray, tmp_path, capsys) -> None:
    shot = tmp_path / "front.png"
    cv2.imwrite(str(shot), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    out = tmp_path / "fit"
    argv = ["fit-camera", "--env", "twinarm/SO101-PickCube-v0", "--image", str(shot), "--board-center",
            str(PLACEMENT.x), str(PLACEMENT.y), "--board-yaw", str(PLACEMENT.yaw), "--board-height",
            str(PLACEMENT.height), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "front: 24 corners in 1 picture(s) of 640x480" in text and "camera_poses.json" in text
    content = json.loads((out / "camera_poses.json").read_text())
    assert content["arm"] == "so101" and content["fit"]["front"]["corners"] == 24
    fitted = load_camera_poses(out / "camera_poses.json")["front"]
    assert pose_change(truth, fitted)["position_m"] < 0.003
    figure = cv2.imread(str(out / "fit_front.png"))
    assert figure.shape == (*SIZE, 3)
    # The overlay blends the picture with the sim's view of the board from the fitted camera: the two agree,
    # so the blend shows the board as sharply as the picture (its corners are found again).
    assert len(detect_corners(cv2.cvtColor(figure, cv2.COLOR_BGR2RGB), BOARD)[0]) >= 20
    # A file fitted on one arm is refused on another's env.
    with pytest.raises(SystemExit, match="places the cameras of arm 'so101', not 'koch'"):
        from twinarm.cli.config import load_camera_poses_arg

        load_camera_poses_arg(out / "camera_poses.json", "koch")


def test_cli_prints_a_board_that_reads_back(tmp_path, capsys) -> None:
    path = tmp_path / "board.png"
    assert main(["fit-camera", "--print-board", str(path), "--board", "6x4:30:22"]) == 0
    assert "180 x 120 mm" in capsys.readouterr().out
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    px, pad = round(0.030 / 0.0254 * 300), round(0.010 / 0.0254 * 300)
    assert img.shape == (4 * px + 2 * pad, 6 * px + 2 * pad)  # the board and a 10 mm margin all round
    obj, _ = detect_corners(img, Board.parse("6x4:30:22"))
    assert len(obj) == 5 * 3
    assert b"pHYs" in path.read_bytes()[:64]


def test_cli_refuses_what_it_cannot_fit(tmp_path, capsys) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), 180, np.uint8))
    base = ["fit-camera", "--env", "twinarm/SO101-PickCube-v0", "--board-center", "0.25", "0", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match=f"--image {blank}: found 0 of the board's corners"):
        main([*base, "--image", str(blank)])
    with pytest.raises(SystemExit, match="no such file"):
        main([*base, "--image", str(tmp_path / "missing.png")])
    with pytest.raises(SystemExit):
        main([*base, "--image", str(blank), "--camera", "wrist"])
    assert "wrist rides on the arm (body 'gripper'): give the arm's joint positions" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # ALOHA's wrist cameras (optional ones in its spec) likewise
        main([*base, "--image", str(blank), "--camera", "left_wrist", "--env", "twinarm/Aloha-TransferCube-v0"])
    assert "left_wrist rides on the arm (body 'left_gripper_link')" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--image", str(blank), "--env", "twinarm/SO101-PickCube-Real-v0"])
    assert "is the real arm" in capsys.readouterr().err


def test_cli_says_when_pictures_pin_the_camera_loosely_and_pairs_places_with_pictures(tmp_path, capsys) -> None:
    """ALOHA's top camera: the A3 board flat on the table alone leaves the fit loose (and it says what to do);
    with a second picture of the board raised 0.2 m, each picture with its own place, it is tight."""
    board = Board.parse("5x4:60:45")
    nominal = model_camera_pose(ArmPhysics.from_arm("aloha").model, "top")
    real = CameraPose(pos=tuple(np.add(nominal.pos, [0.02, 0.03, -0.05]).tolist()), quat=nominal.quat, fovy=70.0)
    flat, raised = BoardPlacement(0.05, 0.6, yaw=-30.0), BoardPlacement(0.15, 0.75, yaw=-20.0, height=0.2)
    shots = []
    for name, place in (("flat", flat), ("raised", raised)):
        shots.append(tmp_path / f"{name}.png")
        shown = BoardPlacement(place.x, place.y, place.yaw, max(place.height, 0.001))
        cv2.imwrite(str(shots[-1]), cv2.cvtColor(render_board("aloha", "top", real, shown, board), cv2.COLOR_RGB2BGR))
    base = ["fit-camera", "--env", "twinarm/Aloha-TransferCube-v0", "--board", "A3"]
    assert main([*base, "--image", str(shots[0]), "--board-center", "0.05", "0.6", "--board-yaw", "-30",
                 "--board-height", "0.001", "--out", str(tmp_path / "one")]) == 0  # fmt: skip
    text = capsys.readouterr().out  # seen square on, the field of view is not constrained at all
    assert "pin the camera down loosely" in text and "fovy      " in text and "+- ? (not pinned down)" in text, text
    argv = [*base, "--image", str(shots[0]), str(shots[1]), "--board-center", "0.05", "0.6", "--board-center", "0.15",
            "0.75", "--board-yaw", "-30", "--board-yaw", "-20", "--board-height", "0.001", "--board-height", "0.2",
            "--out", str(tmp_path / "two")]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "top: 24 corners in 2 picture(s)" in text and "loosely" not in text, text
    fitted = load_camera_poses(tmp_path / "two" / "camera_poses.json")["top"]
    err = pose_change(real, fitted)
    assert err["position_m"] < 0.003 and abs(err["fovy_deg"]) < 0.2, err
    assert (tmp_path / "two" / "fit_top_0.png").is_file() and (tmp_path / "two" / "fit_top_1.png").is_file()
    with pytest.raises(SystemExit):
        main([*base, "--image", str(shots[0]), "--board-center", "0", "0.6", "--board-center", "0.1", "0.6"])
    assert "--board-center is given 2 times for 1 pictures" in capsys.readouterr().err


def test_record_sees_through_the_placed_camera(truth: CameraPose, tmp_path) -> None:
    """`twinarm record --camera-poses`: the recorded front frames are the placed camera's (lossless PNG frames,
    compared with the env made with the same poses), not the model's."""
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    poses = tmp_path / "camera_poses.json"
    poses.write_text(json.dumps({"arm": "so101", "cameras": {"front": truth.to_dict()}}))
    root = tmp_path / "ds"
    assert main(["record", "--env", "twinarm/SO101-Reach-v0", "--episodes", "1", "--root", str(root), "--height", "48",
                 "--width", "64", "--images", "--no-progress", "--camera-poses", str(poses)]) == 0  # fmt: skip
    frame = LeRobotDatasetReader(root)[0]["observation.images.front"].numpy().transpose(1, 2, 0)
    recorded = np.round(frame * 255).astype(np.int16)

    def first(**kw) -> np.ndarray:
        env = gym.make("twinarm/SO101-Reach-v0", image_size=(48, 64), **kw)
        try:
            return env.reset(seed=0)[0]["pixels"]["front"].astype(np.int16)
        finally:
            env.close()

    assert np.abs(recorded - first(camera_poses=str(poses))).max() <= 1
    assert np.abs(recorded - first()).mean() > 5.0
    with pytest.raises(SystemExit, match="places the cameras of arm 'so101', not 'koch'"):
        main(["record", "--env", "twinarm/Koch-Reach-v0", "--episodes", "1", "--root", str(tmp_path / "k"),
              "--camera-poses", str(poses)])  # fmt: skip


# Arm poses of a PickCube approach (the expert's, seed 0) at which the wrist camera sees the board.
WRIST_JOINTS = [(0.0, -0.55, 0.4, 1.45, 0.0, 0.3), (0.05, -0.18, 0.08, 1.65, -0.09, 0.36),
                (0.15, -0.16, 0.13, 1.63, -0.29, 0.49), (0.22, -0.13, 0.16, 1.58, -0.43, 0.59),
                (0.23, -0.12, 0.3, 1.43, -0.44, 0.6), (0.23, -0.12, 0.27, 1.46, -0.44, 0.22)]  # fmt: skip
WRIST_PLACE = BoardPlacement(0.237, -0.046, height=0.001)


@pytest.fixture(scope="module")
def wrist_truth() -> CameraPose:
    """The wrist camera's mount as printed: 7 mm and 4 degrees off the model's, a 70 degree lens."""
    nominal = model_camera_pose(ArmPhysics.from_arm("so101").model, "wrist")
    return CameraPose(pos=tuple(np.add(nominal.pos, [0.004, -0.003, 0.005]).tolist()),
                      quat=tuple(turned(nominal, np.array([1.0, 0.5, -0.3]), 4.0).tolist()), fovy=70.0)  # fmt: skip


def test_a_wrist_camera_is_fitted_on_its_body_from_the_arm_poses(wrist_truth: CameraPose) -> None:
    """A camera riding on the arm: each picture's board points go into the gripper's frame at that picture's
    joint positions, where the camera stays put; its mount is found there."""
    from twinarm.cli.camera_pictures import body_pose
    from twinarm.envs.camera_poses import camera_body

    physics = ArmPhysics.from_arm("so101")
    assert camera_body(physics.model, "wrist") == "gripper" and camera_body(physics.model, "front") is None
    views = []
    for q in map(np.array, WRIST_JOINTS):
        img = render_board("so101", "wrist", wrist_truth, WRIST_PLACE, joints=q)
        views.append((*detect_corners(img, BOARD), WRIST_PLACE, body_pose(physics, "gripper", q)))
    fit = fit_camera(views, SIZE, BOARD)
    err = pose_change(wrist_truth, fit.pose)
    assert err["position_m"] < 0.002 and err["view_angle_deg"] < 0.2 and abs(err["fovy_deg"]) < 0.2, err
    assert fit.sigma["position_m"] < 0.002
    # An env with the mount placed renders the wrist view as the truth does.
    def wrist(**kw) -> np.ndarray:
        env = gym.make("twinarm/SO101-Reach-v0", cameras=["wrist"], image_size=(96, 128), **kw)
        try:
            return env.reset(seed=0)[0]["pixels"]["wrist"].astype(np.int16)
        finally:
            env.close()

    real = wrist(camera_poses={"wrist": wrist_truth.to_dict()})
    assert np.abs(wrist(camera_poses={"wrist": fit.pose.to_dict()}) - real).mean() < 1.0 < 5.0 < np.abs(wrist() - real).mean()


def test_cli_fits_a_wrist_camera_from_a_recorded_episode(wrist_truth: CameraPose, tmp_path, capsys) -> None:
    """`fit-camera --camera wrist --dataset ROOT`: the episode's wrist frames and recorded joint positions (LeRobot
    degrees in the dataset), frames without the board skipped."""
    from twinarm.arms import get_arm
    from twinarm.datasets_io.writer import DatasetWriter

    spec = get_arm("so101")
    root = tmp_path / "episode"
    features = spec.lerobot_features(cameras=(CameraSpec("wrist", *SIZE),), use_videos=False)
    writer = DatasetWriter.create(root, spec.control_hz, features, robot_type=spec.robot_type)
    blank = np.full((*SIZE, 3), 90, np.uint8)  # frames where the camera sees no board
    for q in [*map(np.array, WRIST_JOINTS), np.array(WRIST_JOINTS[0])]:
        for img in (render_board("so101", "wrist", wrist_truth, WRIST_PLACE, joints=q), blank):
            state = spec.to_lerobot(q).astype(np.float32)
            writer.add_frame({"observation.state": state, "action": state, "observation.images.wrist": img},
                             task="Show the board.")  # fmt: skip
    writer.save_episode()
    writer.finalize()
    out = tmp_path / "fit"
    assert main(["fit-camera", "--env", "twinarm/SO101-PickCube-v0", "--camera", "wrist", "--dataset", str(root),
                 "--stride", "1", "--board-center", str(WRIST_PLACE.x), str(WRIST_PLACE.y), "--board-height",
                 str(WRIST_PLACE.height), "--out", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "the board is in 7 of the 14 frames" in text and "on body 'gripper'" in text, text
    fitted = load_camera_poses(out / "camera_poses.json")["wrist"]
    err = pose_change(wrist_truth, fitted)
    assert err["position_m"] < 0.002 and err["view_angle_deg"] < 0.2 and abs(err["fovy_deg"]) < 0.2, err
    assert (out / "fit_wrist_0.png").is_file()


def test_the_board_reads_back_at_any_size_and_cut_by_the_picture_edge() -> None:
    """OpenCV 5.0 cannot draw the board at some sizes (60, 200 px a square) nor refine corners on a board that
    touches the picture's edge; both are worked around, and the corners come back where they are drawn."""
    for px in (60, 64, 200):
        img = BOARD.image(px)
        assert img.shape == (5 * px, 7 * px) and set(np.unique(img)) == {0, 255}
        obj, seen = detect_corners(img, BOARD)
        assert len(obj) == 24
        np.testing.assert_allclose(seen, obj[:, :2] / BOARD.square * px - 0.5, atol=0.6)  # pixel centres
        cut_obj, cut_seen = detect_corners(img[:, px:], BOARD)  # the first column of squares cut off
        assert len(cut_obj) == 20
        np.testing.assert_allclose(cut_seen, cut_obj[:, :2] / BOARD.square * px - [px + 0.5, 0.5], atol=0.6)


def test_cli_wrist_from_pictures_with_joints_joins_the_front_in_one_file(
    wrist_truth: CameraPose, truth: CameraPose, picture: np.ndarray, tmp_path, capsys
) -> None:
    """`--image ... --joints Q,...` once per picture; fitted into the folder where the front camera's pose is
    already, the file then places both."""
    out = tmp_path / "fit"
    front = tmp_path / "front.png"
    cv2.imwrite(str(front), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    assert main(["fit-camera", "--env", "twinarm/SO101-PickCube-v0", "--image", str(front), "--board-center",
                 str(PLACEMENT.x), str(PLACEMENT.y), "--board-yaw", str(PLACEMENT.yaw), "--board-height",
                 str(PLACEMENT.height), "--out", str(out)]) == 0  # fmt: skip
    shots, joints = [], []
    for i, q in enumerate(WRIST_JOINTS[:4]):
        shots.append(str(tmp_path / f"wrist_{i}.png"))
        img = render_board("so101", "wrist", wrist_truth, WRIST_PLACE, joints=np.array(q))
        cv2.imwrite(shots[-1], cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        joints += ["--joints", ",".join(map(str, q))]
    base = ["fit-camera", "--env", "twinarm/SO101-PickCube-v0", "--camera", "wrist", "--image", *shots,
            "--board-center", str(WRIST_PLACE.x), str(WRIST_PLACE.y), "--board-height", str(WRIST_PLACE.height),
            "--out", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main([*base, *joints]) == 0
    poses = load_camera_poses(out / "camera_poses.json")
    assert set(poses) == {"front", "wrist"}
    assert pose_change(truth, poses["front"])["position_m"] < 0.002
    assert pose_change(wrist_truth, poses["wrist"])["position_m"] < 0.002
    for bad, says in ((joints[:2], "--joints is given 1 times for 4 pictures"),
                      (["--joints", "1,2,3"] * 4, "--joints 1,2,3: 6 values"),
                      (["--joints", "a,b,c,d,e,f"] * 4, "comma-separated numbers")):  # fmt: skip
        with pytest.raises(SystemExit):
            main([*base, *bad])
        assert says in capsys.readouterr().err
