"""`twinarm fit-dynamics`: fit the sim arm's servo and joint parameters to recorded episodes of a real arm
(system identification), so the sim follows commands the way the real arm did.

Each episode's actions are replayed open loop on the bare sim arm from its first recorded pose, and each
joint's position gain (kp), damping, armature and friction loss, and the command latency in whole control
steps, are fitted so the replayed joints match the recorded ones (MuJoCo's own least squares over its
rollouts, `twinarm.envs.sysid`). The grippers are left out by default: a real gripper that closed on an
object stopped where the bare sim's closes on nothing (given with --joints, a gripper is compared only where it
held nothing). The result is a dynamics file that any sim env of the arm loads: `--dynamics FILE` on record,
eval, robustness, train, replay, teleop --env and virtual-arm, or `gym.make(id, dynamics=FILE)`.
Joints that gravity does not load (a base pan, a wrist roll) fix only the ratios of their parameters: the
fit matches how they move, not each value. A LeRobot dataset recorded in its -100..100 range mode (Koch's
default) is read in degrees: convert it first (`twinarm dataset convert-units ... --calibration FILE`).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from twinarm.cli.config import add_config_arg, env_entry, known_env_id, load_dynamics, write_resolved_config

EPILOG = """examples:
  twinarm fit-dynamics --dataset data/so101_real --env twinarm/SO101-PickCube-v0            # first 10 episodes
  twinarm fit-dynamics --dataset data/so101_real --env twinarm/SO101-PickCube-v0 --episode 0-29 \\
      --params kp damping --out outputs/so101_dynamics
  twinarm replay --dataset data/so101_real --episode 40 --env twinarm/SO101-PickCube-v0 \\
      --dynamics outputs/so101_dynamics/dynamics.json                                       # check on another episode"""

DEFAULT_EPISODES = 10


def register(sub: argparse._SubParsersAction) -> None:
    from twinarm.envs.dynamics import DEFAULT_FIT, PARAMS

    p = sub.add_parser(
        "fit-dynamics", help="fit the sim arm's servo gains, damping, friction and latency to real recordings",
        description=__doc__.split("\n\n", 1)[1].strip(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--dataset", required=True, help="dataset directory or Hub repo id recorded on the arm (LeRobot v3)")
    p.add_argument("--env", type=known_env_id, required=True, help="any env id of the dataset's arm (sim or -Real): names the arm")
    p.add_argument("--episode", nargs="+", default=None, metavar="N|A-B",
                   help=f"episodes to fit to (3 5-8; default: the first {DEFAULT_EPISODES})")
    p.add_argument("--joints", nargs="+", default=None, metavar="JOINT",
                   help="joints to fit and compare (default: all but the grippers; a gripper named here is compared "
                   "only where it held nothing: from contact with an object until it rests open again, the bare sim "
                   "arm's gripper closes on nothing)")
    p.add_argument("--params", nargs="+", default=list(DEFAULT_FIT), choices=PARAMS, metavar="PARAM",
                   help=f"parameters to fit per joint, of {', '.join(PARAMS)} (default: {', '.join(DEFAULT_FIT)}; "
                   "max_torque, the servo's torque limit, shows only in moves that saturate it: add it for fast, "
                   "heavy moves; mass, the mass of the link the joint moves: add it on the wrist roll for a wrist "
                   "camera, or for printed parts lighter or heavier than the model's)")
    p.add_argument("--start", default=None, metavar="FILE",
                   help="start from this dynamics file instead of the model's values (and its latency)")
    p.add_argument("--max-delay", type=int, default=2,
                   help="try command latencies of 0..N control steps and keep the best (default: 2)")
    p.add_argument("--max-iter", type=int, default=30, help="least-squares iterations per latency (default: 30)")
    p.add_argument("--fit-rate", action="store_true",
                   help="also fit the rate the recording loop really ran at (one for all episodes): a loop that "
                   "overran its period recorded 30 fps while running slower, which would otherwise bend the servo "
                   "parameters; reported, and kept in the file's fit info (envs still step at the arm's rate)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder for dynamics.json, fit.png and config.json (the resolved options) (default: "
                   "outputs/fit_dynamics/<dataset>)")
    add_config_arg(p)
    p.set_defaults(func=run_fit_dynamics, _parser=p)


#: Control steps of recorded motion per fitted parameter (per joint), below which a fit is refused: with fewer,
#: 20 parameters and a latency fit 15 residuals exactly (RMS 0.000) and the file written means nothing.
MOVES_PER_PARAM = 10


def load_trajectories(dataset: str, episodes: list[int], spec: Any) -> tuple[list[Any], list[int]]:
    """The episodes' (states, actions) in spec units, checked against the arm and its control rate."""
    from twinarm.cli.replay_cmd import load_episode
    from twinarm.datasets_io.layout import DatasetError
    from twinarm.envs.sysid import Trajectory

    trajectories, kept = [], []
    for e in episodes:
        state, action, fps = load_episode(dataset, e, spec, other_arm=False)  # another arm's servos mean nothing here
        if fps != spec.control_hz:
            raise DatasetError(f"{dataset} is recorded at {fps} fps; {spec.name} runs at {spec.control_hz} Hz, so "
                               "its actions would replay at the wrong speed")
        if len(state) < 2:
            print(f"note: episode {e} has {len(state)} frame(s): nothing to compare, skipped")
            continue
        trajectories.append(Trajectory(state, action))
        kept.append(e)
    if not trajectories:
        raise DatasetError(f"{dataset}: no episode of two frames or more among {episodes}")
    return trajectories, kept


def format_fit(spec: Any, result: Any, joints: list[str]) -> str:
    """One row per joint: RMS before and after (LeRobot units) and each parameter, start -> fitted."""
    from twinarm.envs.dynamics import PARAMS

    scale = spec.lerobot_scale
    w = max(len(n) for n in (*spec.joint_names, "joint")) + 2
    cells = {}
    for name in spec.joint_names:
        for p in PARAMS:
            a, b = result.start.joints[name].get(p), result.dynamics.joints[name].get(p)
            cells[name, p] = "-" if a is None else f"{a:.3g} -> {b:.3g}" if (name, p) in result.fitted else f"{a:.3g}"
    width = {p: max(len(p), *(len(cells[n, p]) for n in spec.joint_names)) + 2 for p in PARAMS}
    head = f"{'joint':<{w}}{'RMS before':>11}{'RMS after':>11}  unit  " + "".join(f"{p:<{width[p]}}" for p in PARAMS)
    rows = [head.rstrip()]
    for j, name in enumerate(spec.joint_names):
        d = 4 if spec.lerobot_unit_labels[j] in ("rad", "0..1") else 3
        mark = "" if name in joints else "  (not fitted)"
        rows.append(f"{name:<{w}}{result.rms_before[j] * scale[j]:>11.{d}f}{result.rms_after[j] * scale[j]:>11.{d}f}  "
                    f"{spec.lerobot_unit_labels[j]:<4}  " + "".join(f"{cells[name, p]:<{width[p]}}" for p in PARAMS).rstrip() + mark)
    return "\n".join(rows)


def plot_fit(spec: Any, traj: Any, before: np.ndarray, after: np.ndarray, out: Path, title: str) -> Path | None:
    """Per joint: recorded, replayed with the start's parameters and with the fitted ones; None without matplotlib."""
    from twinarm.cli.replay_cmd import ACTION_STYLE, plot_joints

    start = traj.states[:1]  # the replays begin at the recorded first pose
    return plot_joints(spec, spec.control_hz, [
        (traj.actions, "action sent", ACTION_STYLE),
        (traj.states, "recorded", {"c": "tab:blue", "lw": 1.4}),
        (np.concatenate([start, before]), "sim, start", {"c": "tab:red", "lw": 1.0}),
        (np.concatenate([start, after]), "sim, fitted", {"c": "tab:green", "lw": 1.0}),
    ], out, title)  # fmt: skip


def rate_note(control_hz: float, period_scale: float) -> str:
    """What the fitted control period says about the recording loop."""
    hz = control_hz / period_scale
    line = f"control rate: recorded as {control_hz:g} fps, the replays match best at {hz:.2f} Hz"
    if abs(period_scale - 1) < 0.02:
        return line + " (the loop kept its rate)"
    if period_scale > 1:
        return (line + f": the recording loop ran {100 * (period_scale - 1):.0f} % slow (overruns: look for "
                "LoopOverrunWarning, a slow camera or a busy CPU); the servo parameters above are fitted at that rate")
    return line + ": faster than its fps says (was the dataset's fps changed after recording?)"


def run_fit_dynamics(args: argparse.Namespace) -> int:
    import twinarm  # noqa: F401  (registers the env ids)
    from twinarm.arms import get_arm
    from twinarm.cli.dataset_cmd import episode_list
    from twinarm.cli.replay_cmd import sim_recording
    from twinarm.datasets_io.reader import LeRobotDatasetReader
    from twinarm.envs.dynamics import ArmDynamics
    from twinarm.envs.sysid import Replayer, at_bounds, fit_dynamics

    parser = args._parser
    entry = env_entry(parser, args.env)
    spec = get_arm(entry.arm)
    if args.max_delay < 0 or args.max_iter < 1:
        parser.error("--max-delay must be >= 0 and --max-iter >= 1")
    joints = args.joints or [n for n, g in zip(spec.joint_names, spec.gripper_mask, strict=True) if not g]
    unknown = [j for j in joints if j not in spec.joint_names]
    if unknown:
        parser.error(f"--joints {' '.join(unknown)}: {spec.name}'s joints are {' '.join(spec.joint_names)}")
    start = None if args.start is None else ArmDynamics.from_dict(load_dynamics(args.start, spec.name), args.start)
    total = LeRobotDatasetReader(args.dataset, episodes=[0], cameras=[]).meta.total_episodes
    try:
        episodes = list(dict.fromkeys(episode_list(args.episode))) if args.episode else list(range(min(total, DEFAULT_EPISODES)))
    except ValueError as exc:
        parser.error(str(exc))
    missing = [e for e in episodes if e >= total]
    if missing:
        parser.error(f"--episode {missing}: {args.dataset} has episodes 0-{total - 1}")
    trajectories, episodes = load_trajectories(args.dataset, episodes, spec)
    moves, needed = sum(len(t.states) - 1 for t in trajectories), MOVES_PER_PARAM * len(args.params)
    if moves < needed:
        parser.error(f"{args.dataset} episode(s) {episodes} hold {moves} control steps; fitting {len(args.params)} "
                     f"parameter(s) per joint needs at least {needed} (seconds of motion, more episodes)")
    if (sim_env := sim_recording(args.dataset)) is not None:
        print(f"note: {args.dataset} was recorded in sim ({sim_env}): the fit finds the parameters its sim arm ran "
              "with (the model's, or its --dynamics file's), not a real arm's")
    out = args.out or Path("outputs") / "fit_dynamics" / Path(str(args.dataset)).name
    out.mkdir(parents=True, exist_ok=True)
    write_resolved_config(args, out)
    frames = sum(len(t.states) for t in trajectories)
    print(f"fitting {', '.join(args.params)} of {', '.join(joints)} to {len(episodes)} episode(s) of {args.dataset} "
          f"({frames} frames), latency 0-{args.max_delay} control steps ...", flush=True)
    began = time.perf_counter()

    tty = sys.stdout.isatty()

    def progress(delay: int, iteration: int, rms: float) -> None:
        line = (f"  latency {delay} step(s): iteration {iteration}, RMS {np.degrees(rms):.4f} deg "
                f"({time.perf_counter() - began:.0f} s)")  # fmt: skip
        if tty:
            sys.stdout.write(f"\r{line}   ")
            sys.stdout.flush()
        elif iteration % 10 == 0:
            print(line, flush=True)

    result = fit_dynamics(spec, trajectories, joints, args.params, start, range(args.max_delay + 1), args.max_iter,
                          progress=progress, fit_rate=args.fit_rate)  # fmt: skip
    if tty:
        sys.stdout.write("\n")
    scale = spec.lerobot_scale
    fit_info = {
        "dataset": str(args.dataset), "episodes": episodes, "frames": frames, "env": args.env,
        "joints": joints, "params": list(args.params),
        "rms_before": {n: float(result.rms_before[j] * scale[j]) for j, n in enumerate(spec.joint_names)},
        "rms_after": {n: float(result.rms_after[j] * scale[j]) for j, n in enumerate(spec.joint_names)},
        "unit": dict(zip(spec.joint_names, spec.lerobot_unit_labels, strict=True)),
        "rms_by_latency_rad": {str(k): v for k, v in result.by_delay.items()},
        "iterations": result.iterations, "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }  # fmt: skip
    if args.fit_rate:
        fit_info["control_hz_recorded"] = spec.control_hz
        fit_info["control_hz_fitted"] = spec.control_hz / result.period_scale
    dyn = ArmDynamics(spec.name, result.dynamics.joints, result.dynamics.action_delay_steps, fit_info)
    path = dyn.save(out / "dynamics.json")
    first = trajectories[0]
    before = Replayer(spec, [first], start).replay_one()
    after = Replayer(spec, [first], dyn, period_scale=result.period_scale).replay_one()
    png = plot_fit(spec, first, before, after, out / "fit.png",
                   f"{args.dataset} episode {episodes[0]}: sim with the start's parameters and the fitted ones")  # fmt: skip
    print(format_fit(spec, result, joints))
    period_ms = 1000 / spec.control_hz
    tried = ", ".join(f"{k}: {np.degrees(v):.4f} deg" for k, v in result.by_delay.items())
    print(f"latency: {dyn.action_delay_steps} control step(s) ({dyn.action_delay_steps * period_ms:.0f} ms); RMS over "
          f"the fitted joints by latency: {tried}")
    if args.fit_rate:
        print(rate_note(spec.control_hz, result.period_scale))
    for name, (left, total) in result.left_out.items():
        print(f"{name}: compared on {total - left} of {total} frames (left out: {left}, where it held an object)")
    pinned = at_bounds(result)
    if pinned:
        print("at the fit's bounds (the recordings do not pin these down; their values only make the replay match, "
              "or leave them out with --params / --joints): " + ", ".join(f"{j}.{p} ({side})" for j, p, side in pinned))
    print(f"wrote {', '.join(str(p) for p in (path, png) if p is not None)} ({time.perf_counter() - began:.0f} s)")
    print(f"use it: --dynamics {path} on record, eval, robustness, train, replay, teleop --env and virtual-arm; "
          f"gym.make({entry.sim_id!r}, dynamics={str(path)!r})")
    return 0
