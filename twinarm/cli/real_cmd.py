"""Real-arm commands: `twinarm calibrate`, `twinarm setup-motors`, `twinarm find-port`, `twinarm teleop`."""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinarm.cli.config import (
    add_camera_poses_arg,
    add_config_arg,
    add_dynamics_arg,
    add_randomization_arg,
    at_least,
    env_entry,
    known_env_id,
    positive,
)
from twinarm.cli.teleop_record import add_record_args
from twinarm.real.control_tables import DEFAULT_BAUD

if TYPE_CHECKING:
    from twinarm.real.calibration import Calibration
    from twinarm.spec import ArmSpec

TELEOP_DESCRIPTION = """\
Leader -> follower teleoperation, or keyboard control of one arm. Prints the loop rate every second
and once more on exit; the follower's torque goes off on exit, on errors and on Ctrl-C. With --env SIM_ID
the follower is the simulated arm of that env (stepped in real time), so demonstrations can be recorded in
sim by hand, with the features `twinarm record` writes. --view shows the follower's cameras in a window.

  SO-100/101, Koch: one leader arm drives one follower arm.
  ALOHA: two leader arms drive the two follower arms, each its own side (left leader -> left
    follower, right leader -> right follower). Every port and calibration flag then takes one value
    per arm, left=...,right=... (the names `twinarm virtual-arm --arm aloha` prints for its ports).
    A calibration may instead be one file with both arms' motors (left_waist ... right_gripper).
    Per-arm files name their motors as the spec does (left_waist) or as on one arm (waist, like
    LeRobot's per-arm files); `twinarm calibrate --arm aloha --side left [--leader]` makes them.
    --keyboard drives a single arm, so it is refused for ALOHA's two arms."""

TELEOP_EPILOG = """\
examples:
  twinarm teleop --arm so101 --port /dev/ttyACM0 --calibration follower.json \\
      --leader-port /dev/ttyACM1 --leader-calibration leader.json
  twinarm teleop --arm aloha \\
      --port left=/dev/ttyDXL_follower_left,right=/dev/ttyDXL_follower_right \\
      --calibration left=follower_left.json,right=follower_right.json \\
      --leader-port left=/dev/ttyDXL_leader_left,right=/dev/ttyDXL_leader_right \\
      --leader-calibration left=leader_left.json,right=leader_right.json
  twinarm teleop --arm koch --port /dev/ttyACM0 --calibration koch.json --keyboard
  twinarm teleop --env twinarm/SO101-PickCube-v0 --keyboard tool --view     # no hardware: pick by keyboard
  twinarm teleop --env twinarm/SO101-PickCube-v0 --leader-port /dev/ttyACM1 --leader-calibration leader.json \\
      --view --record data/so101_pick_teleop_sim --episodes 20                # human demos in sim
  twinarm teleop --arm so101 --port /dev/ttyACM0 --calibration follower.json \\
      --leader-port /dev/ttyACM1 --leader-calibration leader.json \\
      --camera front=0 --camera wrist=realsense:0123456789 --image-size 240 320 \\
      --record data/so101_pick_real --task "Pick up the cube." --episodes 50 --episode-time 20"""


CALIBRATE_EPILOG = """\
examples:
  twinarm calibrate --arm so101 --port /dev/ttyACM0 --out follower.json
  twinarm calibrate --arm so101 --leader --port /dev/ttyACM1 --out leader.json
  twinarm calibrate --arm aloha --side left --leader --port /dev/ttyDXL_leader_left \\
      --out leader_left.json                                        # one file per arm and role"""

SETUP_MOTORS_EPILOG = """\
examples:
  twinarm setup-motors --arm so101 --port /dev/ttyACM0                  # each joint in turn, asked for
  twinarm setup-motors --arm koch --leader --port /dev/ttyACM1 --motor gripper
  twinarm setup-motors --arm aloha --side left --port /dev/ttyDXL_follower_left"""

FIND_PORT_EPILOG = """\
examples:
  twinarm find-port      # then unplug the arm's USB cable and press Enter

A `twinarm virtual-arm` needs no finding: its port is the /dev/pts/N it printed (`port: ...`)."""

#: Printed before find-port lists the ports: a virtual arm's pty is not among them.
VIRTUAL_PORT_NOTE = "(a `twinarm virtual-arm` is not listed here: its port is the /dev/pts/N it printed)"


def _enter(text: str) -> None:
    try:
        input(text + " ")
        if not sys.stdin.isatty():  # no terminal echoed the Enter: end the prompt's line, so what follows
            print(flush=True)       # (a result, an error) starts a line of its own
    except EOFError:  # stdin closed (a pipe that ran dry, no terminal): nothing will ever press Enter
        raise SystemExit(f"\nstdin closed while waiting for Enter ({text!r}): run this command in a terminal") from None


def _announce(text: str) -> None:
    """An instruction whose Enter is read elsewhere (calibrate's range step polls stdin while recording)."""
    print(text, flush=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="calibrate an arm (homing + range of motion), save LeRobot-format JSON",
        description=textwrap.fill(
            "Interactive calibration: put the arm mid-range, then move every joint through "
            "its range. Saves {motor: {id, drive_mode, homing_offset, range_min, range_max}}, the "
            "format LeRobot uses, so existing LeRobot calibrations work too. Every joint must sweep at least 9 "
            "degrees (a joint that only sagged is named, with its span). A virtual follower (`twinarm virtual-arm`) "
            "has no hand to move its joints: serve it with --calibrated, or use the file its --write-calibration "
            "writes; a virtual leader (--leader) moves to the poses typed on its stdin.", 100),
        epilog=CALIBRATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_one_arm_args(p, "calibrate the arm's leader (its servo model)")
    p.add_argument("--port", required=True, help="serial port (see `twinarm find-port`) or a virtual-arm pty")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="the motors' baud rate")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file (default ~/.cache/twinarm/calibration/<arm>[_leader]/<id>.json)",
    )
    p.add_argument("--id", default="default", help="robot id: the file name in --out's usual path")
    add_config_arg(p)
    p.set_defaults(func=run_calibrate, _parser=p)

    p = sub.add_parser(
        "setup-motors",
        help="give each motor its id and baud, one motor at a time",
        description=textwrap.fill(
            "For each joint, connect only that motor to the bus adapter and press Enter; "
            "it gets the spec's id and the bus baud rate, whatever id and baud it had (a new servo: id 1, at the "
            "factory's baud). --leader sets up the leader arm's servos (Koch: XL330-M077; ALOHA: the WidowX's), "
            "--side one arm of a two-arm set-up (aloha).", 100),
        epilog=SETUP_MOTORS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_one_arm_args(p, "set up the arm's leader (its servo models: Koch XL330-M077, ALOHA's WidowX), as "
                      "`calibrate --leader`")
    p.add_argument("--port", required=True, help="the bus adapter's serial port (see `twinarm find-port`)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help="the baud rate each motor is set to (the one teleop, eval and calibrate use)")
    p.add_argument("--motor", default=None,
                   help="only this joint's motor, without asking (default: every joint, one at a time)")
    add_config_arg(p)
    p.set_defaults(func=run_setup_motors, _parser=p)

    p = sub.add_parser(
        "find-port",
        help="find the serial port of an arm by unplugging it",
        description="Lists serial ports, asks you to unplug the arm, and prints the port that vanished.",
        epilog=FIND_PORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arg(p)
    p.set_defaults(func=run_find_port, _parser=p)

    p = sub.add_parser(
        "teleop",
        help="drive a follower arm (ALOHA: both arms) from leader arms or the keyboard, "
        "showing the loop rate",
        description=TELEOP_DESCRIPTION,
        epilog=TELEOP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arm", default=None, help="so101, so100, koch or aloha (default: so101, or --env's arm)")
    p.add_argument("--env", type=known_env_id, default=None, metavar="SIM_ID",
                   help="follow with a simulated arm instead of a real one: a sim env id (`twinarm envs`), "
                   "stepped at the arm's control rate; no --port, --calibration or --camera then")
    p.add_argument("--obs-type", default="pixels_agent_pos", choices=["pixels_agent_pos", "state"],
                   help="with --env: record the cameras and joint positions (as on the real arm), or the joint "
                   "positions and the sim's object poses, as `twinarm record --obs-type` does")
    p.add_argument("--view", action="store_true", help="show the follower's cameras (simulated or --camera) in a "
                   "window; keys typed in it (one per frame) count as typed in the terminal")
    add_randomization_arg(p, "the simulated follower (with --env; drawn anew each recorded episode)")
    add_dynamics_arg(p, "the simulated follower (with --env)")
    add_camera_poses_arg(p, "the simulated follower (with --env)")
    add_follower_args(p, required=False)
    p.add_argument("--leader-port", default=None, help="leader port; aloha: left=PORT,right=PORT")
    p.add_argument(
        "--leader-calibration",
        default=None,
        help="leader calibration (LeRobot JSON); aloha: left=FILE,right=FILE or one file",
    )
    p.add_argument("--leader-baud", type=int, default=DEFAULT_BAUD, help="the leader motors' baud rate")
    p.add_argument(
        "--keyboard", nargs="?", const="joint", default=None, choices=("joint", "tool"),
        help="keyboard instead of a leader arm (one-arm set-ups): 'joint' (the default) nudges one joint per "
        "key pair; 'tool' moves the gripper's tip up/down/left/right/forward/back and rolls the wrist, "
        "by inverse kinematics on the arm's model (picking by keyboard)",
    )
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="camera image size (default: the arm spec's, 480x640; with --env 240x320, as `twinarm "
                   "record`)")
    p.add_argument("--duration", type=positive, default=None, help="seconds (default: until Ctrl-C)")
    p.add_argument("--max-steps", type=at_least(1), default=None, help="stop after this many control steps")
    add_record_args(p)
    add_config_arg(p)
    p.set_defaults(func=run_teleop, _parser=p)


def _add_one_arm_args(p: argparse.ArgumentParser, leader_help: str) -> None:
    """--arm, --leader and --side: which one arm a set-up command works on (`_one_arm` reads them)."""
    p.add_argument("--arm", default="so101", help="so101, so100, koch or aloha")
    p.add_argument("--leader", action="store_true", help=leader_help)
    p.add_argument("--side", default=None,
                   help="for set-ups of two arms on separate ports (aloha): which arm, left or right")


def run_calibrate(args: argparse.Namespace) -> int:
    from twinarm.real.buses import BUSES
    from twinarm.real.calibrate import run_calibration
    from twinarm.real.calibration import check_writable, default_calibration_path
    from twinarm.real.errors import CalibrationError
    from twinarm.real.teleop import arm_part, leader_inverted_joints

    spec = _arm(args)
    group, part = _one_arm(args, spec, "calibrate")
    out = args.out or default_calibration_path(
        arm_part(spec, group).name + ("_leader" if args.leader else ""), args.id
    )
    try:  # before the first prompt: a save that fails at the end would lose the whole calibration
        out = check_writable(out, "--out" if args.out else "the default calibration file (choose one with --out)")
    except CalibrationError as exc:
        args._parser.error(str(exc))
    bus = BUSES[spec.motor_bus].from_spec(part, args.port, baud=args.baud)
    bus.connect()
    done = {"flag": False, "shown": False}

    def wait_enter(_: dict) -> bool:
        import select

        if select.select([sys.stdin], [], [], 0)[0]:
            sys.stdin.readline()
            done["flag"] = True
        return done["flag"]

    def show(pos: dict, ranges: dict) -> None:
        line = "  ".join(f"{n}:{ranges[n][0]}-{ranges[n][1]}" for n in pos)
        print("\r" + line, end="", flush=True)
        done["shown"] = True

    try:
        # the range step's Enter is the one wait_enter polls for while recording: announce it, do not wait
        inverted = leader_inverted_joints(spec, group) if args.leader else ()
        cal = run_calibration(bus, part, _enter, wait_enter, on_sample=show, announce=_announce, inverted=inverted)
    except BaseException:  # an error or Ctrl-C: its message on a line of its own, not after the ranges line
        if done["shown"]:
            print(flush=True)
        raise
    finally:
        bus.close()
    cal.save(out)
    print(f"\ncalibration saved to {out}")
    return 0


def _one_arm(args: argparse.Namespace, spec: ArmSpec, verb: str) -> tuple[str, ArmSpec]:
    """(bus group, spec of the one arm on --port): `--side` picks one arm of a two-arm set-up (aloha), and
    `--leader` the leader's servo models; a usage error when a side is missing or given for a one-arm spec."""
    from twinarm.real.multi_bus import bus_groups
    from twinarm.real.teleop import arm_part, leader_spec

    groups = list(bus_groups(spec))
    if len(groups) > 1 and args.side not in groups:
        args._parser.error(
            f"--arm {spec.name} is {len(groups)} arms on separate ports: {verb} each one with "
            + " / ".join(f"--side {g}" for g in groups)
            + ("" if args.side is None else f" (got --side {args.side})")
        )
    if len(groups) == 1 and args.side is not None:
        args._parser.error(f"--arm {spec.name} is one arm; --side is for two-arm set-ups such as aloha")
    group = args.side or ""
    return group, leader_spec(spec, group) if args.leader else arm_part(spec, group)


def _leader_hints(spec: ArmSpec, group: str, leader: bool) -> dict[int, str]:
    """{model number: advice} for the servo models of the other role (the leader's when setting up a follower,
    the follower's when setting up a leader): a model mismatch then says which flag was forgotten or extra."""
    from twinarm.real.control_tables import get_model
    from twinarm.real.teleop import arm_part, leader_spec

    other = arm_part(spec, group) if leader else leader_spec(spec, group)
    advice = ("that is the follower's servo: leave out --leader" if leader
              else "that is the leader arm's servo: add --leader to set up the leader")
    mine = {j.motor_model for j in (leader_spec(spec, group) if leader else arm_part(spec, group)).joints}
    return {get_model(j.motor_model).model_number: advice for j in other.joints if j.motor_model not in mine}


def run_setup_motors(args: argparse.Namespace) -> int:
    from twinarm.real.buses import BUSES
    from twinarm.real.calibrate import setup_motor

    spec = _arm(args)
    group, part = _one_arm(args, spec, "set up")
    joints = [j for j in part.joints if args.motor in (None, j.name, j.name.removeprefix(f"{group}_"))]
    if not joints:
        args._parser.error(f"--motor {args.motor}: arm {spec.name}{f' ({group} arm)' if group else ''} has no such "
                           "joint; its joints: " + ", ".join(part.joint_names))
    if not Path(args.port).exists():  # before asking to connect the first motor, not after
        from twinarm.real.errors import PortNotFoundError

        raise PortNotFoundError(args.port, "no such device")
    hints = _leader_hints(spec, group, args.leader)
    for j in reversed(joints):
        if args.motor is None:
            _enter(f"Connect ONLY the '{j.name}' motor ({j.motor_model}) to the adapter and press Enter.")
        old_id, old_baud = setup_motor(BUSES[spec.motor_bus], args.port, j.motor_model, j.motor_id, args.baud,
                                       hints=hints)
        print(f"{j.name}: id {old_id} @ {old_baud} -> id {j.motor_id} @ {args.baud}")
    return 0


def run_find_port(args: argparse.Namespace) -> int:
    from twinarm.real.ports import find_port

    print(VIRTUAL_PORT_NOTE, flush=True)
    try:
        print(f"the arm's port is {find_port(_enter)}")
    except RuntimeError as exc:  # no port, or several, disappeared
        print(f"twinarm find-port: {exc}", file=sys.stderr)
        return 1
    return 0


def _arm(args: argparse.Namespace) -> ArmSpec:
    """The --arm's spec, or a usage error listing the known arms."""
    from twinarm.arms import get_arm

    try:
        return get_arm(args.arm)
    except KeyError as exc:
        args._parser.error(f"--arm: {exc.args[0]}")


def _per_arm(
    parser: argparse.ArgumentParser,
    value: str,
    flag: str,
    spec: ArmSpec,
    groups: list[str],
    one_for_all: bool = False,
) -> dict[str, str]:
    """`FLAG VALUE` -> {bus group: value}: one value for a one-bus arm (group ""); `left=A,right=B` for
    ALOHA, or with `one_for_all` one value for every arm (a calibration file holding all the motors)."""
    if groups == [""]:
        if re.match(r"(left|right)=", value):
            parser.error(
                f"{flag} {value}: --arm {spec.name} is one arm, give one value "
                "(left=...,right=... is for two-arm set-ups such as --arm aloha)"
            )
        return {"": value}
    form = ",".join(f"{g}=..." for g in groups)
    if "=" not in value:
        if one_for_all:
            return {g: value for g in groups}
        parser.error(
            f"{flag} {value}: --arm {spec.name} is {len(groups)} arms, give one per arm: {flag} {form}"
        )
    out: dict[str, str] = {}
    for item in value.split(","):
        group, _, v = (part.strip() for part in item.partition("="))
        if group not in groups or not v:
            parser.error(
                f"{flag} {value}: {item!r} is not ARM=VALUE with ARM one of {', '.join(groups)} "
                f"(expected {flag} {form})"
            )
        if group in out:
            parser.error(f"{flag} {value}: {group} is given twice")
        out[group] = v
    missing = [g for g in groups if g not in out]
    if missing:
        parser.error(f"{flag} {value}: no {' or '.join(missing)} arm (expected {flag} {form})")
    return out


def _role(group: str, what: str) -> str:
    return f"{group} {what} arm" if group else f"{what} arm"


def add_follower_args(p: argparse.ArgumentParser, required: bool) -> None:
    """The follower arm's flags, shared by `teleop` and by `eval` on a -Real id."""
    p.add_argument(
        "--port", required=required, default=None,
        help="follower port (see `twinarm find-port`, or a `twinarm virtual-arm` pty); aloha: left=PORT,right=PORT",
    )  # fmt: skip
    p.add_argument(
        "--calibration", required=required, default=None,
        help="follower calibration (LeRobot JSON); aloha: left=FILE,right=FILE or one file",
    )  # fmt: skip
    p.add_argument(
        "--camera", action="append", default=None, help="name=index|path|realsense:SERIAL (repeatable)"
    )
    p.add_argument(
        "--lens", action="append", default=None, metavar="NAME=FILE",
        help="a camera's lens file (`twinarm fit-camera --calibrate-lens`): its frames are undistorted to the sim "
        "camera's pinhole (repeatable)",
    )  # fmt: skip
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="the follower motors' baud rate")
    p.add_argument("--max-relative-target", type=positive, default=0.2, help="max target change per step (rad)")


@dataclass
class Follower:
    """A follower arm's checked flags: the port and calibration file of each bus group, camera configs."""

    spec: ArmSpec
    ports: dict[str, str]
    cal_files: dict[str, str]
    cameras: Mapping[str, dict[str, Any]]
    max_relative_target: float
    baud: int = DEFAULT_BAUD

    def calibration(self, command: str) -> Calibration:
        """Read and check the calibration file(s); a missing file or one for another arm exits naming it."""
        from twinarm.real.calibration import Calibration
        from twinarm.real.errors import RealArmError
        from twinarm.real.teleop import part_calibration

        try:
            parts = [part_calibration(f, self.spec, g) for g, f in self.cal_files.items()]
        except RealArmError as exc:
            raise SystemExit(f"twinarm {command}: {exc}") from None
        return Calibration({n: c for part in parts for n, c in part.motors.items()})

    def env_kwargs(self, command: str) -> dict[str, Any]:
        """Keyword arguments for `RealArmEnv`, i.e. for `gymnasium.make` of a -Real id (reads the calibration)."""
        port: str | dict[str, str] = self.ports[""] if list(self.ports) == [""] else dict(self.ports)
        return {
            "port": port,
            "calibration": self.calibration(command),
            "cameras": dict(self.cameras),
            "max_relative_target": self.max_relative_target,
            "baud": self.baud,
        }


def _check_camera_names(parser: argparse.ArgumentParser, items: list[str], spec: ArmSpec) -> None:
    """A usage error for a `--camera NAME=SOURCE` whose NAME is not one of the arm's cameras (a KeyError traceback
    in teleop; eval only said which cameras its policy wanted)."""
    for item in items:
        name = item.partition("=")[0]
        if name not in spec.camera_names:
            parser.error(f"--camera {item}: arm {spec.name} has no camera {name!r}; its cameras: "
                         f"{', '.join(spec.camera_names) or 'none'}")


def parse_follower(parser: argparse.ArgumentParser, args: argparse.Namespace, spec: ArmSpec) -> Follower:
    """Check the follower flags (nothing is opened or read yet); errors name the flag at fault."""
    from twinarm.real.cameras.lens import Lens
    from twinarm.real.multi_bus import bus_groups
    from twinarm.real.teleop import cameras_from_args

    try:
        cameras = dict(cameras_from_args(args.camera))
    except ValueError as exc:
        parser.error(str(exc))
    _check_camera_names(parser, args.camera or [], spec)
    for item in args.lens or []:
        name, _, path = item.partition("=")
        if not name or not path:
            parser.error(f"--lens {item}: give NAME=FILE for a camera named by --camera ({', '.join(cameras) or 'none'})")
        if name not in cameras:
            given = f"--camera gives: {', '.join(cameras)}" if cameras else "no --camera is given"
            parser.error(f"--lens {item}: no camera named {name} ({given})")
        try:
            Lens.load(path)
        except (FileNotFoundError, ValueError) as exc:
            parser.error(f"--lens {item}: {exc}")
        cameras[name] = {**cameras[name], "lens": path}
    groups = list(bus_groups(spec))
    ports = _per_arm(parser, args.port, "--port", spec, groups)
    if len(set(ports.values())) < len(ports):
        parser.error(f"--port {args.port}: each arm needs its own port")
    cal_files = _per_arm(parser, str(args.calibration), "--calibration", spec, groups, one_for_all=True)
    return Follower(spec, ports, cal_files, cameras, args.max_relative_target, args.baud)


def _sim_follower_id(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """--env's sim id, checked against the real follower's flags (and --arm set from it); without --env,
    None once the real follower's --port and --calibration are there."""
    if args.env is None:
        sim_only = [f for f, v in (("--randomization", args.randomization), ("--obs-type", args.obs_type == "state"),
                                   ("--dynamics", args.dynamics), ("--camera-poses", args.camera_poses),
                                   ("--only-success", args.only_success),
                                   ("--end-on-success", args.end_on_success is not None)) if v]  # fmt: skip
        if sim_only:
            parser.error(f"{', '.join(sim_only)}: for a simulated follower; add --env SIM_ID")
        if not (args.port and args.calibration):
            parser.error("teleop needs the follower arm's --port and --calibration (or --env SIM_ID to follow "
                         "with a simulated arm)")
        if args.view and not args.camera:
            parser.error("--view shows the follower's cameras: give them with --camera NAME=SOURCE")
        args.arm = args.arm or "so101"
        return None
    from twinarm.arms import get_arm

    entry = env_entry(parser, args.env)
    if args.env != entry.sim_id:
        parser.error(f"--env {args.env} is a real arm's id: give a real follower by --port and --calibration "
                     f"(--env {entry.sim_id} follows with its simulated arm)")
    given = [f for f, v in (("--port", args.port), ("--calibration", args.calibration), ("--camera", args.camera),
                            ("--lens", args.lens)) if v]  # fmt: skip
    if given:
        parser.error(f"--env follows with a simulated arm; {', '.join(given)} "
                     f"{'belongs' if len(given) == 1 else 'belong'} to a real one")
    if args.arm is not None and _arm(args).name != get_arm(entry.arm).name:
        parser.error(f"--arm {args.arm} and --env {args.env} (a {get_arm(entry.arm).display_name}) disagree; "
                     "drop --arm")
    args.arm = entry.arm
    recording_only = [f for f, v in (("--only-success", args.only_success),
                                     ("--end-on-success", args.end_on_success is not None)) if v]  # fmt: skip
    if recording_only and not args.record:
        parser.error(f"{', '.join(recording_only)}: for recording; add --record ROOT")
    if args.end_on_success is not None and args.end_on_success < 0:
        parser.error(f"--end-on-success must be >= 0 seconds, got {args.end_on_success:g}")
    if args.record and not args.task:
        args.task = entry.task_info.instruction
    return entry.sim_id


def run_teleop(args: argparse.Namespace) -> int:
    from twinarm.cli.config import load_camera_poses_arg, load_dynamics, load_randomization
    from twinarm.cli.record_cmd import IMAGE_SIZE, env_state_dim
    from twinarm.cli.teleop_record import TeleopRecording, slow_loop_note
    from twinarm.cli.teleop_sim import SimFollower, make_sim_follower
    from twinarm.cli.teleop_view import FollowerView, Viewed, display_problem
    from twinarm.real.env import RealArmEnv
    from twinarm.real.errors import RealArmError
    from twinarm.real.multi_bus import bus_groups
    from twinarm.real.teleop import (
        KeyboardTeleop,
        LoopStats,
        Teleoperator,
        make_leader,
        part_calibration,
        teleoperate,
    )
    from twinarm.real.terminal_keys import KeyHub, TerminalKeys

    parser = args._parser
    sim_id = _sim_follower_id(parser, args)
    spec = _arm(args)
    if args.view and (problem := display_problem()):
        parser.error(f"--view: {problem}")
    # the simulated follower's options, checked before anything opens (errors name the file or preset)
    randomization = load_randomization(args.randomization) if sim_id else None
    dynamics = load_dynamics(args.dynamics, spec.name) if sim_id else None
    camera_poses = load_camera_poses_arg(args.camera_poses, spec.name) if sim_id else None
    groups = list(bus_groups(spec))
    if args.keyboard and len(groups) > 1:
        parser.error(
            f"--keyboard drives one arm; --arm {spec.name} is {len(groups)} arms ({spec.dof} joints): "
            "drive them with two leader arms (--leader-port "
            + ",".join(f"{g}=PORT" for g in groups)
            + " --leader-calibration "
            + ",".join(f"{g}=FILE" for g in groups)
            + ")"
        )
    if not args.keyboard and not (args.leader_port and args.leader_calibration):
        parser.error("teleop needs --leader-port and --leader-calibration (or --keyboard)")

    # Every flag is checked and every calibration file read before any motor is touched.
    follower = None if sim_id else parse_follower(parser, args, spec)
    ports = follower.ports if follower is not None else {}
    if args.keyboard and not sys.stdin.isatty() and not args.view:
        parser.error("--keyboard reads keys from an interactive terminal (or from --view's window); "
                     "stdin is not one")
    roles = {ports[g]: _role(g, "follower") for g in ports}
    leader_ports: dict[str, str] = {}
    leader_cal_files: dict[str, str] = {}
    if not args.keyboard:
        leader_ports = _per_arm(parser, args.leader_port, "--leader-port", spec, groups)
        leader_cal_files = _per_arm(
            parser, str(args.leader_calibration), "--leader-calibration", spec, groups, one_for_all=True
        )
        for g, port in leader_ports.items():
            if port in roles:
                parser.error(f"port {port} is given for both the {roles[port]} and the {_role(g, 'leader')}")
            roles[port] = _role(g, "leader")
    try:
        leader_cals = {g: part_calibration(f, spec, g, leader=True) for g, f in leader_cal_files.items()}
    except RealArmError as exc:
        raise SystemExit(f"twinarm teleop: {exc}") from None
    if follower is None:
        image_size = tuple(args.image_size or IMAGE_SIZE)
        env_kwargs = {}
        if args.obs_type == "state":
            cameras, env_dim, source = (), env_state_dim(sim_id), f"{sim_id} with state observations"
        else:
            cameras, env_dim, source = spec.resolve_cameras(image_size=image_size), None, f"{sim_id} at {image_size}"
    else:
        env_kwargs = follower.env_kwargs("teleop")
        cameras = spec.resolve_cameras(list(follower.cameras), args.image_size) if follower.cameras else ()
        source = f"arm {spec.name} with " + (", ".join(f"{c.name} {c.height}x{c.width}" for c in cameras) or "no cameras")
        env_dim = None
    # the dataset is opened (or checked for appending) before any motor moves
    recording = (TeleopRecording(args, spec, cameras, source, sim=sim_id is not None, env_state_dim=env_dim)
                 if args.record else None)  # fmt: skip

    def hardware_error(exc: RealArmError, default: str) -> SystemExit:
        from twinarm.real.cameras.base import CameraError

        if isinstance(exc, CameraError):  # it names its camera; it is no fault of the follower arm
            return SystemExit(f"twinarm teleop: {exc}")
        return SystemExit(f"twinarm teleop: {roles.get(getattr(exc, 'port', None), default)}: {exc}")

    stats = LoopStats()
    stop: KeyboardInterrupt | None = None  # Ctrl-C (or SIGTERM/SIGHUP): what is done is saved, then exit 128+N
    leader: Teleoperator | None = None
    env: RealArmEnv | SimFollower | Viewed | None = None
    window: FollowerView | None = None
    keys: KeyHub | None = None
    try:
        if args.keyboard or recording is not None:
            try:
                keys = TerminalKeys()  # one reader for the teleop keys and the recording keys
            except OSError:
                if args.view:  # the view's window takes the keys
                    keys = KeyHub()
                elif args.keyboard:
                    raise
                elif sys.stdin.isatty():
                    print("note: the recording keys need a terminal that stdin is not; recording without them")
        if args.view:  # the window first: it takes keys, and a failing display stops us before any motor moves
            window = FollowerView(f"twinarm teleop: {sim_id or spec.display_name}", keys)
        if not args.keyboard:  # leaders first: they stay limp, so a bad leader port stops us before torque-on
            try:
                leader = make_leader(spec, leader_ports, leader_cals, baud=args.leader_baud)
            except RealArmError as exc:
                raise hardware_error(exc, "leader arms") from None
        if sim_id is not None:
            steps = max(1, round(args.episode_time * spec.control_hz)) if args.record else None
            hold = None if args.end_on_success is None else max(1, round(args.end_on_success * spec.control_hz))
            env = make_sim_follower(sim_id, image_size, args.max_relative_target, steps, randomization=randomization,
                                    dynamics=dynamics, end_after_success_steps=hold, obs_type=args.obs_type,
                                    camera_poses=camera_poses)
        else:
            try:
                env = RealArmEnv(arm=spec.name, image_size=args.image_size, **env_kwargs)
            except RealArmError as exc:
                raise hardware_error(exc, "follower arm") from None
        if window is not None:
            env = Viewed(env, window, env.status if sim_id is not None else None)
        if args.keyboard:
            if args.keyboard == "tool":
                from twinarm.cli.keyboard_tool import KeyboardToolTeleop

                leader = KeyboardToolTeleop(spec, env.joint_positions(), keys=keys)
                print("keys: " + KeyboardToolTeleop.help_text())
            else:
                leader = KeyboardTeleop(spec, env.joint_positions(), keys=keys)
                print("keys: " + KeyboardTeleop.help_text(spec))
            if sim_id is not None:  # a new sim episode puts the arm back to its start: the keys start there too
                env.on_reset.append(leader.hold)
        else:
            for g in groups:
                to = ports[g] if g in ports else f"(simulated, {sim_id})"
                print(f"{_role(g, 'leader')} {leader_ports[g]} -> {_role(g, 'follower')} {to}")
        try:
            if recording is not None:
                recording.run(leader, env, stats, keys)
            else:
                teleoperate(
                    leader,
                    env,
                    duration_s=args.duration,
                    max_steps=args.max_steps,
                    stats=stats,
                    report=lambda s: print("\r" + s.line() + (f"   {env.status()}" if sim_id else ""), end="",
                                           flush=True),
                )
        except RealArmError as exc:
            raise hardware_error(exc, "teleop loop") from None
    except KeyboardInterrupt as exc:
        stop = exc
    finally:
        print("\r" + stats.line() if stats.steps else "")
        note = slow_loop_note(stats, spec.control_hz, args.record) if recording is not None else None
        if note:
            print(note)
        try:
            if keys is not None:
                keys.close()
            if leader is not None:
                leader.close()
        finally:
            try:
                if env is not None:
                    env.close()  # a Viewed follower closes its window too
                elif window is not None:
                    window.close()
            finally:
                if recording is not None:
                    recording.close()
    if stop is not None:
        from twinarm.cli.main import interrupted

        return interrupted(stop)
    return 0 if recording is None else recording.exit_code()
