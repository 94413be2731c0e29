"""Where `twinarm fit-camera`'s pictures come from: files, a camera (through twinarm's camera classes), or a
recorded episode's frames, each with the arm's joint positions where known, and the camera's intrinsics where
something reports them."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 picture; errors name the file."""
    import cv2

    if not path.is_file():
        raise SystemExit(f"--image {path}: no such file")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"--image {path}: not an image OpenCV can read")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def gather_pictures(args: argparse.Namespace, source: str,
                    spec: Any) -> tuple[list[Any], list[np.ndarray], dict[str, Any] | None, list[np.ndarray | None]]:  # fmt: skip
    """The pictures (taken from `--camera NAME=SOURCE`, read from --image, or an episode's frames from
    --dataset), remapped through --lens when given; the intrinsics of what they now are (None where nothing
    reports them); the arm's joint positions (spec units) at each, None where not known."""
    if source:
        if args.joints:
            args._parser.error("--joints goes with --image (one per picture); --camera NAME=SOURCE takes a still arm's "
                               "pictures: record an episode and give it with --dataset")  # fmt: skip
        paths, pictures, intrinsics = take_pictures(args.camera, args.frames, args.out, lens=args.lens)
        return paths, pictures, intrinsics, [None] * len(pictures)
    if args.dataset is not None:
        labels, pictures, joints = episode_pictures(args, spec)
    else:
        labels, pictures = list(args.image), [read_image(p) for p in args.image]
        joints = picture_joints(args, spec, len(pictures))
    size = pictures[0].shape[:2]
    for path, pic in zip(labels, pictures, strict=True):
        if pic.shape[:2] != size:
            raise SystemExit(f"--image {path} is {pic.shape[1]}x{pic.shape[0]}, {labels[0]} {size[1]}x{size[0]}: "
                             "the pictures must come from one camera at one resolution")  # fmt: skip
    if args.lens is None:
        return labels, pictures, None, joints
    from twinarm.real.cameras.lens import Undistorter

    try:
        undistort = Undistorter(args.lens)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"--lens: {exc}") from None
    try:  # as the camera will deliver them with `--lens` (another aspect ratio than the lens's is refused)
        undistorted = [undistort(p) for p in pictures]
    except ValueError as exc:
        raise SystemExit(f"--lens: {exc} ({labels[0]})") from None
    return labels, undistorted, undistort.lens.target_intrinsics(size), joints


def picture_joints(args: argparse.Namespace, spec: Any, n: int) -> list[np.ndarray | None]:
    """--joints (one per picture, or none): the arm's joint positions in spec units."""
    if not args.joints:
        return [None] * n
    if len(args.joints) != n:
        args._parser.error(f"--joints is given {len(args.joints)} times for {n} pictures: once per picture")
    out: list[np.ndarray | None] = []
    for text in args.joints:
        try:
            q = np.array([float(v) for v in text.split(",")])
        except ValueError:
            args._parser.error(f"--joints {text}: comma-separated numbers ({', '.join(spec.joint_names)})")
        if q.shape != (spec.dof,):
            args._parser.error(f"--joints {text}: {spec.dof} values ({', '.join(spec.joint_names)}), got {q.size}")
        out.append(q)
    return out


def episode_pictures(args: argparse.Namespace, spec: Any) -> tuple[list[str], list[np.ndarray], list[np.ndarray | None]]:
    """Every --stride-th frame of the camera in episode --episode of --dataset, with the arm's recorded joint
    positions (spec units) at it."""
    from twinarm.datasets_io.layout import DatasetError
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    camera = (args.camera or spec.cameras[0].name).partition("=")[0]
    key = f"observation.images.{camera}"
    try:
        probe = LeRobotDatasetReader(args.dataset, episodes=[args.episode], cameras=[])
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"--dataset {args.dataset}: {exc}") from None
    if key not in probe.features:
        images = [k for k, ft in probe.features.items() if ft.get("dtype") in ("video", "image")]
        raise SystemExit(f"--dataset {args.dataset} has no {key!r}; its cameras: {images}")
    ds = LeRobotDatasetReader(args.dataset, episodes=[args.episode], cameras=[key], uint8_images=True)
    stride = args.stride or max(1, len(ds) // 40)
    labels, pictures, joints = [], [], []
    for i in range(0, len(ds), stride):
        sample = ds[i]
        labels.append(f"{args.dataset} episode {args.episode} frame {i}")
        pictures.append(sample[key].permute(1, 2, 0).numpy())
        joints.append(spec.from_lerobot(sample["observation.state"].numpy().astype(np.float64)))
    return labels, pictures, joints


def take_pictures(flag: str, n: int, out: Path, lens: Path | None = None,
                  every: float = 0.0) -> tuple[list[Path], list[np.ndarray], dict[str, float] | None]:  # fmt: skip
    """`n` frames from the camera of `--camera NAME=SOURCE` (through `lens` when given; `every` seconds apart),
    saved as `out/NAME_<i>.png`, and the intrinsics it reports (a RealSense's factory calibration, the lens's
    target pinhole; None for a bare webcam)."""
    import cv2

    from twinarm.real.cameras import make_camera
    from twinarm.real.errors import RealArmError
    from twinarm.real.teleop import cameras_from_args

    try:
        name, config = next(iter(cameras_from_args([flag]).items()))
    except ValueError as exc:
        raise SystemExit(f"--camera: {exc}") from None
    try:
        cam = make_camera({**config, **({"lens": lens} if lens else {})}, name=name)
    except RealArmError as exc:
        raise SystemExit(f"--camera {flag}: {exc}") from None
    try:
        cam.connect(timeout_s=5.0)
        frames = []
        for i in range(n):
            if every > 0 and i:
                print(f"  picture {i + 1} of {n} in {every:g} s: move the board", flush=True)
                time.sleep(every)
            frames.append(cam.read(timeout_s=2.0))
        intrinsics = cam.intrinsics()
    except RealArmError as exc:
        raise SystemExit(f"--camera {flag}: {exc}") from None
    finally:
        if cam.is_connected:
            cam.disconnect()
    paths = []
    for i, frame in enumerate(frames):
        paths.append(out / f"{name}_{i}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    print(f"took {n} picture(s) with {flag} ({frames[0].shape[1]}x{frames[0].shape[0]}), saved as {paths[0]} ...")
    return paths, frames, intrinsics


def camera_fovy(intrinsics: dict[str, float], size: tuple[int, int]) -> float:
    """The vertical field of view (deg) of a camera's reported focal length, at the size its pictures came in."""
    fy = intrinsics["fy"] * size[0] / intrinsics["height"]
    return math.degrees(2.0 * math.atan((size[0] / 2.0) / fy))


def body_pose(physics: Any, body: str, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where `body` is in the world (rotation, position) with the arm at `joints` (spec units)."""
    import mujoco

    physics.reset(joints)
    b = mujoco.mj_name2id(physics.model, mujoco.mjtObj.mjOBJ_BODY, body)
    return physics.data.xmat[b].reshape(3, 3).copy(), physics.data.xpos[b].copy()
