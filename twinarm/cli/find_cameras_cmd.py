"""`twinarm find-cameras`: which cameras this machine has, what each sees, and the `--camera` flag for it.

OpenCV devices are probed by index, RealSense devices listed by serial number; each that delivers a frame is
reported with its size and saved as a PNG, so the right one can be named `front` or `wrist`. Sources given with
`--camera NAME=SOURCE` (a device, a video file, a RealSense serial or recording) are checked the same way,
through the very camera classes `teleop` and `eval` open.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from twinarm.cli.config import add_config_arg, at_least


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "find-cameras", help="list the cameras (OpenCV, RealSense), save a frame of each, print their --camera flags",
        description=__doc__.split("\n\n", 1)[1].strip(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--max-index", type=at_least(0), default=10, help="OpenCV device indices probed: 0 .. N-1 (0: none)")
    p.add_argument("--camera", action="append", default=None, metavar="NAME=SOURCE",
                   help="also check this source: index|path|realsense:SERIAL_OR_FILE (repeatable)")
    p.add_argument("--out", type=Path, default=Path("outputs/cameras"), help="folder for the saved frames")
    add_config_arg(p)
    p.set_defaults(func=run_find_cameras, _parser=p)


def grab(name: str, config: dict[str, Any], out: Path) -> tuple[str, Path] | str:
    """Open one camera, save a frame as `out/NAME.png`; (its size and fps, the PNG) or why it failed."""
    import cv2

    from twinarm.cli.camera_pictures import camera_fovy
    from twinarm.real.cameras import make_camera
    from twinarm.real.errors import RealArmError

    try:
        cam = make_camera(config, name=name)
        cam.connect(timeout_s=5.0)
    except (RealArmError, OSError, RuntimeError, ValueError) as exc:
        return f"does not open ({exc})"
    try:
        frame = cam.read_latest()
        path = out / f"{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        intrinsics = cam.intrinsics()  # a RealSense reports its factory calibration: fit-camera holds it
        fov = "" if intrinsics is None else f", fovy {camera_fovy(intrinsics, frame.shape[:2]):.1f} deg (reported)"
        return f"{frame.shape[0]}x{frame.shape[1]} @ {cam.fps} fps{fov}", path  # HxW, as everywhere else
    except (RealArmError, OSError, RuntimeError) as exc:
        return f"opens, but gives no frame ({exc})"
    finally:
        cam.disconnect()


def run_find_cameras(args: argparse.Namespace) -> int:
    from twinarm.real.cameras.opencv_camera import find_opencv_cameras
    from twinarm.real.teleop import cameras_from_args

    try:
        given = cameras_from_args(args.camera)
    except ValueError as exc:
        args._parser.error(str(exc))
    if args.out.exists() and not args.out.is_dir():  # before any camera is opened
        args._parser.error(f"--out {args.out} is a file: give a folder for the saved frames")
    candidates: dict[str, tuple[dict[str, Any], str]] = {}  # name -> (camera config, its --camera source)
    for i in find_opencv_cameras(args.max_index) if args.max_index > 0 else []:
        candidates[f"opencv_{i}"] = ({"type": "opencv", "index_or_path": i}, str(i))
    try:
        from twinarm.real.cameras.realsense_camera import find_realsense_cameras

        for dev in find_realsense_cameras():
            serial = dev["serial_number"]
            candidates[f"realsense_{serial}"] = ({"type": "realsense", "serial_number": serial}, f"realsense:{serial}")
    except (ImportError, RuntimeError) as exc:  # pyrealsense2 missing, or no librealsense backend
        print(f"RealSense: not searched ({exc})")
    sources = dict(item.partition("=")[::2] for item in args.camera or [])  # as typed, for the flags printed
    for name, cfg in given.items():
        candidates[name] = (dict(cfg), sources[name])
    if not candidates:
        probed = f"at indices 0..{args.max_index - 1}" if args.max_index > 0 else "(not probed)"
        print(f"no camera found: no OpenCV device {probed}, no RealSense device. Plugged in? On Linux, is the user "
              "in the `video` group?")
        return 1
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        args._parser.error(f"--out {args.out}: cannot make the folder ({exc.strerror or exc})")
    flags, failed = [], []
    for name, (cfg, source) in candidates.items():
        result = grab(name, cfg, args.out)
        if isinstance(result, tuple):
            print(f"{name:<24} {result[0]:<22} {result[1]}")
            flags.append(f"--camera {name if name in given else 'NAME'}={source}")
        else:
            print(f"{name:<24} {result}")
            if name in given:
                failed.append(f"{name}={sources[name]}")
    if flags:
        hint = " (NAME: what the camera is to the arm, e.g. front or wrist: see the PNGs)" if any("NAME=" in f for f in flags) else ""
        print("flags for teleop / eval: " + " ".join(flags) + hint)
    if failed:  # a source asked for by name that does not deliver: the exit code tells a script
        print(f"twinarm find-cameras: --camera {', '.join(failed)} gave no frame (see above)", file=sys.stderr)
        return 1
    return 0 if flags else 1
