"""`twinarm doctor`: check this machine for what twinarm needs (packages, headless rendering, video codecs, the
servo SDKs and serial-port access, cameras, LeRobot's env plugin where LeRobot is installed, torch's device and CPU
features) and print a fix for each problem.

Exit status 1 when something twinarm cannot work without fails; warnings (no arm plugged in, no GPU) do not.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import metadata

from twinarm.cli.config import add_config_arg

#: Packages of the design card: (import name, pip name).
PACKAGES = (
    ("gymnasium", "gymnasium"), ("mujoco", "mujoco"), ("dm_control", "dm_control"), ("torch", "torch"),
    ("numpy", "numpy"), ("pyarrow", "pyarrow"), ("av", "av"), ("cv2", "opencv-python"),
    ("huggingface_hub", "huggingface_hub"), ("stable_baselines3", "stable-baselines3"),
)  # fmt: skip
#: A sphere under a light, rendered offscreen: a backend that works draws some lit pixels.
_RENDER = (
    "import mujoco; m = mujoco.MjModel.from_xml_string(\"<mujoco><worldbody><light pos='0 0 1'/>"
    "<geom type='sphere' size='.1'/></worldbody></mujoco>\"); r = mujoco.Renderer(m, 24, 24); d = mujoco.MjData(m); "
    "mujoco.mj_forward(m, d); r.update_scene(d); print(int(r.render().max()))"
)
USB_SERIAL = ("ttyACM", "ttyUSB", "usbmodem", "usbserial", "COM")


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check this machine for what twinarm needs and print fixes",
                       description=__doc__.split("\n\n", 1)[1].strip())  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--no-render", action="store_true", help="skip the rendering check (it starts two subprocesses)")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def check_packages() -> list[Check]:
    out = [Check("python", "ok" if sys.version_info >= (3, 10) else "fail", platform.python_version(),
                 "" if sys.version_info >= (3, 10) else "twinarm needs Python 3.10 or newer")]  # fmt: skip
    for module, pip_name in PACKAGES:
        try:
            mod = importlib.import_module(module)
            try:
                version = metadata.version(pip_name)
            except metadata.PackageNotFoundError:  # installed some other way
                version = str(getattr(mod, "__version__", "installed"))
            out.append(Check(pip_name, "ok", version))
        except Exception as exc:  # an import can fail with more than ImportError (a broken shared library)
            out.append(Check(pip_name, "fail", f"cannot import {module}: {exc}", f"pip install {pip_name}"))
    return out


def check_rendering() -> Check:
    """Which MuJoCo GL backends render offscreen here (each tried in its own process: MuJoCo picks one per
    process), and whether the one in use is among them."""
    current = os.environ.get("MUJOCO_GL", "egl" if not os.environ.get("DISPLAY") else "glfw")
    works = []
    for backend in dict.fromkeys((current, "egl", "osmesa")):
        env = {**os.environ, "MUJOCO_GL": backend, **({"PYOPENGL_PLATFORM": backend} if backend != "glfw" else {})}
        try:
            r = subprocess.run([sys.executable, "-c", _RENDER], env=env, capture_output=True, text=True, timeout=60)
            if r.returncode == 0 and int(r.stdout.strip().splitlines()[-1]) > 0:
                works.append(backend)
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            pass
    if current in works:
        return Check("rendering", "ok", f"MUJOCO_GL={current} renders (works: {', '.join(works)})")
    if works:
        return Check("rendering", "fail", f"MUJOCO_GL={current} does not render; {', '.join(works)} does",
                     f"export MUJOCO_GL={works[0]}")
    return Check("rendering", "fail", "no offscreen GL backend renders (tried egl, osmesa)",
                 "install headless GL: apt-get install libegl1 libgl1 libosmesa6 (then MUJOCO_GL=egl or osmesa)")


def check_codecs() -> list[Check]:
    """Encode and decode a few frames with each codec the writer offers (the encoders' banners silenced)."""
    import av
    import numpy as np

    from twinarm.datasets_io.video import CODECS, EpisodeEncoder, encoder_options

    out = []
    for codec in CODECS:
        try:
            enc = EpisodeEncoder(96, 96, 30, codec, encoder_options(codec))
            for t in range(4):
                enc.add(np.full((96, 96, 3), 40 * t, dtype=np.uint8))
            with av.open(io.BytesIO(enc.finish())) as c:
                n = sum(1 for _ in c.decode(c.streams.video[0]))
            ok = n == 4
            out.append(Check(f"video {codec}", "ok" if ok else "fail", f"{CODECS[codec][0]}: {n}/4 frames back",
                             "" if ok else "reinstall PyAV: pip install --force-reinstall av"))  # fmt: skip
        except Exception as exc:
            status = "fail" if codec == "h264" else "warn"  # h264 is the default; the others are options
            out.append(Check(f"video {codec}", status, f"{CODECS[codec][0]}: {exc}",
                             "pip install --force-reinstall av (its wheels bundle the codecs)"))
    return out


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence what C libraries (SVT-AV1, x265) print to the process's stderr, file descriptor 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_servo_sdks() -> list[Check]:
    out = []
    for module, pip_name, arms in (("scservo_sdk", "feetech-servo-sdk", "SO-100/SO-101"),
                                   ("dynamixel_sdk", "dynamixel-sdk", "Koch, ALOHA")):  # fmt: skip
        try:
            importlib.import_module(module)
            out.append(Check(pip_name, "ok", f"imports ({arms})"))
        except Exception as exc:
            out.append(Check(pip_name, "fail", f"cannot import {module}: {exc}", f"pip install {pip_name}"))
    return out


def serial_ports() -> list[str]:
    """USB serial devices (the arms' adapters), by the names Linux, macOS and Windows give them."""
    try:
        from serial.tools import list_ports

        found = [p.device for p in list_ports.comports()]
    except ImportError:
        found = []
    return sorted(p for p in found if any(tag in p for tag in USB_SERIAL))


def check_serial() -> Check:
    ports = serial_ports()
    if not ports:
        return Check("serial ports", "warn", "no USB serial port (no arm plugged in)",
                     "plug the arm's USB adapter in, then `twinarm find-port`; `twinarm virtual-arm` serves one without hardware")
    denied = [p for p in ports if not os.access(p, os.R_OK | os.W_OK)]
    if denied:
        fix = ("sudo usermod -aG dialout $USER, then log out and back in" if sys.platform.startswith("linux")
               else "give your user read/write access to the port")  # fmt: skip
        return Check("serial ports", "fail", f"no read/write access to {', '.join(denied)}", fix)
    return Check("serial ports", "ok", ", ".join(ports))


def check_realsense() -> Check:
    try:
        import pyrealsense2 as rs
    except Exception as exc:
        return Check("pyrealsense2", "warn", f"cannot import: {exc}", "pip install pyrealsense2 (RealSense cameras only)")
    try:
        n = len(rs.context().query_devices())
    except Exception as exc:  # no USB access, no udev rules
        return Check("pyrealsense2", "warn", f"cannot list devices: {exc}", "install librealsense's udev rules")
    return Check("pyrealsense2", "ok", f"{n} RealSense device(s)")


def check_board_detection() -> Check:
    """`fit-camera` finds its ChArUco board with OpenCV's aruco module (in opencv-python since 4.7): print one
    and read it back."""
    try:
        from twinarm.envs.camera_fit import Board, detect_corners

        board = Board()
        found = len(detect_corners(board.image(60), board)[0])
    except Exception as exc:  # an old OpenCV lacks CharucoDetector; a contrib build may clash
        return Check("camera board", "warn", f"cannot detect the ChArUco board: {exc}",
                     "pip install -U 'opencv-python>=4.7' (only `twinarm fit-camera` needs it)")
    return Check("camera board", "ok", f"ChArUco {board.label}: {found} corners read back (fit-camera)")


def check_display() -> Check:
    """A window needs a display (`teleop --view`); everything else runs headless."""
    from twinarm.cli.teleop_view import display_problem

    problem = display_problem()
    if problem:
        return Check("display", "warn", problem.split(":")[0] + "; only `teleop --view` needs one",
                     "run `teleop --view` on the desktop or over `ssh -X`; the rest runs headless")
    return Check("display", "ok", f"DISPLAY={os.environ.get('DISPLAY', '')}" if os.environ.get("DISPLAY") else "a window can open")


def check_lerobot_plugin() -> Check:
    """Where LeRobot is installed beside twinarm, its env type `twinarm` (`lerobot-eval --env.type=twinarm`) must
    load; LeRobot itself is optional."""
    try:
        version = metadata.version("lerobot")
    except metadata.PackageNotFoundError:
        return Check("lerobot plugin", "ok", "LeRobot not installed here (optional)")
    try:
        importlib.import_module("twinarm.lerobot_env")
        from lerobot.envs.configs import EnvConfig

        EnvConfig.get_choice_class("twinarm")
    except Exception as exc:  # an API that moved in another LeRobot version fails in many ways
        return Check("lerobot plugin", "warn", f"lerobot {version}: twinarm.lerobot_env does not load: {exc}",
                     "twinarm's LeRobot plugin is made for lerobot 0.6 (pip install 'lerobot==0.6.1')")
    return Check("lerobot plugin", "ok", f"lerobot {version}: --env.discover_packages_path=twinarm.lerobot_env "
                 "--env.type=twinarm")


def check_torch() -> Check:
    import torch

    from twinarm.datasets_io.video import cpu_flags

    if torch.cuda.is_available():
        return Check("torch device", "ok", f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name(0)}")
    from twinarm.agents.precision import check_precision

    flags = cpu_flags()
    try:
        check_precision("bf16", "cpu")  # what `--precision bf16` itself accepts
        bf16 = True
    except ValueError:
        bf16 = False
    feats = [f for f, on in (("AVX-512", "avx512f" in flags), ("VNNI", "avx512_vnni" in flags), ("bf16", bf16)) if on]
    tips = "eval --int8" + (", --precision bf16" if bf16 else "")
    return Check("torch device", "warn", f"CPU only, {torch.get_num_threads()} threads"
                 + (f" ({', '.join(feats)})" if feats else ""), f"on this CPU policies run faster with {tips}")


def run(args: argparse.Namespace) -> int:
    checks = check_packages()
    if not args.no_render:
        checks.append(check_rendering())
    with _quiet_stderr():
        checks += check_codecs()
    checks += check_servo_sdks() + [check_serial(), check_realsense(), check_board_detection(), check_display(),
               check_lerobot_plugin(), check_torch()]
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        w = max(len(c.name) for c in checks) + 2
        for c in checks:
            print(f"{mark[c.status]}  {c.name:<{w}}{c.detail}")
        fixes = [c for c in checks if c.fix and c.status != "ok"]
        if fixes:
            print("\nto fix:")
            for c in fixes:
                print(f"  {c.name}: {c.fix}")
    return 1 if any(c.status == "fail" for c in checks) else 0
