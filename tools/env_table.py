"""Generate the README table of every registered env id (never typed by hand).

Columns: arm, task, action dim, cameras, control rate, episode length and the scripted expert's success
over N seeded episodes (measured with benchmarks/expert_success.py's function).

    python tools/env_table.py --episodes 100                       # print the markdown table
    python tools/env_table.py --episodes 100 --readme README.md    # rewrite the block between the markers

The README block is delimited by `<!-- env-table:start -->` and `<!-- env-table:end -->`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.expert_success import expert_success  # noqa: E402
from twinarm.arms import get_arm  # noqa: E402
from twinarm.registration import ENV_ENTRIES  # noqa: E402

START, END = "<!-- env-table:start -->", "<!-- env-table:end -->"


def table(episodes: int, first_seed: int = 0) -> str:
    """The markdown table; `episodes=0` leaves the success column out."""
    head = ["env id", "arm", "task", "action dim", "cameras", "control", "episode"]
    if episodes:
        head.append(f"expert success ({episodes} seeds)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in ENV_ENTRIES:
        spec = get_arm(e.arm)
        cams = ", ".join(c.name for c in spec.cameras)
        if spec.optional_cameras:
            cams += " (+ " + ", ".join(c.name for c in spec.optional_cameras) + ")"
        row = [
            f"`{e.sim_id}`",
            spec.display_name,
            e.task,
            str(spec.dof),
            cams,
            f"{spec.control_hz} Hz",
            f"{e.task_info.max_episode_steps} steps",
        ]
        if episodes:
            row.append(f"{expert_success(e.sim_id, episodes, first_seed)['success']:.0%}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def rewrite_readme(path: Path, block: str) -> None:
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} block to rewrite")
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: f"{START}\n{block}\n{END}", text, flags=re.S)
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100, help="seeded expert episodes per id (0: no success column)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--readme", type=Path, help="rewrite the marked block of this file instead of printing")
    args = parser.parse_args(argv)
    block = table(args.episodes, args.first_seed)
    if args.readme:
        rewrite_readme(args.readme, block)
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
