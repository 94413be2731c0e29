"""`twinarm push-policy`: publish a policy checkpoint as a Hugging Face Hub model repo (twinarm's or LeRobot's layout)."""

from __future__ import annotations

import argparse
from pathlib import Path

from twinarm.cli.config import add_config_arg

PUSH_EPILOG = """\
examples:
  twinarm push-policy --policy outputs/act --repo-id me/so101_pickcube_act
  twinarm push-policy --policy outputs/act --repo-id me/so101_pickcube_act_lerobot --lerobot
  twinarm eval --policy me/so101_pickcube_act --env twinarm/SO101-PickCube-v0     # anyone, from the Hub"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push-policy",
        help="publish a policy checkpoint on the Hugging Face Hub",
        description="Upload a policy checkpoint to a Hub model repo with a short model card. `twinarm eval --policy "
        "USER/NAME` and `Policy.from_pretrained('USER/NAME')` then load it on any machine (cached for offline use). "
        "With --lerobot the repo holds the checkpoint as LeRobot 0.6 saves one (see `twinarm export-lerobot`), "
        "which LeRobot's own from_pretrained loads. Needs a Hub token (`hf auth login` or HF_TOKEN).",
        epilog=PUSH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--policy", type=Path, required=True,
                   help="policy checkpoint (a pretrained_model folder), a checkpoint step folder, or a training run "
                   "directory (its newest checkpoint)")  # fmt: skip
    p.add_argument("--repo-id", required=True, help="Hub model repo, USER/NAME (created if missing)")
    p.add_argument("--lerobot", action="store_true", help="upload in LeRobot's checkpoint layout instead of twinarm's")
    p.add_argument("--lerobot-ddim", action="store_true",
                   help="with --lerobot, Diffusion: sample DDIM as LeRobot does (as export-lerobot --lerobot-ddim)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from twinarm.agents.lerobot_checkpoint import LeRobotCheckpointError
    from twinarm.agents.policy_hub import push_policy, repo_id_error
    from twinarm.cli.export_cmd import lerobot_ddim_hint

    if (bad := repo_id_error(args.repo_id)) is not None:
        args._parser.error(f"--repo-id {bad}")
    if args.lerobot_ddim and not args.lerobot:
        args._parser.error("--lerobot-ddim: only with --lerobot")
    try:
        url = push_policy(args.policy, args.repo_id, lerobot=args.lerobot, lerobot_ddim=args.lerobot_ddim,
                          private=args.private)  # fmt: skip
    except FileNotFoundError as exc:
        args._parser.error(f"--policy: {exc}")
    except LeRobotCheckpointError as exc:
        args._parser.error(f"--policy {args.policy}: {exc}{lerobot_ddim_hint(exc)}")
    print(f"pushed {'a LeRobot' if args.lerobot else 'a twinarm'} checkpoint to {url}")
    return 0
