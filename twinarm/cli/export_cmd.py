"""`twinarm export-lerobot`: a twinarm policy checkpoint written as a LeRobot 0.6 `pretrained_model/` folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from twinarm.cli.config import add_config_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-lerobot",
        help="write a policy checkpoint as a LeRobot checkpoint",
        description="Write a twinarm policy checkpoint (ACT, Diffusion Policy, TD-MPC) as LeRobot "
        "0.6 saves one: config.json, model.safetensors under LeRobot's names, and the pre/post-processors with the "
        "normalization stats, so LeRobot's from_pretrained and make_pre_post_processors(pretrained_path=...) load "
        "the same policy (its evaluation, async inference, the Hub). The reverse is `twinarm eval --policy "
        "LEROBOT_DIR`.",
    )
    p.add_argument("--policy", type=Path, required=True,
                   help="policy checkpoint (a pretrained_model folder), a checkpoint step folder, or a training run "
                   "directory (its newest checkpoint)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="folder to write (created; must not hold a checkpoint)")
    p.add_argument("--lerobot-ddim", action="store_true",
                   help="Diffusion: sample DDIM as LeRobot does (noise estimate from the model's output) instead of "
                   "refusing a DDIM policy set to take it from the clipped clean sample (twinarm's default); the exported "
                   "policy then differs slightly from the one evaluated in twinarm. DDPM (the default scheduler) "
                   "samples alike either way and is exported as it is")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from twinarm.agents.lerobot_checkpoint import LeRobotCheckpointError, is_lerobot_checkpoint
    from twinarm.agents.lerobot_export import save_lerobot
    from twinarm.agents.policy import CONFIG_NAME, Policy, resolve_checkpoint

    if args.out.exists() and not args.out.is_dir():
        args._parser.error(f"--out {args.out} is a file; give a new folder for the checkpoint")
    if args.out.is_dir() and any(args.out.iterdir()):  # its files would land among a dataset's or a run's
        what = "a checkpoint" if (args.out / CONFIG_NAME).exists() else f"{len(list(args.out.iterdir()))} entries"
        args._parser.error(f"--out {args.out} is not empty ({what} there); name a new or empty folder")
    try:
        if is_lerobot_checkpoint(resolve_checkpoint(args.policy)):
            args._parser.error(f"--policy {args.policy} is a LeRobot checkpoint already: LeRobot loads it as it is "
                               "(and `twinarm eval --policy` reads it too)")
        policy = Policy.from_pretrained(args.policy)
    except FileNotFoundError as exc:
        args._parser.error(f"--policy: {exc}")
    try:
        out = save_lerobot(policy, args.out, lerobot_ddim=args.lerobot_ddim)
    except LeRobotCheckpointError as exc:
        args._parser.error(f"--policy {args.policy}: {exc}{lerobot_ddim_hint(exc)}")
    print(f"wrote a LeRobot {policy.name} checkpoint to {out} (load it with LeRobot's "
          f"{type(policy).__name__}.from_pretrained and make_pre_post_processors(config, pretrained_path=...))")
    return 0


def lerobot_ddim_hint(exc: Exception) -> str:
    """What to add to an export refused for twinarm's DDIM variant (the CLI's two ways out), else nothing."""
    from twinarm.agents.lerobot_export import CLIPPED_DDIM

    if CLIPPED_DDIM not in str(exc):
        return ""
    return (f": pass --lerobot-ddim to export it sampling as LeRobot does (it then differs slightly from the policy "
            f"evaluated in twinarm), or train it with --set {CLIPPED_DDIM}=false")
