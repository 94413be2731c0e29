"""`twinarm demo`: roll out the scripted expert on a sim env and write an mp4 plus a summary line."""

from __future__ import annotations

import argparse
from pathlib import Path

from twinarm.cli.config import add_config_arg, write_resolved_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="roll out the scripted expert and save a video",
        description="Roll out the scripted expert on a simulated arm (default: SO101-PickCube) and write "
        "an mp4 of every camera side by side plus a one-line summary.",
    )
    p.add_argument("--env", default="twinarm/SO101-PickCube-v0", help="sim env id (see `twinarm envs`)")
    p.add_argument("--episodes", type=int, default=3, help="number of episodes to roll out")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode (then seed+1, ...)")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    p.add_argument("--height", type=int, default=240, help="rendered image height")
    p.add_argument("--width", type=int, default=320, help="rendered image width")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from twinarm.envs.demo import run_demo

    write_resolved_config(args, args.out)
    summary = run_demo(args.env, args.episodes, args.seed, args.out, (args.height, args.width))
    print(summary)
    return 0
