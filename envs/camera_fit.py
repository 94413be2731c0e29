"""Fit a sim camera to a real one from pictures of a printed ChArUco board. Lying at a measured place on the
table, the board gives the camera's pose (in the world, or on the arm's body it rides on, carried there by the
arm's joint positions at each picture) and its vertical field of view; held at different angles anywhere, it
gives the lens (`calibrate_lens`: focal lengths, principal point, distortion).

The camera model is the one MuJoCo renders (square pixels, principal point at the image centre, no lens
distortion): OpenCV finds the corners and a first pose (PnP), MuJoCo's least squares refines pose and focal
length on the reprojection error. What is left of that error says how well the model explains the picture (a
wide-angle lens's distortion shows up there); its Jacobian, how tightly the corners pin the camera down.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import mujoco
import numpy as np
from mujoco import minimize

from twinarm.envs.camera_poses import CameraPose

MIN_CORNERS = 6  # fewer chessboard corners than this pin down neither pose nor focal length
DETECT_MARGIN = 16  # px added round a picture before detection


class BoardNotFound(RuntimeError):
    """The board's corners could not be found in an image (too few of them seen)."""


@dataclass(frozen=True)
class Board:
    """A ChArUco board: `squares_x` by `squares_y` squares of `square` m, ArUco markers of `marker` m inside the
    white ones. The default (7x5 squares of 35 mm, 245 x 175 mm) prints on A4 or US letter, landscape."""

    squares_x: int = 7
    squares_y: int = 5
    square: float = 0.035
    marker: float = 0.026
    dictionary: str = "DICT_5X5_100"

    @classmethod
    def parse(cls, text: str) -> Board:
        """`COLSxROWS:SQUARE_MM:MARKER_MM`, e.g. `7x5:35:26` (the default)."""
        m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*:\s*([\d.]+)\s*:\s*([\d.]+)\s*", text)
        if not m:
            raise ValueError(f"board {text!r}: expected COLSxROWS:SQUARE_MM:MARKER_MM, e.g. 7x5:35:26")
        board = cls(int(m[1]), int(m[2]), float(m[3]) / 1000.0, float(m[4]) / 1000.0)
        board.check()
        return board

    def check(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError(f"board {self.label}: needs at least 3x3 squares")
        if not 0.0 < self.marker < self.square:
            raise ValueError(f"board {self.label}: the marker must be smaller than the square")

    @property
    def label(self) -> str:
        return f"{self.squares_x}x{self.squares_y}:{self.square * 1000:g}:{self.marker * 1000:g}"

    @property
    def size(self) -> tuple[float, float]:
        """Width and height in metres."""
        return self.squares_x * self.square, self.squares_y * self.square

    def cv_board(self) -> cv2.aruco.CharucoBoard:
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square, self.marker, dictionary)

    def image(self, px_per_square: int = 100) -> np.ndarray:
        """The board as a grayscale image, edge to edge (print it at `square` per square; add a white margin)."""
        size = (self.squares_x * px_per_square, self.squares_y * px_per_square)
        for extra in range(8):  # OpenCV 5.0 fails an assertion at some sizes (60 or 200 px a square): draw larger
            try:
                big = ((px_per_square + extra) * self.squares_x, (px_per_square + extra) * self.squares_y)
                img = self.cv_board().generateImage(big, marginSize=0, borderBits=1)
            except cv2.error:
                continue
            if extra:  # back to the size asked for, black and white again
                img = np.where(cv2.resize(img, size, interpolation=cv2.INTER_AREA) < 128, 0, 255).astype(np.uint8)
            return img
        raise RuntimeError(f"board {self.label}: OpenCV cannot draw it at {px_per_square} px a square")


@dataclass(frozen=True)
class BoardPlacement:
    """Where the board lies, in the sim's world frame: its centre (m) on a surface `height` m up (the top of
    the board, with the table at 0), turned by `yaw` degrees counter-clockwise seen from above. At yaw 0 the
    printed page's right edge points along the world's +y and its top edge faces -x (for a single arm,
    which faces +x: the page reads from in front of the arm)."""

    x: float
    y: float
    yaw: float = 0.0
    height: float = 0.0

    def board_to_world(self, board: Board) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) with world = R @ p + t for a point p in OpenCV's board frame (origin at the top-left corner,
        x along the page's right, y down the page, z into the table)."""
        c, s = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        yaw = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        page = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # columns: page x, y, z in world
        rot = yaw @ page
        w, h = board.size
        centre = np.array([w / 2, h / 2, 0.0])
        return rot, np.array([self.x, self.y, self.height]) - rot @ centre


@dataclass(frozen=True)
class CameraFit:
    """A fitted camera: its pose, how well the pinhole model reproduces the seen corners (RMS, pixels), and how
    tightly the corners pin it down (one standard deviation, from that residual: `position_m` in the worst
    direction, `view_deg` of the view direction, `fovy_deg`, 0 when held)."""

    pose: CameraPose
    rms_px: float
    corners: int
    sigma: dict[str, float]


def detect_corners(image: np.ndarray, board: Board, source: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """The board's chessboard corners seen in an RGB or gray uint8 image: (N, 3) board points (m), (N, 2) pixels."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    # A margin all round: OpenCV's corner refinement fails an assertion on a board touching the picture's edge.
    gray = cv2.copyMakeBorder(gray, DETECT_MARGIN, DETECT_MARGIN, DETECT_MARGIN, DETECT_MARGIN, cv2.BORDER_REPLICATE)
    detector = cv2.aruco.CharucoDetector(board.cv_board())
    corners, ids, markers, _ = detector.detectBoard(gray)
    n = 0 if ids is None else len(ids)
    if n < MIN_CORNERS:
        seen = 0 if markers is None else len(markers)
        raise BoardNotFound(
            f"{source}: found {n} of the board's corners ({seen} markers); need {MIN_CORNERS}. Is the whole "
            f"{board.label} board ({board.dictionary}) in view, flat, lit without glare and in focus?"
        )
    obj, img = board.cv_board().matchImagePoints(corners, ids)
    return obj.reshape(-1, 3).astype(np.float64), img.reshape(-1, 2).astype(np.float64) - DETECT_MARGIN


def fit_camera(
    views: list[tuple[Any, ...]],
    image_size: tuple[int, int],
    board: Board,
    fovy: float | None = None,
    fovy_guess: float = 55.0,
) -> CameraFit:
    """Fit pose (and, unless `fovy` is given, the vertical field of view) of a camera of `image_size` (H, W) to
    the corners it saw: per picture (board points, pixels, where that board lay), and for a camera riding on
    the arm a fourth item, (R, p): the pose in the world of the body it rides on at that picture. The pose is
    found in that body's frame (the world's for a fixed camera). Pictures of the board at several places, or
    from several arm poses, pin the camera down better than one (a small or squarely seen board leaves the
    field of view and the distance, or the tilt and the offset, trading off: see `CameraFit.sigma`)."""
    h, w = image_size
    body_points = []
    for obj, _, placement, *body in views:
        rot, t = placement.board_to_world(board)
        pts = obj @ rot.T + t
        if body:  # world -> the body's frame, where the camera stays put
            rot_b, pos_b = body[0]
            pts = (pts - pos_b) @ rot_b
        body_points.append(pts)
    pts, img = np.concatenate(body_points), np.concatenate([view[1] for view in views])
    focal = (h / 2.0) / math.tan(math.radians(fovy if fovy is not None else fovy_guess) / 2.0)
    ok, rvec, tvec = cv2.solvePnP(pts, img, _intrinsics(focal, h, w), None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise RuntimeError("fit-camera: OpenCV found no camera pose for these corners")
    params = np.concatenate([rvec.ravel(), tvec.ravel(), [focal]])
    params, residual, jac = _refine(params, pts, img, h, w, fit_focal=fovy is None)
    rvec, tvec, focal = params[:3], params[3:6], float(params[6])
    rot_wc_cv = cv2.Rodrigues(rvec)[0].T  # world -> OpenCV camera, transposed: the camera's axes in the world
    pos = -rot_wc_cv @ tvec
    # OpenCV's camera looks along +z with y down; MuJoCo's along -z with y up.
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, (rot_wc_cv @ np.diag([1.0, -1.0, -1.0])).ravel())
    fitted_fovy = math.degrees(2.0 * math.atan((h / 2.0) / focal))
    pose = CameraPose(pos=tuple(pos.tolist()), quat=tuple(quat.tolist()), fovy=fitted_fovy)  # type: ignore[arg-type]
    sigma = _uncertainty(params, residual, jac, h, fit_focal=fovy is None)
    rms = float(np.sqrt(np.mean(np.sum(residual.reshape(-1, 2) ** 2, axis=1))))  # per corner, as OpenCV's
    return CameraFit(pose=pose, rms_px=rms, corners=len(pts), sigma=sigma)


def _intrinsics(focal: float, h: int, w: int) -> np.ndarray:
    """MuJoCo's pinhole: square pixels, the principal point at the image centre."""
    return np.array([[focal, 0.0, (w - 1) / 2.0], [0.0, focal, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def _project(params: np.ndarray, pts: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of world points under (rvec, tvec, focal), flattened, and their Jacobian in those 7 parameters."""
    proj, jac = cv2.projectPoints(pts, params[:3], params[3:6], _intrinsics(params[6], h, w), None)
    return proj.reshape(-1), np.concatenate([jac[:, :6], jac[:, 6:7] + jac[:, 7:8]], axis=1)  # fx = fy = focal


def _refine(params: np.ndarray, pts: np.ndarray, img: np.ndarray, h: int, w: int,
            fit_focal: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The reprojection error minimized from a PnP start by MuJoCo's least squares, with OpenCV's Jacobian of
    the projection; (parameters, residual, Jacobian in the fitted ones)."""
    free, target = (7 if fit_focal else 6), img.reshape(-1)

    def full(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, params[free:]])

    def residual(x: np.ndarray) -> np.ndarray:  # x: (free,) or (free, k) -> (2N, k)
        cols = x.reshape(free, -1).T
        return np.stack([_project(full(c), pts, h, w)[0] - target for c in cols], axis=1)

    def jacobian(x: np.ndarray, _: np.ndarray) -> np.ndarray:
        return _project(full(x.ravel()), pts, h, w)[1][:, :free]

    x, _ = minimize.least_squares(params[:free], residual, jacobian=jacobian, max_iter=200,
                                  verbose=minimize.Verbosity.SILENT)  # fmt: skip
    best = full(x)
    proj, jac = _project(best, pts, h, w)
    return best, proj - target, jac[:, :free]


def _uncertainty(params: np.ndarray, residual: np.ndarray, jac: np.ndarray, h: int, fit_focal: bool) -> dict[str, float]:
    """One standard deviation of the camera's position (worst direction), view direction and fovy, from the
    Jacobian of the fit and the variance of its residual."""
    n, p = jac.shape
    var = float(residual @ residual) / max(n - p, 1)
    # Columns scaled to unit norm (radians, metres and pixels differ by orders); a direction the corners do not
    # constrain at all (a camera square to a flat board: focal length against distance) gets a huge variance,
    # not the zero a pseudo-inverse would give it.
    norms = np.linalg.norm(jac, axis=0)
    _, sv, vt = np.linalg.svd(jac / norms, full_matrices=False)
    sv = np.maximum(sv, sv[0] * 1e-12)
    cov = var * ((vt.T / sv**2) @ vt) / np.outer(norms, norms)

    def centre_and_view(x: np.ndarray) -> np.ndarray:
        axes = cv2.Rodrigues(x[:3])[0].T
        return np.concatenate([-axes @ x[3:6], axes[:, 2]])

    base, eps = centre_and_view(params), 1e-7
    d = np.stack([(centre_and_view(params + eps * e) - base) / eps for e in np.eye(7)[:6]], axis=1)
    cov6 = cov[:6, :6]
    pos_var = np.linalg.eigvalsh(d[:3] @ cov6 @ d[:3].T).max()
    view_var = np.linalg.eigvalsh(d[3:] @ cov6 @ d[3:].T).max()
    focal = params[6]
    dfovy = 2.0 * (h / 2.0) / (focal**2 + (h / 2.0) ** 2)  # |d fovy / d focal|, radians per pixel
    fovy_sd = math.degrees(dfovy * math.sqrt(cov[6, 6])) if fit_focal else 0.0
    return {"position_m": math.sqrt(max(pos_var, 0.0)), "view_deg": math.degrees(math.sqrt(max(view_var, 0.0))),
            "fovy_deg": fovy_sd}  # fmt: skip


def project(pose: CameraPose, image_size: tuple[int, int], world_points: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) at which a camera at `pose` (MuJoCo's pinhole) sees world points (N, 3)."""
    h, w = image_size
    focal = (h / 2.0) / math.tan(math.radians(pose.fovy) / 2.0)
    cam = (np.asarray(world_points) - np.asarray(pose.pos)) @ pose.rotation  # MuJoCo camera frame
    x, y, z = cam[:, 0], -cam[:, 1], -cam[:, 2]  # OpenCV's: y down, z forward
    return np.stack([focal * x / z + (w - 1) / 2.0, focal * y / z + (h - 1) / 2.0], axis=1)


def pose_change(a: CameraPose, b: CameraPose) -> dict[str, float]:
    """How far apart two poses are: position (m), angle between the view directions (deg), fovy (deg)."""
    view_a, view_b = -a.rotation[:, 2], -b.rotation[:, 2]
    angle = math.degrees(math.acos(float(np.clip(view_a @ view_b, -1.0, 1.0))))
    dist = float(np.linalg.norm(np.subtract(a.pos, b.pos)))
    return {"position_m": dist, "view_angle_deg": angle, "fovy_deg": b.fovy - a.fovy}


def board_scene_hook(board: Board, placement: BoardPlacement, px_per_square: int = 64) -> Callable[[mujoco.MjSpec], None]:
    """A scene hook that lays the board in the sim where `placement` says (for overlays and for checking a fit
    on a rendered image); it collides with nothing."""
    texture = np.repeat(board.image(px_per_square)[:, :, None], 3, axis=2)
    rot, t = placement.board_to_world(board)
    w, h = board.size
    centre = rot @ np.array([w / 2, h / 2, 0.0]) + t
    # The plane's x along the page's right and its y up the page (its normal, +z, out of the table).
    frame = np.stack([rot[:, 0], -rot[:, 1], -rot[:, 2]], axis=1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, frame.ravel())

    def hook(spec: mujoco.MjSpec) -> None:
        tex = spec.add_texture(name="twinarm_charuco", type=mujoco.mjtTexture.mjTEXTURE_2D,
                               width=texture.shape[1], height=texture.shape[0], nchannel=3)  # fmt: skip
        tex.data = texture.tobytes()
        mat = spec.add_material(name="twinarm_charuco", texrepeat=[1, 1], texuniform=False)
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "twinarm_charuco"
        spec.worldbody.add_geom(name="twinarm_charuco", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[w / 2, h / 2, 0.01],
                                pos=centre, quat=quat, material="twinarm_charuco", contype=0, conaffinity=0)  # fmt: skip

    return hook


LENS_MIN_VIEWS = 4  # pictures of the board at different angles a lens calibration needs at the least


def calibrate_lens(views: list[tuple[np.ndarray, np.ndarray]], image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """OpenCV's full camera calibration (focal lengths, principal point, k1 k2 p1 p2 k3) from pictures of the
    board held at different angles and places (each: board points, pixels); (camera matrix, distortion, RMS px)."""
    if len(views) < LENS_MIN_VIEWS:
        raise ValueError(f"a lens calibration needs the board in {LENS_MIN_VIEWS} pictures or more, at different "
                         f"angles; it was found in {len(views)}")  # fmt: skip
    h, w = image_size
    obj = [o.astype(np.float32) for o, _ in views]
    img = [i.astype(np.float32) for _, i in views]
    rms, k, dist, _, _ = cv2.calibrateCamera(obj, img, (w, h), None, None)
    return k, dist.ravel(), float(rms)
