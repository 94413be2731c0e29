"""`twinarm fit-camera`: put the sim's fixed camera where the real one is, from a picture of a printed ChArUco
board lying at a measured place on the table.

Print the board (`--print-board board.png`; check that a square measures what --board says), lay it flat on
the table, measure where its centre lies in the sim's world frame (for a single arm: metres from the centre of
the arm's base, x forward, y to the arm's left; the page's top edge facing the arm, or turned by
--board-yaw), and take a picture with the real camera at the resolution you record at (`twinarm find-cameras`
saves one; or name the camera, `--camera front=SOURCE`, and the pictures are taken here, a RealSense's own
calibration then giving the field of view). The fit finds the camera's pose and vertical field of view for the
pinhole camera MuJoCo renders, says how tightly the pictures pin them down, and writes `camera_poses.json`,
which `--camera-poses FILE` on record, eval, robustness, train, replay and teleop --env (or
`gym.make(id, camera_poses=FILE)`) loads, and `fit_<camera>.png`: the picture blended with the sim's view from
the fitted pose, with the board laid in the sim too, so the two boards should coincide. A camera that looks straight down at the table (ALOHA's top
camera) cannot tell its field of view from its height by boards lying on the table: add a picture of the board
raised on a box (--board-height), or give --fovy. A camera on the arm (a wrist camera) is placed on the body it
rides on, from pictures with the arm's joint positions (--joints each, or --dataset: a recorded episode's frames
and joints). A lens that bends straight lines (a wide-angle webcam) is calibrated first, `--calibrate-lens`
with pictures of the board held at different angles; `--lens NAME=FILE` on teleop and eval then delivers that
camera's frames as the sim camera's pinhole renders them, and `fit-camera --lens FILE` places it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from twinarm.cli.camera_pictures import (
    body_pose,
    camera_fovy,
    episode_pictures,
    gather_pictures,
    read_image,
    take_pictures,
)
from twinarm.cli.camera_views import PRINT_DPI, print_board, write_overlays
from twinarm.cli.config import add_config_arg, env_entry, known_env_id, write_resolved_config

EPILOG = """examples:
  twinarm fit-camera --print-board board.png                                   # print it, lay it on the table
  twinarm find-cameras --camera front=0                                        # saves outputs/cameras/front.png
  twinarm fit-camera --env twinarm/SO101-PickCube-v0 --image outputs/cameras/front.png --board-center 0.25 0
  twinarm fit-camera --env twinarm/SO101-PickCube-v0 --camera front=realsense:0123456789 --board-center 0.25 0
  twinarm teleop --arm so101 ... --camera wrist=2 --record data/board_episode --task "Show the board." --episodes 1
  twinarm fit-camera --env twinarm/SO101-PickCube-v0 --camera wrist --dataset data/board_episode --board-center 0.25 0
  twinarm fit-camera --env twinarm/Aloha-TransferCube-v0 --image flat.png raised.png \\
      --board-center 0 0.6 --board-center 0.1 0.7 --board-height 0 --board-height 0.2 --board A3   # one per picture
  twinarm record --env twinarm/SO101-PickCube-v0 --root data/pick_sim \\
      --camera-poses outputs/fit_camera/camera_poses.json                      # demonstrations seen as the real camera sees"""

BOARD_SIZES = {"A4": "7x5:35:26", "A3": "5x4:60:45"}
LOOSE = {"position_m": 0.005, "view_deg": 0.3, "fovy_deg": 0.5}  # one sigma above these: say how to pin it down
UNPINNED = {"position_m": 1.0, "view_deg": 30.0, "fovy_deg": 30.0}  # above these the number means nothing
POOR_FIT_PX = 2.0  # a reprojection RMS above this says the pinhole model does not explain the picture
FAR_M = 0.3  # a fitted camera this far from the model's suggests a mis-measured board


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit-camera", help="place the sim's fixed camera where the real one is, from a picture of a printed board",
        description=__doc__.split("\n\n", 1)[1].strip(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--env", type=known_env_id, default=None, help="any sim env id of the arm (names the arm and its cameras)")
    p.add_argument("--camera", default=None, metavar="NAME[=SOURCE]",
                   help="the sim camera to place (default: the arm's first camera); with =SOURCE (index|path|"
                   "realsense:SERIAL_OR_FILE, as teleop and eval take it) the pictures are taken from that camera, "
                   "and a RealSense's own calibration gives the field of view")
    p.add_argument("--joints", action="append", default=None, metavar="Q1,Q2,...",
                   help="the arm's joint positions at a picture (spec units: radians, gripper 0..1), once per --image: "
                   "needed for a camera on the arm (a wrist camera), whose pose is fitted on the body it rides on")
    p.add_argument("--dataset", default=None, metavar="ROOT",
                   help="take the pictures from a recorded episode instead (LeRobot v3: the camera's frames and the "
                   "recorded joint positions), the board lying at one place all along; frames without it are skipped")
    p.add_argument("--episode", type=int, default=0, help="with --dataset: the episode")
    p.add_argument("--stride", type=int, default=None,
                   help="with --dataset: every N-th frame (default: about 40 frames over the episode)")
    p.add_argument("--frames", type=int, default=5, help="with --camera NAME=SOURCE: frames taken, their corners pooled")
    p.add_argument("--calibrate-lens", action="store_true",
                   help="calibrate the camera's lens instead (focal length, principal point, distortion) from pictures "
                   "of the board held at different angles, 8 or more, reaching into each part of the picture (the "
                   "calibration holds only where the board was seen); any camera, a wrist camera too; writes "
                   "lens_<camera>.json, which `--lens NAME=FILE` on teleop and eval gives the camera: its frames then "
                   "come out as the sim camera's pinhole renders them")
    p.add_argument("--lens", type=Path, default=None, metavar="FILE",
                   help="the camera's lens file: pictures are remapped through it first (as the camera will deliver "
                   "them) and the field of view held at its target")
    p.add_argument("--target-fovy", default="sim", metavar="sim|own|DEG",
                   help="with --calibrate-lens: the field of view frames are remapped to: the sim camera's (sim), the "
                   "lens's own (own: no picture lost; then place the camera with --lens, which sets the sim's to it), "
                   "or degrees")
    p.add_argument("--every", type=float, default=1.0, metavar="S",
                   help="with --calibrate-lens and --camera NAME=SOURCE: seconds between pictures (move the board)")
    p.add_argument("--fit-fovy", action="store_true",
                   help="fit the field of view even where the camera reports its calibration (a RealSense)")
    p.add_argument("--image", type=Path, nargs="+", default=None, metavar="FILE",
                   help="picture(s) of the board taken by the real camera, which must not move between them (the "
                   "board may: give its place once per picture)")
    p.add_argument("--board-center", type=float, nargs=2, action="append", default=None, metavar=("X", "Y"),
                   help="where the board's centre lies, in metres in the sim's world frame (once, or once per picture)")
    p.add_argument("--board-yaw", type=float, action="append", default=None, metavar="DEG",
                   help="the board turned counter-clockwise (seen from above) from lying with its top edge facing "
                   "the arm, where the page's right edge points along the world's +y (default 0; once, or once per "
                   "picture)")
    p.add_argument("--board-height", type=float, action="append", default=None, metavar="M",
                   help="the height of the board's top surface above the table: its thickness, or the box it lies on "
                   "(default 0; once, or once per picture)")
    p.add_argument("--board", default="7x5:35:26", metavar="COLSxROWS:SQUARE_MM:MARKER_MM|A4|A3",
                   help="the ChArUco board: squares across and down, the side of a square and of a marker as printed; "
                   "A4 is 7x5:35:26 (US letter too), A3 5x4:60:45 (for cameras a metre away)")
    p.add_argument("--fovy", type=float, default=None, metavar="DEG",
                   help="hold the vertical field of view at this (the camera's datasheet) instead of fitting it")
    p.add_argument("--print-board", type=Path, default=None, metavar="FILE",
                   help=f"write the board as a PNG to print ({PRINT_DPI} dpi, at 100 %% scale) and stop")
    p.add_argument("--out", type=Path, default=Path("outputs/fit_camera"),
                   help="folder for camera_poses.json (other cameras already in it are kept), fit_<camera>.png and "
                   "config.json (the resolved options)")
    add_config_arg(p)
    p.set_defaults(func=run_fit_camera, _parser=p)


def run_fit_camera(args: argparse.Namespace) -> int:
    import twinarm  # noqa: F401  (registers the env ids)
    from twinarm.arms import get_arm
    from twinarm.envs.camera_fit import Board, BoardNotFound, detect_corners, fit_camera, pose_change
    from twinarm.envs.camera_poses import camera_body, model_camera_pose
    from twinarm.envs.physics import ArmPhysics

    parser = args._parser
    try:
        board = Board.parse(BOARD_SIZES.get(args.board.upper(), args.board))
    except ValueError as exc:
        parser.error(f"--board: {exc}")
    if args.print_board is not None:
        print_board(board, args.print_board)
        return 0
    camera, _, source = (args.camera or "").partition("=")
    given = [f for f, v in (("--image", args.image), (f"--camera {args.camera}", source), ("--dataset", args.dataset)) if v]
    if args.env is None or (args.board_center is None and not args.calibrate_lens) or not given:
        parser.error("give --env, --board-center and the pictures: --image FILE, --camera NAME=SOURCE (taken here) "
                     "or --dataset ROOT (an episode's frames); --print-board FILE prints the board first")  # fmt: skip
    if len(given) > 1:
        parser.error(f"{' and '.join(given)}: the pictures come from one of them")
    entry = env_entry(parser, args.env)
    if args.env == entry.real_id:
        parser.error(f"--env {args.env} is the real arm; name its sim twin (the sim's camera is what is placed)")
    spec = get_arm(entry.arm)
    camera = camera or spec.cameras[0].name
    names = list(spec.camera_names)  # ALOHA's wrist cameras are optional ones
    if camera not in names:
        parser.error(f"--camera {camera}: {spec.name}'s cameras are {', '.join(names)}")
    if args.fovy is not None and not 0 < args.fovy < 180:
        parser.error("--fovy must be in (0, 180) degrees")
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    if args.calibrate_lens:
        return run_calibrate_lens(args, board, spec, camera, source)
    physics = ArmPhysics.from_arm(spec)
    nominal, body = model_camera_pose(physics.model, camera), camera_body(physics.model, camera)
    if source and max(len(args.board_center), len(args.board_yaw or ()), len(args.board_height or ())) > 1:
        parser.error(f"--camera {args.camera} takes its pictures at once, of the board at one place; for several "
                     "places save a picture at each (`twinarm find-cameras`) and give them with --image")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    paths, pictures, intrinsics, joints = gather_pictures(args, source, spec)
    if body is not None and any(q is None for q in joints):
        parser.error(f"--camera {camera} rides on the arm (body {body!r}): give the arm's joint positions at each "
                     "picture (--joints), or take the pictures from a recorded episode (--dataset)")  # fmt: skip
    args.image = paths
    placements = board_placements(parser, args, len(pictures))
    size = pictures[0].shape[:2]
    views, kept = [], []
    for i, (p, pic, place, q) in enumerate(zip(paths, pictures, placements, joints, strict=True)):
        try:
            obj, px = detect_corners(pic, board, f"--image {p}")
        except BoardNotFound as exc:
            if args.dataset is None:  # pictures given one by one: each was meant to show the board
                raise SystemExit(str(exc)) from None
            continue  # an episode's frames: the board is in view in some
        views.append((obj, px, place, *([body_pose(physics, body, q)] if body is not None else [])))
        kept.append(i)
    if not views:
        raise SystemExit(f"--dataset {args.dataset}: the board is in none of the {len(pictures)} frames taken")
    if len(kept) < len(pictures):
        print(f"the board is in {len(kept)} of the {len(pictures)} frames; fitting to those")
    paths, pictures, joints = [paths[i] for i in kept], [pictures[i] for i in kept], [joints[i] for i in kept]
    placements = [placements[i] for i in kept]
    fovy, fovy_source = args.fovy, "--fovy" if args.fovy is not None else None
    if fovy is None and intrinsics is not None and not args.fit_fovy:
        why = "the lens file's target pinhole" if args.lens else "the camera's own calibration"
        fovy, fovy_source = camera_fovy(intrinsics, size), f"{why}; --fit-fovy to fit it"
    fit = fit_camera(views, size, board, fovy=fovy, fovy_guess=nominal.fovy)
    moved = pose_change(nominal, fit.pose)

    write_resolved_config(args, args.out)
    poses_path = save_pose(args.out / "camera_poses.json", spec.name, camera, fit.pose, {
        "env": args.env, "images": [str(p) for p in paths], "image_size": list(size), "board": board.label,
        "placements": [dataclasses.asdict(p) for p in placements], "fovy_held": fovy_source, "body": body,
        "joints": None if body is None else [q.tolist() for q in joints],
        "camera_intrinsics": intrinsics, "corners": fit.corners, "reprojection_rms_px": fit.rms_px,
        "sigma": fit.sigma, "moved_from_model": moved,
    })  # fmt: skip
    figures = write_overlays(spec.name, camera, fit, board, views, pictures, joints, args.out)
    report(fit, nominal, moved, camera, size, len(pictures), fovy_source, body)
    print_notes(spec, camera, size, intrinsics)
    print(f"wrote {poses_path} and {', '.join(str(f) for f in figures)}\n"
          f"use it: twinarm record --env {args.env} ... --camera-poses {poses_path}")  # fmt: skip
    return 0


def save_pose(path: Path, arm: str, camera: str, pose: Any, fit_info: dict[str, Any]) -> Path:
    """Write (or update) the camera poses file: this camera's pose and how it was fitted; other cameras of the
    same arm already in it are kept."""
    from twinarm.envs.camera_poses import load_camera_poses

    content: dict[str, Any] = {"arm": arm, "cameras": {}, "fit": {}}
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("arm") == arm:
            content["cameras"] = {k: v.to_dict() for k, v in load_camera_poses(old).items()}
            content["fit"] = old.get("fit", {})
    content["cameras"][camera] = pose.to_dict()
    content["fit"][camera] = fit_info
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def print_notes(spec: Any, camera: str, size: tuple[int, int], intrinsics: dict[str, Any] | None) -> None:
    """What MuJoCo's pinhole cannot match: a principal point off centre, another aspect ratio than the sim's."""
    if intrinsics is not None:
        off = (intrinsics["ppx"] - (intrinsics["width"] - 1) / 2, intrinsics["ppy"] - (intrinsics["height"] - 1) / 2)
        if max(abs(off[0]) / intrinsics["width"], abs(off[1]) / intrinsics["height"]) > 0.01:
            print(f"note: this camera's principal point is ({off[0]:+.1f}, {off[1]:+.1f}) px from the image centre, "
                  "where MuJoCo's pinhole has it: the sim's picture sits that much shifted (a lens file, "
                  "--calibrate-lens, recentres it)")  # fmt: skip
    sim_size = spec.camera(camera)
    if not math.isclose(size[1] / size[0], sim_size.width / sim_size.height, rel_tol=0.01):
        print(f"note: the picture is {size[1]}x{size[0]}, the sim's {camera} {sim_size.width}x{sim_size.height}: the "
              "field of view matches vertically, so the two see different widths; record at the sim's aspect ratio "
              "(or give the env an --image-size of the picture's)")  # fmt: skip


def run_calibrate_lens(args: argparse.Namespace, board: Any, spec: Any, camera: str, source: str) -> int:
    """`--calibrate-lens`: the lens of `camera` from pictures of the board at different angles; writes its file,
    whose frames are remapped to the sim camera's field of view."""
    from twinarm.envs.camera_fit import LENS_MIN_VIEWS, BoardNotFound, calibrate_lens, detect_corners
    from twinarm.envs.camera_poses import camera_id
    from twinarm.envs.physics import ArmPhysics
    from twinarm.real.cameras.lens import Lens

    args.out.mkdir(parents=True, exist_ok=True)
    if source:
        n = max(args.frames, 2 * LENS_MIN_VIEWS) if args.frames == args._parser.get_default("frames") else args.frames
        paths, pictures, _ = take_pictures(args.camera, n, args.out, every=args.every)
    elif args.dataset is not None:
        paths, pictures, _ = episode_pictures(args, spec)
    else:
        paths, pictures = list(args.image), [read_image(p) for p in args.image]
    size = pictures[0].shape[:2]
    views, used = [], []
    for path, pic in zip(paths, pictures, strict=True):
        if pic.shape[:2] != size:
            raise SystemExit(f"--image {path} is {pic.shape[1]}x{pic.shape[0]}, {paths[0]} {size[1]}x{size[0]}: the "
                             "pictures must come from one camera at one resolution")  # fmt: skip
        try:
            views.append(detect_corners(pic, board, str(path)))
            used.append(str(path))
        except BoardNotFound as exc:
            print(f"note: skipped: {exc}")
    try:
        k, dist, rms = calibrate_lens(views, size)
    except ValueError as exc:
        raise SystemExit(f"--calibrate-lens: {exc}") from None
    model = ArmPhysics.from_arm(spec).model
    sim_fovy = float(model.cam_fovy[camera_id(model, camera)])
    own = math.degrees(2.0 * math.atan((size[0] / 2.0) / k[1, 1]))
    try:
        target = {"sim": sim_fovy, "own": own}.get(args.target_fovy) or float(args.target_fovy)
    except ValueError:
        args._parser.error(f"--target-fovy {args.target_fovy}: sim, own or a number of degrees")
    if not 0 < target < 180:
        args._parser.error(f"--target-fovy {args.target_fovy}: degrees in (0, 180)")
    lens = Lens(size, k, dist, target, {"camera": camera, "env": args.env, "images": used, "rms_px": rms})
    path = args.out / f"lens_{camera}.json"
    lens.save(path)
    print(f"{camera} lens from {len(views)} picture(s) of {size[1]}x{size[0]}: reprojection RMS {rms:.2f} px")
    print(f"  focal     {k[0, 0]:.1f} x {k[1, 1]:.1f} px (fovy {lens.fovy:.1f} deg), principal point "
          f"({k[0, 2]:.1f}, {k[1, 2]:.1f})")
    print(f"  distortion k1 {dist[0]:+.4f} k2 {dist[1]:+.4f} p1 {dist[2]:+.5f} p2 {dist[3]:+.5f} k3 {dist[4]:+.4f}")
    whose = {"sim": f"the sim's {camera} camera", "own": "the lens's own field of view"}.get(args.target_fovy, "--target-fovy")
    print(f"  frames are remapped to {whose}: a pinhole of fovy {target:.4g} deg")
    if abs(target - sim_fovy) > 0.5:
        print(f"note: the sim's {camera} camera has fovy {sim_fovy:g}: give the sim this lens's {target:.4g} by placing "
              f"the camera through it (`fit-camera --lens {args.out / f'lens_{camera}.json'}`), whose fit holds it")
    if target > lens.fovy + 1.0:
        print(f"note: the sim's {camera} sees wider than this lens ({target:g} against {lens.fovy:.1f} deg): the "
              "remapped frames have black borders where the lens saw nothing")  # fmt: skip
    if rms > POOR_FIT_PX:
        print(f"warning: the corners sit {rms:.1f} px RMS from the calibrated model: blurred pictures (hold the board "
              "still), a board that is not flat, or a lens beyond OpenCV's model (a fisheye)")
    print(f"wrote {path}\nuse it: twinarm teleop ... --camera {camera}=SOURCE --lens {camera}={path}")
    return 0


def board_placements(parser: argparse.ArgumentParser, args: argparse.Namespace, n: int) -> list[Any]:
    """Where the board lay in each of `n` pictures: each --board-* value given once serves them all."""
    from twinarm.envs.camera_fit import BoardPlacement

    def per_picture(flag: str, values: list[Any] | None, default: Any) -> list[Any]:
        values = values or [default]
        if len(values) not in (1, n):
            parser.error(f"--{flag} is given {len(values)} times for {n} pictures: give it once, or once per picture")
        return values * n if len(values) == 1 else values

    centres = per_picture("board-center", args.board_center, None)
    yaws = per_picture("board-yaw", args.board_yaw, 0.0)
    heights = per_picture("board-height", args.board_height, 0.0)
    return [BoardPlacement(c[0], c[1], yaw=y, height=h) for c, y, h in zip(centres, yaws, heights, strict=True)]


def report(fit: Any, nominal: Any, moved: dict[str, float], camera: str, size: tuple[int, int], pictures: int,
           held: str | None, body: str | None = None) -> None:  # fmt: skip
    """The fitted pose against the model's, each with its one-sigma spread, and what to do about a loose fit."""
    sd = fit.sigma

    def spread(key: str, scale: float, unit: str, digits: int) -> str:
        return "+- ? (not pinned down)" if sd[key] > UNPINNED[key] else f"+- {scale * sd[key]:.{digits}f} {unit}"

    print(f"{camera}: {fit.corners} corners in {pictures} picture(s) of {size[1]}x{size[0]}, "
          f"reprojection RMS {fit.rms_px:.2f} px")
    frame = "" if body is None else f" on body {body!r}"
    print(f"  position  [{', '.join(f'{v:.3f}' for v in fit.pose.pos)}] m{frame} {spread('position_m', 1000, 'mm', 1)}"
          f"  (the model's: [{', '.join(f'{v:.3f}' for v in nominal.pos)}]; {1000 * moved['position_m']:.0f} mm away)")
    print(f"  view      {moved['view_angle_deg']:.1f} deg from the model's, {spread('view_deg', 1, 'deg', 2)}")
    fovy = f"{fit.pose.fovy:.2f} deg (held: {held})" if held else f"{fit.pose.fovy:.1f} deg {spread('fovy_deg', 1, 'deg', 2)}"
    print(f"  fovy      {fovy}  (the model's: {nominal.fovy:g})")
    if fit.rms_px > POOR_FIT_PX:
        print(f"warning: the corners sit {fit.rms_px:.1f} px RMS from where the fitted pinhole camera puts them: lens "
              "distortion (a wide-angle lens: undistort its frames) or a board that is not flat")
    loose = [k for k, v in LOOSE.items() if sd[k] > v]
    if loose:
        print("warning: the pictures pin the camera down loosely (one sigma above: "
              + ", ".join(f"{k} {LOOSE[k]:g}" for k in loose) + "). A board seen squarely or from far leaves the field "
              "of view and the distance (or the tilt and the offset) trading off: add pictures with the board raised "
              "on a box (--board-height) or at other places, use a larger board (--board A3), or give --fovy")
    if moved["position_m"] > FAR_M:
        print(f"warning: the fitted camera is {moved['position_m']:.2f} m from the model's: check --board-center, "
              "--board-yaw and --board against how the board lay")
