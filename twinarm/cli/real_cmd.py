"""Real-arm commands: `twinarm calibrate`, `twinarm setup-motors`, `twinarm find-port`, `twinarm teleop`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twinarm.cli.config import add_config_arg


def _enter(text: str) -> None:
    input(text + " ")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="calibrate an arm (homing + range of motion), save LeRobot-format JSON",
        description="Interactive calibration: put the arm mid-range, then move every joint through "
        "its range. Saves {motor: {id, drive_mode, homing_offset, range_min, range_max}}, the "
        "format LeRobot uses, so existing LeRobot calibrations work too.",
    )
    p.add_argument("--arm", default="so101")
    p.add_argument("--port", required=True, help="serial port (see `twinarm find-port`) or a virtual-arm pty")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file (default ~/.cache/twinarm/calibration/<arm>/<id>.json)",
    )
    p.add_argument("--id", default="default", help="robot id used in the default output path")
    p.add_argument("--leader", action="store_true", help="calibrate the arm's leader (its servo model)")
    add_config_arg(p)
    p.set_defaults(func=run_calibrate, _parser=p)

    p = sub.add_parser(
        "setup-motors",
        help="give each motor its id and baud, one motor at a time",
        description="For each joint, connect only that motor to the bus adapter and press Enter; "
        "it gets the spec's id and the bus baud rate.",
    )
    p.add_argument("--arm", default="so101")
    p.add_argument("--port", required=True)
    p.add_argument("--baud", type=int, default=1_000_000)
    p.add_argument("--motor", default=None, help="only this joint's motor (non-interactive)")
    add_config_arg(p)
    p.set_defaults(func=run_setup_motors, _parser=p)

    p = sub.add_parser(
        "find-port",
        help="find the serial port of an arm by unplugging it",
        description="Lists serial ports, asks you to unplug the arm, and prints the port that vanished.",
    )
    add_config_arg(p)
    p.set_defaults(func=run_find_port, _parser=p)

    p = sub.add_parser(
        "teleop",
        help="drive a follower arm from a leader arm or the keyboard, showing the loop rate",
        description="Leader -> follower teleoperation (SO-100/101, Koch; ALOHA's two-leader set-up is available from Python as real.teleop.BimanualLeader) "
        "or keyboard control of one arm. Prints the loop rate every second.",
    )
    p.add_argument("--arm", default="so101")
    p.add_argument("--port", required=True, help="follower port")
    p.add_argument("--calibration", type=Path, required=True, help="follower calibration (LeRobot JSON)")
    p.add_argument("--leader-port", default=None)
    p.add_argument("--leader-calibration", type=Path, default=None)
    p.add_argument("--keyboard", action="store_true", help="keyboard instead of a leader arm")
    p.add_argument(
        "--camera", action="append", default=None, help="name=index|path|realsense:SERIAL (repeatable)"
    )
    p.add_argument("--max-relative-target", type=float, default=0.2, help="max target change per step (rad)")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    add_config_arg(p)
    p.set_defaults(func=run_teleop, _parser=p)


def run_calibrate(args: argparse.Namespace) -> int:
    from twinarm.arms import get_arm
    from twinarm.real.buses import BUSES
    from twinarm.real.calibrate import run_calibration
    from twinarm.real.calibration import default_calibration_path
    from twinarm.real.control_tables import get_model
    from twinarm.real.motor_bus import Motor
    from twinarm.real.teleop import LEADER_MOTOR_MODELS

    spec = get_arm(args.arm)
    model = LEADER_MOTOR_MODELS.get(spec.name) if args.leader else None
    bus = BUSES[spec.motor_bus](
        args.port, [Motor(j.name, j.motor_id, get_model(model or j.motor_model)) for j in spec.joints]
    )
    bus.connect()
    done = {"flag": False}

    def wait_enter(_: dict) -> bool:
        import select

        if select.select([sys.stdin], [], [], 0)[0]:
            sys.stdin.readline()
            done["flag"] = True
        return done["flag"]

    def show(pos: dict, ranges: dict) -> None:
        line = "  ".join(f"{n}:{ranges[n][0]}-{ranges[n][1]}" for n in pos)
        print("\r" + line, end="", flush=True)

    try:
        cal = run_calibration(bus, spec, _enter, wait_enter, on_sample=show)
    finally:
        bus.close()
    out = args.out or default_calibration_path(spec.name + ("_leader" if args.leader else ""), args.id)
    cal.save(out)
    print(f"\ncalibration saved to {out}")
    return 0


def run_setup_motors(args: argparse.Namespace) -> int:
    from twinarm.arms import get_arm
    from twinarm.real.buses import BUSES
    from twinarm.real.calibrate import setup_motor

    spec = get_arm(args.arm)
    joints = [j for j in spec.joints if args.motor in (None, j.name)]
    if not joints:
        raise SystemExit(f"arm {spec.name!r} has no joint {args.motor!r}")
    for j in reversed(joints):
        if args.motor is None:
            _enter(f"Connect ONLY the '{j.name}' motor ({j.motor_model}) to the adapter and press Enter.")
        old_id, old_baud = setup_motor(BUSES[spec.motor_bus], args.port, j.motor_model, j.motor_id, args.baud)
        print(f"{j.name}: id {old_id} @ {old_baud} -> id {j.motor_id} @ {args.baud}")
    return 0


def run_find_port(args: argparse.Namespace) -> int:
    from twinarm.real.ports import find_port

    print(f"the arm's port is {find_port(_enter)}")
    return 0


def run_teleop(args: argparse.Namespace) -> int:
    from twinarm.arms import get_arm
    from twinarm.real.env import RealArmEnv
    from twinarm.real.teleop import KeyboardTeleop, LeaderArm, cameras_from_args, teleoperate

    spec = get_arm(args.arm)
    env = RealArmEnv(
        arm=spec.name,
        port=args.port,
        calibration=args.calibration,
        cameras=cameras_from_args(args.camera),
        max_relative_target=args.max_relative_target,
    )
    leader = None
    try:
        if args.keyboard:
            leader = KeyboardTeleop(spec, env.joint_positions(), read_stdin=True)
            print("keys: " + KeyboardTeleop.help_text(spec))
        else:
            if not (args.leader_port and args.leader_calibration):
                raise SystemExit("teleop needs --leader-port and --leader-calibration (or --keyboard)")
            leader = LeaderArm(spec, args.leader_port, args.leader_calibration)
        teleoperate(
            leader, env, duration_s=args.duration, report=lambda s: print("\r" + s.line(), end="", flush=True)
        )
    except KeyboardInterrupt:
        pass
    finally:
        print()
        if leader is not None:
            leader.close()
        env.close()
    return 0
