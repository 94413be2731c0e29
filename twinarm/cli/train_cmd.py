"""`twinarm train`: train a policy offline on a LeRobot dataset (ACT, Diffusion) or online in a sim env (TD-MPC)."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
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

#: `twinarm.agents.precision.PRECISIONS`, spelled out: importing it would load torch for every command's --help.
PRECISIONS = ("float32", "bf16")


def policy_kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a policy (ACT, Diffusion, TD-MPC)",
        description="Train a policy. Offline: `--policy act --dataset ROOT --env ID` (the env is used for "
        "periodic evaluation). Online: `--policy tdmpc --env ID` learns by interacting with the sim. "
        "Writes logs, checkpoints (each a loadable policy under pretrained_model/) and the resolved config "
        "to --output-dir; `--resume` continues the last checkpoint. Run under `torchrun --nproc-per-node N` "
        "for data-parallel offline training (online TD-MPC runs in one process).",
    )
    p.add_argument("--policy", required=False, default=None, help="policy name: act, diffusion or tdmpc")
    p.add_argument("--dataset", action="append", default=None,
                   help="LeRobot v3 dataset root or Hub repo id (offline training); repeat it to train on several "
                   "together, e.g. sim and real recordings of one arm (co-training)")
    p.add_argument("--env", type=known_env_id, default=None, help="env id for evaluation / online training, e.g. twinarm/SO101-PickCube-v0")
    p.add_argument("--output-dir", type=Path, default=Path("outputs/train"), help="run directory")
    p.add_argument("--steps", type=at_least(1), default=100_000, help="gradient steps (offline) or env steps (online)")
    p.add_argument("--batch-size", type=at_least(1), default=8, help="batch size per process")
    p.add_argument("--num-workers", type=at_least(0), default=0, help="DataLoader workers")
    p.add_argument("--frame-cache-mb", type=at_least(0), default=1024,
                   help="decoded video frames kept per process (each DataLoader worker keeps its own), MB; 0 decodes "
                   "every frame when read (default: 1024)")
    p.add_argument("--seed", type=at_least(0), default=1000, help="seed of weights, batch order and env resets")
    p.add_argument("--log-freq", type=at_least(1), default=100,
                   help="steps between train_log.csv rows: gradient steps (offline), env steps (online, with the "
                   "mean return and success of the episodes that ended since the previous row)")
    p.add_argument("--save-freq", type=at_least(1), default=10_000, help="steps between checkpoints")
    p.add_argument("--eval-freq", type=at_least(0), default=10_000,
                   help="steps between in-sim evaluations in --env (0: never)")
    p.add_argument("--eval-episodes", type=at_least(1), default=10, help="episodes per periodic evaluation")
    p.add_argument("--eval-n-envs", type=at_least(1), default=5, help="parallel envs during evaluation")
    p.add_argument("--obs-type", default=None, choices=("state", "pixels", "pixels_agent_pos"),
                   help="online: the env's observation type. Offline: which of the dataset's observations the "
                   "policy takes, as that env type gives them: state (joints and object poses; its cameras are never "
                   "decoded), pixels_agent_pos (cameras and joints, what the real arm gives), pixels (cameras "
                   "alone); default: every observation the dataset holds")
    p.add_argument("--image-size", type=at_least(1), nargs=2, default=None, metavar=("H", "W"),
                   help="--env's camera image size: of the observations online training learns from (default: the "
                   "env's own, 480x640) and of the periodic evaluations (default: the size the policy was trained on)")
    p.add_argument("--lr-schedule", default=None, choices=("constant", "cosine"),
                   help="learning-rate schedule (default: cosine for diffusion, constant otherwise)")
    p.add_argument("--threads", type=at_least(1), default=None,
                   help="torch CPU threads per process (default: torch's own: OMP_NUM_THREADS, which torchrun sets to 1 "
                   "for each of several processes, else one per physical core)")
    p.add_argument("--yield-cores", action="store_true",
                   help="run each training step (online: each plan and update too) and the periodic evals on the cores "
                   "other processes left idle (see `twinarm eval --help`); the log gets a threads column. Off by "
                   "default: the thread count changes float rounding, so a seeded run repeats bit for bit only at a "
                   "fixed count")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default="float32", choices=PRECISIONS,
                   help="compute precision of the forward passes. bf16: autocast, bf16 matmuls and convolutions with "
                   "weights and losses in float32, for CPUs with AVX512-BF16 or AMX and GPUs with bf16 (1.3-1.8x "
                   "faster training steps on an AVX512-BF16 EPYC; on an H100 at batch 8 no faster than float32 with TF32, "
                   "which a GPU run uses by default); numerics differ slightly from float32; refused on hardware "
                   "without bf16")
    p.add_argument(
        "--ema", dest="ema", action=argparse.BooleanOptionalAction, default=None,
        help="save and evaluate an exponential moving average of the weights (default: on for diffusion only)",
    )  # fmt: skip
    p.add_argument("--ema-max-decay", type=float, default=0.9999, help="upper bound of the EMA decay")
    p.add_argument("--min-std", type=float, default=1e-3,
                   help="observation features whose spread in the dataset (per dimension, in their own units) is "
                   "below this are centred but not scaled: something the demonstrations never varied (a cube that "
                   "never moves) would otherwise turn a small deviation at deployment into a huge input (default: "
                   "1e-3; 0: divide by any spread, as LeRobot does)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from this policy checkpoint's weights (a run folder, its pretrained_model/ or a "
                   "Hub repo id; twinarm's or LeRobot's, read as `twinarm eval --policy` reads it), "
                   "e.g. a sim-trained policy on real recordings. Its config is the run's (--set changes inference or "
                   "horizon fields; one that changes the architecture is refused), --policy defaults to its type, the "
                   "dataset's stats normalize, the optimizer and learning-rate schedule start fresh")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--seed-steps", type=at_least(0), default=2_000, help="random-action steps before learning (online)")
    p.add_argument("--buffer-capacity", type=at_least(1), default=1_000_000, help="replay buffer size (online)")
    p.add_argument("--update-every", type=at_least(1), default=2, help="env steps per gradient update (online)")
    p.add_argument(
        "--set", dest="policy_overrides", type=policy_kv, action="append", default=[], metavar="FIELD=VALUE",
        help="override a policy config field (JSON value), e.g. --set dim_model=256 --set chunk_size=50 "
        "--set n_action_steps=50",
    )  # fmt: skip
    p.add_argument("--push-to-hub", default=None, metavar="USER/NAME",
                   help="when training ends, publish the last checkpoint as this Hub model repo (twinarm push-policy)")
    add_randomization_arg(p, "the env of online training and of periodic evaluation")
    add_dynamics_arg(p, "the env of online training and of periodic evaluation")
    add_camera_poses_arg(p, "the env of online training and of periodic evaluation")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def train_config_from_args(args: argparse.Namespace) -> Any:
    from twinarm.agents.train_config import TrainConfig

    overrides = args.policy_overrides
    if isinstance(overrides, list):
        overrides = dict(overrides)
    return TrainConfig(
        policy=args.policy, output_dir=str(args.output_dir), env=args.env,
        dataset=args.dataset[0] if isinstance(args.dataset, list) and len(args.dataset) == 1 else args.dataset,
        policy_overrides=dict(overrides or {}), steps=args.steps, batch_size=args.batch_size,
        num_workers=args.num_workers, frame_cache_mb=args.frame_cache_mb, seed=args.seed, log_freq=args.log_freq, save_freq=args.save_freq,
        eval_freq=args.eval_freq, eval_episodes=args.eval_episodes, eval_n_envs=args.eval_n_envs,
        obs_type=args.obs_type, image_size=tuple(args.image_size) if args.image_size else None,
        lr_schedule=args.lr_schedule, threads=args.threads, yield_cores=args.yield_cores, device=args.device, precision=args.precision, ema=args.ema,
        ema_max_decay=args.ema_max_decay, min_std=args.min_std, resume=args.resume, init_from=args.init_from,
        progress=args.progress,
        seed_steps=args.seed_steps, buffer_capacity=args.buffer_capacity, update_every=args.update_every,
        randomization=load_randomization(args.randomization), dynamics=_for_sim_env(args, "--dynamics", args.dynamics, "sets the sim arm's parameters", load_dynamics),
        camera_poses=_for_sim_env(args, "--camera-poses", args.camera_poses, "places the sim's cameras",
                                  load_camera_poses_arg),
    )  # fmt: skip


def _for_sim_env(args: argparse.Namespace, flag: str, value: Any, does: str, load: Any) -> dict[str, Any] | None:
    """A file that shapes the sim env of online training and evaluation (`--dynamics`, `--camera-poses`), loaded
    and checked against the arm of `--env`, which it needs."""
    if value is None:
        return None
    if not args.env:
        args._parser.error(f"{flag} {does} in the env of online training and evaluation: give --env too")
    entry = env_entry(args._parser, args.env)
    if args.env == entry.real_id:
        args._parser.error(f"{flag} {does}; {args.env} is the real arm")
    return load(value, entry.arm)


#: Options `--resume` does not take from the run: where and how this process runs, not what the run is.
NOT_RESUMED = frozenset({"command", "resume", "output_dir", "device", "progress", "push_to_hub", "init_from"})


def _resume_defaults(args: argparse.Namespace) -> None:
    """`--resume` continues the run as it was: every option not given (on the command line or in --config) takes
    the run's value from its config.json, as a `--config RUN/config.json` would (LeRobot resumes from the run's own
    config too), saying which differ from the defaults; `--steps N` alone extends it. Given options win; policy,
    data and `--set` values that contradict the run are refused later (`reconcile_resume`). A run the Python API
    started (train_config.json only) gives --policy, --dataset and --env."""
    from twinarm.cli.config_file import load_config_file, take_saved_options

    out = Path(args.output_dir)
    saved_file = out / "config.json"
    if not saved_file.is_file():
        saved_file = out / "train_config.json"
    if not saved_file.is_file():
        if args.policy is None:
            args._parser.error(f"--resume: {args.output_dir} holds no run (no config.json); give --output-dir "
                               "the folder of the run to continue, or --policy to start one there")  # fmt: skip
        return
    saved = load_config_file(saved_file, args._parser.error)
    if saved_file.name == "train_config.json":  # written by the Python API: its other fields are not flags
        saved = {k: [v] if k == "dataset" and isinstance(v, str) else v for k, v in saved.items()
                 if k in ("policy", "dataset", "env") and v is not None}  # fmt: skip
    # the run's --set values are checked against the policy first (reconcile_resume), then taken
    taken = take_saved_options(args._parser, args, saved, saved_file, NOT_RESUMED | {"policy_overrides"})
    if taken:
        print(f"--resume: with the run's own {', '.join(taken)} ({saved_file})")


def _checkpoint_type(checkpoint: str) -> str | None:
    """The policy type in `checkpoint`'s config.json (`--init-from` without `--policy`)."""
    from twinarm.agents.policy import CONFIG_NAME, resolve_checkpoint

    try:
        src = resolve_checkpoint(checkpoint)
        return json.loads((src / CONFIG_NAME).read_text()).get("type")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--init-from {checkpoint}: not a policy checkpoint ({exc})") from None


def device_arg(args: argparse.Namespace) -> Any:
    """`--device` resolved (auto: CUDA when there is one), or a parser error naming what this torch runs on."""
    from twinarm.agents.distributed import DeviceError, resolve_device

    try:
        return resolve_device(args.device)
    except DeviceError as exc:
        args._parser.error(str(exc))


def check_precision_arg(args: argparse.Namespace, device: Any) -> None:
    """`--precision` (from the command line or a --config file) checked against `device`: a parser error if it
    cannot run there."""
    from twinarm.agents.precision import check_precision

    try:
        check_precision(args.precision, device)
    except ValueError as exc:
        said = str(exc).removeprefix(f"precision {args.precision}: ")
        args._parser.error(f"--precision {args.precision}: {said}")


def run(args: argparse.Namespace) -> int:
    from twinarm.agents.distributed import dist_info
    from twinarm.agents.policy import ConfigOverrideError, PolicyConfigError
    from twinarm.agents.registry import POLICIES, get_config_class
    from twinarm.agents.train import train
    from twinarm.agents.train_config import dataset_roots, reconcile_resume

    if args.policy is None and args.init_from:
        args.policy = _checkpoint_type(args.init_from)
    if args.resume:
        _resume_defaults(args)
    if args.policy not in POLICIES:
        near = difflib.get_close_matches(str(args.policy), list(POLICIES), n=1)
        args._parser.error(f"--policy must be one of {sorted(POLICIES)}, got {args.policy!r}"
                           + (f"; did you mean {near[0]}?" if near else ""))
    try:
        get_config_class(args.policy).check_overrides(dict(args.policy_overrides or {}))
    except ConfigOverrideError as exc:
        args._parser.error(f"--set {exc}")
    try:
        dataset_roots(args.dataset)
    except PolicyConfigError as exc:
        args._parser.error(str(exc))
    if args.dataset is None and args.policy != "tdmpc":
        raise SystemExit(f"--policy {args.policy} trains offline: pass --dataset ROOT_OR_REPO")
    if args.dataset is None and args.env is None:
        raise SystemExit("online training needs --env")
    if args.env is not None and args.env == (entry := env_entry(args._parser, args.env)).real_id:
        if args.dataset is None:
            args._parser.error(f"--env {args.env} is the real arm: online TD-MPC learns by trial and error in sim "
                               f"({entry.sim_id}); run the trained policy on the real arm with `twinarm eval`")
        if args.eval_freq > 0:
            args._parser.error(f"--env {args.env} is the real arm, and periodic evaluation runs unattended: evaluate "
                               f"in sim ({entry.sim_id}), or pass --eval-freq 0")
    check_precision_arg(args, device_arg(args))
    repo = getattr(args, "push_to_hub", None)
    if repo is not None:
        from twinarm.agents.policy_hub import repo_id_error

        if (bad := repo_id_error(repo)) is not None:
            args._parser.error(f"--push-to-hub {bad}")
    tc = train_config_from_args(args)
    try:  # before config.json is written over a run's own; it then records the --set values resumed with
        args.policy_overrides = list(reconcile_resume(tc)[0].policy_overrides.items())
    except ValueError as exc:
        args._parser.error(str(exc))
    last = train(tc, on_start=lambda out: write_resolved_config(args, out))  # written once the dataset is read
    if dist_info()[0] == 0:
        from twinarm.agents.run_log import CURVE_PNG

        out = Path(args.output_dir)
        print(f"last checkpoint: {last / 'pretrained_model'}")
        logs = [str(out / n) for n in ("train_log.csv", "eval_log.csv", CURVE_PNG) if (out / n).exists()]
        if logs:
            print(f"logs: {', '.join(logs)}")
        if repo is not None:
            from twinarm.agents.policy_hub import push_policy
            from twinarm.datasets_io.hub import HubError

            try:
                print(f"pushed the last checkpoint to {push_policy(last / 'pretrained_model', repo)}")
            except HubError as exc:  # the run itself is safe on disk: say so, and how to push it later
                print(f"twinarm train: {exc}\nthe checkpoint is saved; push it later with `twinarm push-policy "
                      f"--policy {last / 'pretrained_model'} --repo-id {repo}`", file=sys.stderr)
                return 1
    return 0
