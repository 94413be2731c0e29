"""`twinarm virtual-arm`: serve a simulated arm on a pseudo-terminal that speaks the servos' wire protocol."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twinarm.cli.config import add_config_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "virtual-arm",
        help="serve a MuJoCo arm as servos on a pseudo-terminal (a digital twin for any servo software)",
        description="Create a pseudo-terminal on which every servo of the arm answers the real protocol "
        "(Feetech STS or Dynamixel 2.0), with joints backed by the MuJoCo arm. Point the vendor SDK, "
        "`twinarm` or LeRobot at the printed port. Serves until Ctrl-C.",
    )
    p.add_argument("--arm", default="so101", help="arm name (see `twinarm envs`)")
    p.add_argument("--task", default=None, help="serve the arm inside this task's scene (e.g. PickCube)")
    p.add_argument(
        "--backend",
        choices=("mujoco", "memory"),
        default="mujoco",
        help="mujoco: physics; memory: first-order servos without physics (fast, no MuJoCo)",
    )
    p.add_argument(
        "--step-mode",
        choices=("realtime", "lockstep"),
        default="realtime",
        help="realtime: physics steps every control period; lockstep: one step per goal sync-write",
    )
    p.add_argument(
        "--calibrated",
        action="store_true",
        help="store the ideal calibration in the servos (skip `twinarm calibrate`)",
    )
    p.add_argument(
        "--write-calibration",
        type=Path,
        default=None,
        help="write the arm's ideal calibration (LeRobot JSON format) to this file",
    )
    p.add_argument("--wire-time", action="store_true", help="simulate serial wire time at the client's baud")
    p.add_argument("--no-check-baud", action="store_true", help="answer whatever baud the client uses")
    p.add_argument("--seed", type=int, default=None, help="task reset seed (with --task)")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    import threading

    from twinarm.real.virtual.serve import make_virtual_buses

    servers = make_virtual_buses(
        args.arm,
        backend=args.backend,
        task=args.task,
        step_mode=args.step_mode,
        calibrated=args.calibrated,
        seed=args.seed,
        wire_time=args.wire_time,
        check_baud=not args.no_check_baud,
    )
    arm = next(iter(servers.values())).bus.arm
    if args.write_calibration is not None:
        arm.ideal_calibration().save(args.write_calibration)
        print(f"calibration: {args.write_calibration}", flush=True)
    for group, server in servers.items():
        ids = ", ".join(
            f"{arm.spec.joints[arm._joint_of[id(s)]].name}={s.motor_id} ({s.model.name})"
            for s in server.bus.servos
        )
        print(
            f"virtual {arm.spec.display_name}{' ' + group if group else ''} ({arm.spec.motor_bus}, "
            f"{server.bus.servos[0].baud} baud): {ids}",
            flush=True,
        )
    for group, server in servers.items():
        print(f"port{' ' + group if group else ''}: {server.port}", flush=True)
    try:
        for server in servers.values():
            server.start()
        threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
    return 0
