"""`twinarm eval`: roll a trained policy out in a sim env, or on the real arm by its -Real id (LeRobot's metrics)."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinarm.cli.config import (
    add_camera_poses_arg,
    add_config_arg,
    add_dynamics_arg,
    add_randomization_arg,
    at_least,
    env_entry,
    known_env_id,
    load_camera_poses_arg,
    load_dynamics,
    load_randomization,
    write_resolved_config,
)
from twinarm.cli.real_cmd import add_follower_args, parse_follower
from twinarm.cli.train_cmd import PRECISIONS, check_precision_arg, device_arg, policy_kv
from twinarm.spec import LEROBOT_IMAGES

EVAL_EPILOG = """\
examples:
  twinarm eval --policy outputs/act/checkpoints/00010000/pretrained_model --env twinarm/SO101-PickCube-v0
  twinarm eval --policy outputs/act/checkpoints/00010000/pretrained_model --env twinarm/SO101-PickCube-Real-v0 \\
      --port /dev/ttyACM0 --calibration follower.json --camera front=0 --camera wrist=2 --episodes 10"""


def feature_rename(text: str) -> tuple[str, str]:
    """An `OLD=NEW` pair of feature keys; a side without a dot is a camera's short name, as the envs' `cameras=`
    and `replay --camera-map` take them (`laptop=front`: observation.images.laptop=observation.images.front)."""
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise argparse.ArgumentTypeError(f"expected OLD=NEW feature keys, got {text!r}")
    old, new = (k if "." in k else f"{LEROBOT_IMAGES}.{k}" for k in (old.strip(), new.strip()))
    return old, new


def add_thread_args(p: argparse.ArgumentParser) -> None:
    """`--threads` and `--yield-cores`: how many CPU threads the policy's calls use (eval and robustness)."""
    p.add_argument("--threads", type=at_least(1), default=None,
                   help="most torch CPU threads for the policy (default: torch's own, one per physical core)")
    p.add_argument("--yield-cores", action=argparse.BooleanOptionalAction, default=True,
                   help="run each policy call on the cores other processes left idle while the earlier calls ran "
                   "(from /proc/stat; Linux), at least one: OpenMP's threads otherwise wait for a descheduled "
                   "partner at every op (a TD-MPC plan on 2 cores beside one busy process: 0.92 s instead of 1.73 s, "
                   "benchmarks/shared_cores.py). --no-yield-cores: always --threads, so that repeated runs give the "
                   "same actions bit for bit whatever the load (the thread count changes float rounding) "
                   "(default: on)")


def set_threads(args: argparse.Namespace) -> None:
    """Apply `--threads` to torch; called before the policy is loaded."""
    import torch

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a policy checkpoint in simulation, or run it on the real arm",
        description="Roll out a policy checkpoint (a directory written by save_pretrained, e.g. "
        "checkpoints/<step>/pretrained_model) for --episodes episodes over parallel Gymnasium vector envs. "
        "Prints a table, writes eval_info.json (LeRobot's metric names), config.json (the resolved options) and mp4s "
        "of the first episodes into --out. "
        "Deploy on the real arm by switching --env to the -Real id and naming its port, calibration and "
        "cameras; episodes then run one at a time, with --reset-time between them to reset the scene "
        "(pc_success then comes from the operator's y/n answer after each episode, --ask-success, the default on "
        "a terminal; without it, success is not measured).",
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--policy", type=Path, required=False, default=None, help="policy checkpoint (a pretrained_model folder), a checkpoint step folder, or a training run "
                   "directory (its newest checkpoint); also a checkpoint saved by LeRobot (ACT, Diffusion Policy, TD-MPC: its "
                   "pretrained_model folder), read as the same twinarm policy for the env's arm; or a Hub model repo "
                   "holding either (USER/NAME[@REVISION], downloaded into the HF cache; HF_HUB_OFFLINE=1 uses the cache)")
    p.add_argument("--env", type=known_env_id, default="twinarm/SO101-PickCube-v0", help="env id (sim, or its -Real twin)")
    p.add_argument("--episodes", type=at_least(1), default=50, help="number of episodes")
    p.add_argument("--n-envs", type=at_least(1), default=None, help="episodes run in parallel (default 10; 1 on a real arm)")
    p.add_argument("--seed", type=at_least(0), default=100_000, help="seed of the first episode (then +1, ...)")
    p.add_argument("--videos", type=at_least(0), default=4, help="episodes to save as mp4")
    p.add_argument("--image-size", type=at_least(1), nargs=2, default=None, metavar=("H", "W"),
                   help="env image size (default: the size the policy was trained on)")
    p.add_argument("--max-steps", type=at_least(1), default=None, help="episode length in steps, shorter or longer than the env's own (default: the env's)")
    p.add_argument(
        "--set", dest="policy_overrides", type=policy_kv, action="append", default=[], metavar="FIELD=VALUE",
        help="override an inference setting of the policy config (JSON value), e.g. --set n_action_steps=20",
    )
    p.add_argument("--rename-feature", dest="rename_features", type=feature_rename, nargs="+", action="extend",
                   default=[], metavar="OLD=NEW", help="a policy's camera under the env's name, one or more pairs "
                   "(the flag may repeat), e.g. observation.images.laptop=observation.images.front "
                   "observation.images.phone=observation.images.wrist (or by short names, laptop=front "
                   "phone=wrist) for a policy trained on a LeRobot recording, or LeRobot TD-MPC's observation.image=observation.images.front; two cameras "
                   "onto one key are refused")
    p.add_argument("--async-envs", action="store_true", help="run the envs in subprocesses (started from a "
                   "forkserver: in Python, evaluate(use_async=True) then needs the `if __name__ == \"__main__\":` "
                   "guard, as multiprocessing does)")
    add_thread_args(p)
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when available), cpu, cuda, ...")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder for eval_info.json, config.json (the resolved options) and videos/ (default: "
                   "outputs/eval/<env id without twinarm/>, e.g. "
                   "outputs/eval/SO101-PickCube-Real-v0, so a sim and a real run do not overwrite each other); the "
                   "videos an earlier run left there are removed when this run's first episode ends")
    p.add_argument("--record", type=Path, default=None, metavar="ROOT",
                   help="also save every episode as a new LeRobot v3 dataset here (e.g. policy rollouts on the real "
                   "arm, to inspect or to add to the demonstrations); eval_info.json's per_episode gives each "
                   "episode's recorded_episode_index (saved in the order they end)")
    p.add_argument("--prefetch-at", type=at_least(0), default=0, metavar="K",
                   help="compute the next action chunk in the background once K queued actions are left, so "
                   "the control loop does not stop for inference (ACT, Diffusion; 0: wait for each chunk)")
    p.add_argument("--noise-seed", type=int, default=None, metavar="N",
                   help="seed torch's random numbers (Diffusion's sampling noise, TD-MPC's planning samples) with N "
                   "before the episodes (default: --seed's value, so that a run repeats exactly: torch starts each "
                   "process from a different random state). They are drawn for the whole batch of envs, so those "
                   "policies' episodes repeat at the same --n-envs (and thread count); another --n-envs gives "
                   "other draws (ACT differs only by float rounding)")
    p.add_argument("--int8", action="store_true",
                   help="run the policy's large matmuls (linear layers, 1-D convolutions, TD-MPC's planning heads) and "
                   "image backbone in int8 on the CPU (~2x faster on an AVX-512 VNNI CPU, README: an ACT chunk "
                   "53-56 -> 23-27 ms, a Diffusion chunk 0.71-0.75 -> 0.35-0.43 s, a TD-MPC plan 0.49-0.65 -> "
                   "0.27-0.29 s; actions move by ~0.1 degree on average, success within a few episodes of float32 in "
                   "benchmarks/results/policy_int8*.txt: check in sim first)")
    p.add_argument("--precision", default="float32", choices=PRECISIONS,
                   help="compute precision of the policy. bf16: autocast, bf16 matmuls and convolutions with float32 "
                   "weights; faster on CPUs with AVX512-BF16/AMX (not on an H100 at batch 1, where float32 was "
                   "quicker: benchmarks/policy_speed.md), actions differ slightly from float32's (check in sim "
                   "first); refused on hardware without bf16; not with --int8")
    p.add_argument("--lerobot-range-units", type=Path, default=None, metavar="CALIBRATION",
                   help="the checkpoint was trained on joints in LeRobot's -100..100 range mode (use_degrees=False, "
                   "the Koch follower's default in LeRobot 0.6.1): rescale it to degrees with the recording arm's "
                   "LeRobot calibration file (exact: only its normalization stats change; a dataset converts with "
                   "`twinarm dataset convert-units`)")
    p.add_argument("--int8-calibration", default=None, metavar="DATASET",
                   help="dataset whose frames fix the int8 backbone's activation ranges (default: the dataset the "
                   "checkpoint was trained on, from its run's train_config.json)")
    add_randomization_arg(p, "the sim env (each episode draws from its seed)")
    add_dynamics_arg(p)
    add_camera_poses_arg(p)
    real = p.add_argument_group("on the real arm (a -Real env id)")
    add_follower_args(real, required=False)
    real.add_argument("--ask-success", action=argparse.BooleanOptionalAction, default=None,
                      help="after each episode, ask whether it succeeded (the real env has no success detector; "
                      "default: ask when run from a terminal)")
    real.add_argument("--start-pose", choices=("home", "here"), default="home",
                      help="where each real episode starts: home, the sim's start pose (the arm is driven there "
                      "at --max-relative-target per step after the scene is reset), or here, wherever it is")
    real.add_argument("--reset-time", type=float, default=None,
                      help="seconds to reset the scene before each episode (default: wait for Enter on a terminal)")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def _range_units_to_degrees(args: argparse.Namespace, policy: object, spec: object) -> None:
    """`--lerobot-range-units`: the policy's joints from LeRobot's range mode to degrees (the recording arm's
    calibration gives one factor per joint)."""
    from twinarm.cli.dataset_cmd import joint_factors
    from twinarm.real.calibration import Calibration

    factors = Calibration.load(args.lerobot_range_units).degrees_per_range_unit(spec)
    policy.rescale_joint_units(factors)
    print(f"policy: joints from LeRobot's range mode to degrees ({joint_factors(spec, factors)})")


def run(args: argparse.Namespace) -> int:
    import twinarm  # noqa: F401  (registers the env ids)
    from twinarm.agents.eval import EvalResult, evaluate, format_table, save_result
    from twinarm.agents.policy import resolve_checkpoint
    from twinarm.arms import get_arm
    from twinarm.registration import entry_for

    if args.policy is None:  # a usage error (exit 2), as argparse's own for a required option
        args._parser.error("the following arguments are required: --policy (a checkpoint: its pretrained_model "
                           "folder, a checkpoint step folder, a training run directory or a Hub model repo)")
    args.out = args.out or default_out(args.env)
    if args.int8 and args.precision != "float32":
        args._parser.error(f"--precision {args.precision}: not with --int8, which already runs the matmuls in int8")
    try:
        named, args.policy = args.policy, resolve_checkpoint(args.policy)
    except FileNotFoundError as e:
        args._parser.error(f"--policy: {e}")
    if args.policy != named:
        print(f"policy: {args.policy}")
    set_threads(args)
    from twinarm.agents.allocator import keep_freed_memory
    from twinarm.agents.thread_budget import budget_for

    keep_freed_memory()  # freed tensors are reused call to call instead of page-faulted in again

    policy = load_policy(args)
    if args.lerobot_range_units is not None:
        _range_units_to_degrees(args, policy, get_arm(entry_for(args.env).arm))
    policy.to(device_arg(args))
    check_precision_arg(args, policy.device)
    if args.record is not None and (args.record / "meta" / "info.json").exists():
        args._parser.error(f"--record {args.record}: a dataset is already there; name a new folder")
    if args.int8:
        _to_int8(args, policy)
    elif args.int8_calibration:
        args._parser.error("--int8-calibration: only with --int8")
    env_kwargs, before_round, n_envs = _target(args, policy)
    start_options = None
    if before_round is not None and args.start_pose == "home":  # a real arm: start where sim episodes start
        start_options = {"joints": get_arm(entry_for(args.env).arm).home_pose.tolist()}
    real = before_round is not None
    ask = args.ask_success if args.ask_success is not None else real and sys.stdin.isatty()
    if ask and not real:
        args._parser.error("--ask-success: only on a real arm; in sim the env knows when the task succeeded")
    if args.prefetch_at:
        from twinarm.agents.prefetch import ChunkPrefetcher

        try:
            ChunkPrefetcher.check(policy, args.prefetch_at)
        except ValueError as exc:
            args._parser.error(f"--prefetch-at {args.prefetch_at}: {exc}")
    budget = budget_for(policy.device, args.yield_cores)
    judge = _ask_success if ask else None
    keys, control = _operator_keys() if real else (None, None)
    if keys is not None:
        before_round, judge = _prompting(keys, before_round), _prompting(keys, judge)
    kept: list[EvalResult] = []

    def keep(result: EvalResult) -> None:
        """The episodes finished so far, on disk (config.json with them: nothing is written before one ends, so a
        port or camera that fails at the start leaves no run folder)."""
        if not kept:
            write_resolved_config(args, args.out)
            remove_old_videos(args.out / "videos", result.videos)
        save_result(result, args.out)
        kept[:] = [result]

    try:
        result = evaluate(
            policy, args.env, n_episodes=args.episodes, n_envs=n_envs, seed=args.seed,
            videos_dir=args.out / "videos", max_videos=args.videos,
            image_size=tuple(args.image_size) if args.image_size else None, use_async=args.async_envs,
            max_steps=args.max_steps, env_kwargs=env_kwargs, before_round=before_round,
            progress=before_round is not None, reset_options=start_options, prefetch_at=args.prefetch_at,
            record_to=args.record, judge=judge, precision=args.precision, thread_budget=budget, control=control,
            after_round=keep, noise_seed=args.noise_seed,
        )  # fmt: skip
    except (Exception, KeyboardInterrupt) as exc:
        if kept:  # a disconnect or Ctrl-C in episode k: the k-1 before it keep their metrics
            done = kept[0].aggregated["n_episodes"]
            kept[0].stopped = f"ended after {done} of {args.episodes} episodes by {type(exc).__name__}: {exc}"
            print(f"kept the {done} finished episode(s) in {save_result(kept[0], args.out)}", file=sys.stderr)
        raise
    finally:
        if keys is not None:
            keys.close()
    if control is not None and control.stopped:
        print(f"stopped by Esc after {len(result.successes)} of {args.episodes} episodes")
    if not kept:
        write_resolved_config(args, args.out)
    path = save_result(result, args.out)
    print(format_table(result.aggregated, result.latency, result.precision))
    if budget is not None and (fewer := sum(n for k, n in budget.granted.items() if k < budget.most)):
        print(f"note: {fewer} of {sum(budget.granted.values())} policy calls ran on fewer than {budget.most} threads "
              f"(down to {min(budget.granted)}): other processes kept cores busy (--no-yield-cores to keep "
              f"{budget.most})")
    period_ms = 1e3 / get_arm(entry_for(args.env).arm).control_hz
    if n_envs == 1 and result.latency and result.latency["p99"] > period_ms:
        print(f"note: select_action's p99 ({result.latency['p99']:.0f} ms) is longer than the {period_ms:.1f} ms control "
              f"period, so a real arm's loop would overrun: --prefetch-at K computes chunks in the background "
              f"(ACT, Diffusion); --device cuda, or executing more steps of each chunk (--set n_action_steps=N), "
              f"also help")
    print(f"wrote {path}" + (f"; episodes saved as a dataset in {args.record}" if args.record else ""))
    return 0


def default_out(env_id: str) -> Path:
    """eval's folder for `env_id` (`outputs/eval/SO101-PickCube-Real-v0`): a sim id and its -Real twin get their
    own, so evaluating one does not overwrite the other's results."""
    return Path("outputs/eval") / env_id.rsplit("/", 1)[-1]


def remove_old_videos(videos: Path, written: list[str]) -> None:
    """Delete the episode videos in `videos` that this run did not write (an earlier run's, with more --videos):
    they would sit beside this run's eval_info.json as if they were its episodes."""
    if not videos.is_dir():
        return
    ours = {Path(p).resolve() for p in written}
    for path in videos.glob("eval_episode_*.mp4"):
        if path.resolve() not in ours:
            path.unlink()


def load_policy(args: argparse.Namespace) -> Any:
    """`--policy` (a resolved checkpoint folder: twinarm's, or LeRobot's read for `--env`'s arm, its features
    renamed by `--rename-feature`) with `--set` overrides; parser errors name what does not fit."""
    from twinarm.agents.camera_rename import CameraRenameError, rename_map
    from twinarm.agents.lerobot_checkpoint import (
        LeRobotCheckpointError,
        is_lerobot_checkpoint,
        load_lerobot,
        recorded_arm,
    )
    from twinarm.agents.policy import ConfigOverrideError, Policy

    overrides = dict(args.policy_overrides or {})
    lerobot = is_lerobot_checkpoint(args.policy)
    try:  # two features onto one key are refused before a reader could silently keep one of them
        rename = rename_map(args.rename_features or [], _checkpoint_inputs(args.policy) if lerobot else ())
    except CameraRenameError as exc:
        args._parser.error(f"--rename-feature: {exc}")
    if not lerobot:
        try:
            return Policy.from_pretrained(args.policy, overrides=overrides, rename=rename)
        except ConfigOverrideError as exc:
            args._parser.error(f"{_blamed(overrides)} {exc}")
        except CameraRenameError as exc:
            args._parser.error(f"--rename-feature {exc}")
    recorded = recorded_arm(args.policy)  # the arm its training data came from, when that data is here
    arm = recorded or env_entry(args._parser, args.env).arm  # another arm's than the env's is warned at the env
    try:
        policy = load_lerobot(args.policy, arm=arm, overrides=overrides, rename=rename)
    except ConfigOverrideError as exc:
        args._parser.error(f"{_blamed(overrides)} {exc}")
    except LeRobotCheckpointError as exc:
        args._parser.error(f"--policy: {exc}")
    whose = "its training dataset's arm" if recorded else "the env's arm"
    print(f"policy: a LeRobot {policy.name} checkpoint, read as twinarm's for the {arm} arm ({whose}; its dataset's "
          f"units must be the arm spec's: degrees, gripper 0..100)")
    return policy


def _blamed(overrides: dict[str, Any]) -> str:
    """The flag a config error from loading `--policy` starts with: `--set` only when some were given (a checkpoint
    whose config.json disagrees with its weights was reported as a `--set` error without one)."""
    return "--set" if overrides else "--policy"


def _checkpoint_inputs(directory: Path) -> list[str]:
    """The input feature keys a LeRobot checkpoint's config.json names (none when it cannot be read: the
    checkpoint reader then says why)."""
    import json

    try:
        return list(json.loads((Path(directory) / "config.json").read_text()).get("input_features") or {})
    except (OSError, ValueError, AttributeError):
        return []


def _to_int8(args: argparse.Namespace, policy: Any) -> None:
    """Switch the policy to int8 inference, calibrating its backbone on frames of a dataset."""
    from twinarm.agents.int8 import (
        Int8Unavailable,
        calibration_batches,
        enable_int8,
        needs_calibration,
        training_dataset,
    )

    calibration: list[Any] = []
    source = None
    if args.int8_calibration and not needs_calibration(policy):  # it was ignored without a word
        print(f"int8: --int8-calibration {args.int8_calibration} is not used: {args.policy} has no image backbone "
              "(its matmul layers quantize from their weights alone)")  # fmt: skip
    if needs_calibration(policy):
        source = args.int8_calibration or training_dataset(args.policy)
        if source is None:
            args._parser.error(f"--int8: {args.policy} has an image backbone, whose int8 ranges come from dataset "
                               "frames; no train_config.json names its dataset: pass --int8-calibration DATASET")
        from twinarm.datasets_io.layout import DatasetError

        print(f"int8: calibrating the image backbone on frames of {source} ...", flush=True)
        try:
            calibration = calibration_batches(policy, source)
        except (OSError, ValueError, DatasetError) as exc:
            said = str(exc) if str(source) in str(exc) else f"{source}: {exc}"  # name the dataset once
            args._parser.error(f"--int8-calibration: {said}")
    try:
        done = enable_int8(policy, calibration)
    except Int8Unavailable as exc:
        args._parser.error(f"--int8: {exc}")
    used = f", backbone calibrated on frames of {source}" if calibration else ""
    if not (done["linear_layers"] or done["backbones"]):
        from twinarm.agents.int8 import MIN_WEIGHT

        used += f"; every layer is under {MIN_WEIGHT} weights, too small to run faster in int8: it stays float32"
    print(f"int8: {done['linear_layers']} matmul layers (linear, 1-D convolution) and {done['backbones']} backbone(s) "
          f"quantized{used}")


def _target(args: argparse.Namespace, policy: Any) -> tuple[dict[str, Any], Callable[[int], None] | None, int]:
    """(gym.make kwargs, hook before each episode, parallel envs) for the env id: a sim id as it is; a -Real id
    with the follower's checked flags, one episode at a time, and a pause to reset the scene before each."""
    from twinarm.agents.env_io import PolicyEnvMismatch
    from twinarm.agents.eval import check_real_inputs
    from twinarm.arms import get_arm

    parser = args._parser
    entry = env_entry(parser, args.env)
    hardware_flags = [f for f, v in (("--port", args.port), ("--calibration", args.calibration),
                                     ("--camera", args.camera), ("--lens", args.lens), ("--reset-time", args.reset_time),
                                     ("--baud", args.baud != parser.get_default("baud")),
                                     ("--start-pose", args.start_pose != "home")) if v]
    if args.env != entry.real_id:
        if hardware_flags:
            parser.error(f"{' '.join(hardware_flags)}: only for a real arm ({entry.real_id}), not the sim id {args.env}")
        randomization = load_randomization(args.randomization)
        dynamics = load_dynamics(args.dynamics, entry.arm)
        camera_poses = load_camera_poses_arg(args.camera_poses, entry.arm)
        kwargs = {k: v for k, v in (("randomization", randomization), ("dynamics", dynamics),
                                    ("camera_poses", camera_poses)) if v is not None}  # fmt: skip
        return kwargs, None, 10 if args.n_envs is None else args.n_envs
    if args.randomization is not None:
        parser.error(f"--randomization: {args.env} is the real arm, whose world is random enough; it is for sim ids")
    if args.dynamics is not None:
        parser.error(f"--dynamics sets the sim arm's parameters; {args.env} is the real arm")
    if args.camera_poses is not None:
        parser.error(f"--camera-poses places the sim's cameras; {args.env} is the real arm, whose cameras are where they are")
    if not (args.port and args.calibration):
        parser.error(f"{args.env} is the real arm: name its --port and --calibration (and --camera NAME=SOURCE "
                     "for each camera the policy sees)")
    if args.n_envs not in (None, 1) or args.async_envs:
        parser.error(f"{args.env} is one physical arm: episodes run one at a time (no --n-envs > 1, no --async-envs)")
    try:
        check_real_inputs(policy, args.env)
    except PolicyEnvMismatch as exc:
        parser.error(f"--policy {args.policy}: {exc}")
    follower = parse_follower(parser, args, get_arm(entry.arm))
    wanted = [k.rsplit(".", 1)[-1] for k in policy.config.image_keys]
    missing = [c for c in wanted if c not in follower.cameras]
    if missing:
        parser.error(f"{args.policy} sees cameras {wanted}: give --camera NAME=SOURCE for {missing}")
    kwargs = follower.env_kwargs("eval")
    kwargs["cameras"] = {c: kwargs["cameras"][c] for c in wanted}
    return kwargs, functools.partial(_reset_pause, args.reset_time, args.episodes, args.start_pose == "home"), 1


EVAL_KEYS_HELP = "keys: -> end the episode now (it counts as it stands), Esc end it and the evaluation"


def _operator_keys() -> tuple[Any, Any]:
    """(TerminalKeys, RecordingControl) when an operator is at a terminal, for LeRobot's keys; else (None, None)."""
    if not sys.stdin.isatty():
        return None, None
    from twinarm.datasets_io.recorder import RecordingControl
    from twinarm.real.terminal_keys import TerminalKeys

    try:
        keys = TerminalKeys()
    except OSError:  # stdin claims a terminal it cannot be put in key mode (a pipe posing as one)
        return None, None
    control = RecordingControl()
    keys.subscribe(functools.partial(_on_eval_key, control))
    print(EVAL_KEYS_HELP, flush=True)
    return keys, control


def _on_eval_key(control: Any, key: str) -> None:
    """Right arrow ends the running episode, Esc ends it and the run (left arrow, re-record, has no place here)."""
    from twinarm.datasets_io.recorder import END, STOP

    if key == "right":
        print("\n-> this episode ends now", flush=True)
        control.request(END)
    elif key == "esc" and not control.stopped:
        print("\nEsc: this episode ends now, and the evaluation with it", flush=True)
        control.request(STOP)
    elif key == "left":
        print("\n<- does nothing in eval: every episode counts (-> ends one early)", flush=True)


def _prompting(keys: Any, fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """`fn` run with the terminal handed back from the key reader, so its `input()` reads a line as usual."""
    if fn is None:
        return None

    def run(*a: Any) -> Any:
        with keys.suspended():
            return fn(*a)

    return run


def _ask_success(k: int, env_verdict: bool) -> bool:
    """A person's verdict on real episode k (y/n; Enter keeps the env's, which is False without a detector)."""
    while True:
        answer = input(f"episode {k + 1}: success? [y/n] ").strip().lower()
        if answer in ("y", "yes", "n", "no", ""):
            return env_verdict if not answer else answer.startswith("y")


def _reset_pause(seconds: float | None, episodes: int, home: bool, k: int) -> None:
    """Before real episode k: wait `seconds`, or for Enter on a terminal (no wait without one)."""
    then = "the arm moves to its home pose and " if home else ""
    if seconds is None and sys.stdin.isatty():
        input(f"reset the scene, then press Enter: {then}episode {k + 1}/{episodes} starts ")
    elif seconds:
        print(f"reset the scene: in {seconds:g} s {then}episode {k + 1}/{episodes} starts", flush=True)
        time.sleep(seconds)
    elif home:
        print(f"the arm moves to its home pose; then episode {k + 1}/{episodes} starts", flush=True)
