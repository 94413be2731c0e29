"""`twinarm dataset split|remove-feature|rename-feature|modify-tasks|convert-to-video`: the dataset edits LeRobot's
`lerobot-edit-dataset` offers beside delete and merge (and its training-time `rename_map`, as a copy), each writing
a new dataset and leaving the source as it is."""

from __future__ import annotations

import argparse
from pathlib import Path

from twinarm.cli.config import add_config_arg


def register_edits(ds: argparse._SubParsersAction) -> None:
    """Add the edit actions to `twinarm dataset`'s subcommands."""
    split = ds.add_parser(
        "split", help="write a dataset's episodes as several datasets (train / val / test)",
        description="Write OUT/<name> for each split, holding its episodes renumbered from 0 (videos remuxed, "
        "not re-encoded, as delete-episodes does). Fractions take episodes in order, as LeRobot's split does: "
        "each int(total x fraction) after the previous split's, the last split everything left.",
        epilog="examples:\n  twinarm dataset split data/pick --out data/pick_split --splits train=0.8 val=0.2\n"
        "  twinarm dataset split data/pick --out data/pick_split --splits train=0-39 val=40-44 test=45-49",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    split.add_argument("root", type=Path, help="dataset directory")
    split.add_argument("--out", type=Path, required=True, help="folder for the splits (one dataset per split)")
    split.add_argument("--splits", nargs="+", required=True, metavar="NAME=FRACTION|EPISODES",
                       help="each split: a fraction of the episodes (train=0.8) or episodes (val=40-44,47)")
    add_config_arg(split)
    split.set_defaults(func=run_split, _parser=split)

    rm = ds.add_parser(
        "remove-feature", help="copy a dataset without some features (a camera, a state key)",
        description="Write a copy without the given features: their data columns, videos and stats. Dropping a "
        "camera the policy does not use makes the dataset smaller and quicker to load and upload.",
    )
    rm.add_argument("root", type=Path, help="dataset directory")
    rm.add_argument("out", type=Path, help="new directory for the edited copy")
    rm.add_argument("--feature", nargs="+", required=True, metavar="KEY",
                    help="feature keys to remove, e.g. observation.images.wrist (see `twinarm dataset info`)")
    add_config_arg(rm)
    rm.set_defaults(func=run_remove_feature, _parser=rm)

    rn = ds.add_parser(
        "rename-feature", help="copy a dataset with some features under new keys (its cameras named as the sim's)",
        description="Write a copy with features under new keys: data columns, videos (moved, not re-encoded) and "
        "stats follow. A LeRobot recording's cameras named as the sim arm's (see `twinarm envs`) let a policy "
        "trained on it run in `twinarm eval`; a camera's new key must name a camera too.",
        epilog="example:\n  twinarm dataset rename-feature data/so101_lerobot data/so101_renamed \\\n"
        "      --rename observation.images.laptop=observation.images.front "
        "observation.images.phone=observation.images.wrist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    rn.add_argument("root", type=Path, help="dataset directory")
    rn.add_argument("out", type=Path, help="new directory for the edited copy")
    rn.add_argument("--rename", nargs="+", required=True, metavar="OLD=NEW", help="a feature key and its new key")
    add_config_arg(rn)
    rn.set_defaults(func=run_rename_feature, _parser=rn)

    retask = ds.add_parser(
        "modify-tasks", help="copy a dataset with its task texts changed",
        description="Write a copy with new task texts. Per episode, as LeRobot resolves it: its --episode-task "
        "if given, else the --replace of its old text, else --task, else the old text. Task indices, the tasks "
        "table and stats follow.",
        epilog='examples:\n  twinarm dataset modify-tasks data/pick data/pick2 --task "Pick up the red cube."\n'
        '  twinarm dataset modify-tasks data/pick data/pick2 --replace "Pick up the cube."="Lift the cube."\n'
        '  twinarm dataset modify-tasks data/pick data/pick2 --episode-task 3="Push the cube."',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    retask.add_argument("root", type=Path, help="dataset directory")
    retask.add_argument("out", type=Path, help="new directory for the edited copy")
    retask.add_argument("--task", default=None, help="the task of every episode not named otherwise")
    retask.add_argument("--episode-task", nargs="+", default=[], metavar="N=TEXT", help="episode N's task")
    retask.add_argument("--replace", nargs="+", default=[], metavar="OLD=NEW", help="replace a task text")
    add_config_arg(retask)
    retask.set_defaults(func=run_modify_tasks, _parser=retask)
    register_to_video(ds)


def register_to_video(ds: argparse._SubParsersAction) -> None:
    conv = ds.add_parser(
        "convert-to-video", help="copy a dataset with its camera images (PNG) encoded as videos",
        description="Write a copy whose colour image features (PNG bytes in the data files: `record --images`, "
        "LeRobot's image datasets) are videos, laid out as the writer lays them out (each episode encoded on its "
        "own, files rolled over by size). Depth images stay images; stats are kept from the original images.",
    )
    conv.add_argument("root", type=Path, help="dataset directory")
    conv.add_argument("out", type=Path, help="new directory for the converted copy")
    conv.add_argument("--feature", nargs="+", default=None, metavar="KEY",
                      help="image features to encode (default: every colour one)")
    conv.add_argument("--codec", choices=("h264", "av1", "hevc"), default="h264", help="video codec (default: h264)")
    conv.add_argument("--crf", type=int, default=None, help="quality (lower is better; default: the codec's)")
    add_config_arg(conv)
    conv.set_defaults(func=run_to_video, _parser=conv)


def run_to_video(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.to_video import images_to_video

    before = sum(p.stat().st_size for p in args.root.rglob("*") if p.is_file())
    out, keys = images_to_video(args.root, args.out, args.feature, args.codec, args.crf)
    after = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out}: {', '.join(keys)} as {args.codec} video ({before / 1e6:.1f} MB -> {after / 1e6:.1f} MB)")
    return 0


def parse_splits(parser: argparse.ArgumentParser, items: list[str]) -> dict[str, float | list[int]]:
    """`train=0.8 val=0.2` or `train=0-39 val=40-49`, as {name: fraction or episodes}."""
    from twinarm.cli.dataset_cmd import episode_list

    out: dict[str, float | list[int]] = {}
    for item in items:
        name, _, value = item.partition("=")
        if not name or not value or name in out:
            parser.error(f"--splits {item!r}: give each split once as NAME=FRACTION (train=0.8) or NAME=EPISODES "
                         "(val=40-49)")
        try:
            out[name] = float(value) if "." in value else episode_list([value])
        except ValueError as exc:
            parser.error(f"--splits {item!r}: {exc}")
    return out


def pairs(parser: argparse.ArgumentParser, flag: str, items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` items as a dict (the value may hold '=')."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"{flag} {item!r}: give KEY=VALUE")
        out[key] = value
    return out


def run_split(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.split import split_dataset

    splits = parse_splits(args._parser, args.splits)
    written = split_dataset(args.root, args.out, splits)
    for path, eps, notes in written.values():
        for line in notes:
            print(f"note: {line}")
        shown = f"{eps[0]}-{eps[-1]}" if eps == list(range(eps[0], eps[-1] + 1)) else ", ".join(map(str, eps))
        print(f"wrote {path}: {len(eps)} episode(s) of {args.root} ({shown})")
    return 0


def run_remove_feature(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.remove_feature import remove_features

    out = remove_features(args.root, args.out, args.feature)
    print(f"wrote {out}: {args.root} without {', '.join(args.feature)}")
    return 0


def run_rename_feature(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.rename_feature import rename_features

    renames = pairs(args._parser, "--rename", args.rename)
    out = rename_features(args.root, args.out, renames)
    print(f"wrote {out}: {args.root} with " + ", ".join(f"{old} as {new}" for old, new in renames.items()))
    return 0


def run_modify_tasks(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.retask import modify_tasks

    episode_tasks = pairs(args._parser, "--episode-task", args.episode_task)
    bad = [k for k in episode_tasks if not k.isdigit()]
    if bad:
        args._parser.error(f"--episode-task {bad[0]}=...: give an episode index, e.g. 3=\"Push the cube.\"")
    replace = pairs(args._parser, "--replace", args.replace)
    out, tasks = modify_tasks(args.root, args.out, args.task, {int(k): v for k, v in episode_tasks.items()},
                              replace)  # fmt: skip
    print(f"wrote {out}: {len(tasks)} task(s): " + "; ".join(f"{i}: {t!r}" for i, t in enumerate(tasks)))
    return 0
