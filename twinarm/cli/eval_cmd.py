"""`twinarm eval`: evaluate a trained policy in a sim env (pc_success, avg_sum_reward, avg_max_reward)."""

from __future__ import annotations

import argparse
from pathlib import Path

from twinarm.cli.config import add_config_arg, write_resolved_config
from twinarm.cli.train_cmd import policy_kv


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a policy checkpoint in simulation",
        description="Roll out a policy checkpoint (a directory written by save_pretrained, e.g. "
        "checkpoints/<step>/pretrained_model) for --episodes episodes over parallel Gymnasium vector envs. "
        "Prints a table, writes eval_info.json (LeRobot's metric names) and mp4s of the first episodes.",
    )
    p.add_argument("--policy", type=Path, required=False, default=None, help="policy checkpoint directory")
    p.add_argument("--env", default="twinarm/SO101-PickCube-v0", help="env id (sim, or its -Real twin)")
    p.add_argument("--episodes", type=int, default=50, help="number of episodes")
    p.add_argument("--n-envs", type=int, default=10, help="episodes run in parallel")
    p.add_argument("--seed", type=int, default=100_000, help="seed of the first episode (then +1, ...)")
    p.add_argument("--videos", type=int, default=4, help="episodes to save as mp4")
    p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"), help="env image size")
    p.add_argument("--max-steps", type=int, default=None, help="cut episodes after this many steps (default: the env's limit)")
    p.add_argument(
        "--set", dest="policy_overrides", type=policy_kv, action="append", default=[], metavar="FIELD=VALUE",
        help="override an inference setting of the policy config (JSON value), e.g. --set n_action_steps=20",
    )
    p.add_argument("--async-envs", action="store_true", help="run the envs in subprocesses")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when available), cpu, cuda, ...")
    p.add_argument("--out", type=Path, default=Path("outputs/eval"), help="output folder")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    import torch

    import twinarm  # noqa: F401  (registers the env ids)
    from twinarm.agents.eval import evaluate, format_table, save_result
    from twinarm.agents.policy import Policy

    if args.policy is None:
        raise SystemExit("--policy DIR is required (a checkpoint directory with config.json)")
    if args.episodes < 1:
        raise SystemExit("--episodes must be at least 1")
    torch.set_num_threads(max(1, args.threads))
    from twinarm.agents.train import resolve_device

    policy = Policy.from_pretrained(args.policy, overrides=dict(args.policy_overrides or {}))
    policy.to(resolve_device(args.device))
    write_resolved_config(args, args.out)
    result = evaluate(
        policy, args.env, n_episodes=args.episodes, n_envs=args.n_envs, seed=args.seed,
        videos_dir=args.out / "videos", max_videos=args.videos,
        image_size=tuple(args.image_size) if args.image_size else None, use_async=args.async_envs, max_steps=args.max_steps,
    )  # fmt: skip
    path = save_result(result, args.out)
    print(format_table(result.aggregated))
    print(f"wrote {path}")
    return 0
