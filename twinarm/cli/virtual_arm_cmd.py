"""`twinarm virtual-arm`: serve a simulated arm on a pseudo-terminal that speaks the servos' wire protocol."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from twinarm.cli.config import add_config_arg, at_least, load_dynamics

_DESCRIPTION = "\n\n".join(
    textwrap.fill(p, 100)
    for p in (
        "Create a pseudo-terminal on which every servo of the arm answers the real protocol (Feetech STS or "
        "Dynamixel 2.0), with joints backed by the MuJoCo arm. Point the vendor SDK, `twinarm` or LeRobot at "
        "the printed port. Serves until Ctrl-C.",
        "--leader serves the arm's leader instead (ALOHA: both leader arms, one port each), for `twinarm "
        "teleop --leader-port`: the leader's servo models (SO: STS3215; Koch: XL330-M077; ALOHA's WidowX: "
        "XM430-W350, XL430-W250 wrist rotate, XC430-W150 gripper), torque off. No hand can move a virtual "
        "leader, so the command does: type poses on stdin, one line each, as JOINT=VALUE items (radians, "
        "gripper 0..1, joint names as printed, e.g. `left_waist=0.4 left_gripper=0.9`; joints not named "
        "stay; a value past a joint's range stops at it, as a hand does, and stderr says so), or give --wiggle to sweep every joint slowly about its start pose. While a client holds "
        "torque on in any of the leader's servos, the hand lets go (poses are ignored), as a held servo "
        "resists a hand.",
    )
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "virtual-arm",
        help="serve a MuJoCo arm as servos on a pseudo-terminal (a digital twin for any servo software)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--arm", default="so101", help="so101, so100, koch or aloha")
    p.add_argument("--task", default=None, help="serve the arm inside this task's scene (e.g. PickCube, or a sim id "
                   "such as mytasks/SO101-PushCube-v0 for a task your package registers)")
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
        help="write the arm's ideal calibration (LeRobot JSON format; with --leader, the "
        "leader's) to this file",
    )
    p.add_argument("--wire-time", action="store_true", help="simulate serial wire time at the client's baud")
    p.add_argument("--no-check-baud", action="store_true", help="answer whatever baud the client uses")
    p.add_argument("--seed", type=at_least(0), default=None, help="task reset seed (with --task)")
    p.add_argument("--dynamics", default=None, metavar="FILE",
                   help="serve an arm with these servo and joint parameters and command latency (a `twinarm "
                   "fit-dynamics` file): a virtual arm that differs from the model, to rehearse measuring and "
                   "fitting the gap (replay, fit-dynamics)")
    p.add_argument(
        "--leader",
        action="store_true",
        help="serve the arm's leader (its servo models, torque off), moved by stdin poses or --wiggle",
    )
    p.add_argument(
        "--wiggle",
        type=float,
        nargs="?",
        const=6.0,
        default=None,
        metavar="PERIOD_S",
        help="with --leader: sweep every joint as a sine of this period (default 6 s) instead of "
        "reading poses from stdin",
    )
    from twinarm.real.virtual.fault_plan import FAULT_HELP

    p.add_argument("--fault", action="append", default=None, metavar="MOTOR:KIND[@SECONDS]", help=FAULT_HELP)
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    import threading

    from twinarm.arms import get_arm
    from twinarm.real.virtual.fault_plan import schedule
    from twinarm.real.virtual.hand import Hand
    from twinarm.real.virtual.serve import make_virtual_buses

    parser = args._parser
    if args.wiggle is not None and not args.leader:
        parser.error("--wiggle moves a leader arm: add --leader")
    if args.wiggle is not None and args.wiggle <= 0:
        parser.error(f"--wiggle takes a period in seconds > 0, got {args.wiggle}")
    if args.leader and args.task is not None:
        parser.error("--leader serves a leader arm, which has no task scene: leave out --task")
    if args.backend == "memory" and args.task is not None:
        parser.error("--task needs the MuJoCo scene: --backend memory holds joint angles only (leave out --backend)")
    if args.seed is not None and args.task is None:
        parser.error("--seed sets the task scene's reset: give --task too")
    if args.dynamics is not None and (args.leader or args.backend == "memory"):
        parser.error("--dynamics sets a MuJoCo follower's parameters: not with --leader or --backend memory")
    if args.write_calibration is not None:  # before the arm is built, in the words `twinarm calibrate --out` uses
        from twinarm.real.calibration import check_writable
        from twinarm.real.errors import CalibrationError

        try:
            args.write_calibration = check_writable(args.write_calibration, "--write-calibration")
        except CalibrationError as exc:
            parser.error(str(exc))
    plans = _fault_plans(parser, args.fault or [], args.arm)
    try:
        servers = make_virtual_buses(
            args.arm,
            backend=args.backend,
            task=args.task,
            step_mode=args.step_mode,
            calibrated=args.calibrated,
            seed=args.seed,
            wire_time=args.wire_time,
            check_baud=not args.no_check_baud,
            leader=args.leader,
            dynamics=load_dynamics(args.dynamics, get_arm(args.arm).name),
        )
    except KeyError as exc:  # an unknown --arm or --task
        parser.error(str(exc.args[0]))
    arm = next(iter(servers.values())).bus.arm
    for plan in plans:  # said on stdout, so that the rehearsal's log shows what is coming
        print(f"fault planned: {plan.describe()} from {plan.at_s:g} s after serving starts", flush=True)
    hand = Hand(arm, wiggle_period_s=args.wiggle) if args.leader else None
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
    if hand is not None:
        if args.wiggle is not None:
            print(f"leader: every joint sweeps with a {args.wiggle:g} s period", flush=True)
        else:
            print(f"leader: type poses as JOINT=VALUE lines, e.g. {arm.spec.joint_names[0]}=0.3", flush=True)
    stop: KeyboardInterrupt | None = None
    timers: list = []
    try:
        if hand is not None:
            hand.start()  # the sweep's first pose is in before any request is answered
        for server in servers.values():
            server.start()
        timers = schedule(plans, lambda m: arm.servos[arm.spec.joint_names.index(m)].faults,
                          lambda msg: print(msg, file=sys.stderr, flush=True))
        if hand is not None and args.wiggle is None:
            hand.read_lines(sys.stdin, lambda msg: print(f"pose: {msg}", file=sys.stderr, flush=True))
        threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt as exc:  # its way to stop; exit 130 as every command does on Ctrl-C
        print("stopped", file=sys.stderr)
        stop = exc
    finally:
        for timer in timers:
            timer.cancel()
        if hand is not None:
            hand.stop()
        for server in servers.values():
            server.stop()
    from twinarm.cli.main import interrupt_status

    return interrupt_status(stop) if stop is not None else 0



def _fault_plans(parser: argparse.ArgumentParser, items: list[str], arm_name: str) -> list:
    """The --fault flags as FaultPlans, checked against the arm's joints before anything is built or served (a
    usage error names the bad one)."""
    from twinarm.arms import get_arm
    from twinarm.real.virtual.fault_plan import FaultPlan

    if not items:
        return []
    try:
        joints = get_arm(arm_name).joint_names
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    try:
        return [FaultPlan.parse(item, joints) for item in items]
    except ValueError as exc:
        parser.error(str(exc))
