"""`twinarm envs`: a table of every registered env id with its arm, task, action size, cameras and rates."""

from __future__ import annotations

import argparse

from twinarm.arms import get_arm
from twinarm.cli.config import add_config_arg
from twinarm.registration import ENV_ENTRIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "envs",
        help="list the registered env ids",
        description="List every twinarm sim env id (with --real, each one's real-hardware twin too) with arm, task, action dim, "
        "cameras, control rate and episode length, all read from the arm specs (also the ids of installed "
        "packages that register their own tasks: a `twinarm.plugins` entry point). In LeRobot's own tools (with "
        "twinarm installed beside LeRobot) a sim is `--env.discover_packages_path=twinarm.lerobot_env "
        "--env.type=twinarm --env.task=<id without twinarm/>`.",
    )
    p.add_argument("--real", action="store_true", help="also list the real-hardware twin of each id")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (for the README)")
    add_config_arg(p)
    p.set_defaults(func=run, _parser=p)


def rows(include_real: bool = False) -> list[dict[str, str]]:
    from twinarm.plugins import load_plugins

    load_plugins()  # installed packages' own tasks and arms are listed too
    out = []
    for e in ENV_ENTRIES:
        spec = get_arm(e.arm)
        ids = [e.sim_id] + ([e.real_id] if include_real else [])
        for env_id in ids:
            out.append(
                {
                    "id": env_id,
                    "arm": spec.display_name,
                    "task": e.task,
                    "action dim": str(spec.dof),
                    "cameras": ", ".join(f"{c.name} {c.height}x{c.width}" for c in spec.cameras),
                    "control": f"{spec.control_hz} Hz",
                    "episode": f"{e.task_info.max_episode_steps} steps",
                }
            )
    return out


def format_table(table: list[dict[str, str]], markdown: bool = False) -> str:
    cols = list(table[0])
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in table]
        return "\n".join(lines)
    widths = {c: max(len(c), *(len(r[c]) for r in table)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in table]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(format_table(rows(args.real), markdown=args.markdown))
    return 0
