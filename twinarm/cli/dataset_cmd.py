"""`twinarm dataset info|check|push|convert-units|units|delete-episodes|merge|view` (and the edits of
`dataset_edit_cmd`: split, remove-feature, rename-feature, modify-tasks, convert-to-video): inspect, validate, publish, convert,
edit and look at LeRobot v3 datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from twinarm.cli.config import add_config_arg, hub_repo_id
from twinarm.cli.dataset_edit_cmd import register_edits


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dataset",
        help="inspect, validate, publish, edit or view a LeRobot v3 dataset",
        description="Work with LeRobot v3.0 datasets (twinarm- or LeRobot-written): a summary table, the "
        "validator, a Hub upload, a copy in other joint units, without some episodes or features, with "
        "features renamed, new task texts or its images as videos, several merged into one or one split into several, or an episode "
        "rendered to mp4/PNG with state and action plots.",
    )
    add_config_arg(p)
    p.set_defaults(_parser=p)
    ds = p.add_subparsers(dest="dataset_command", metavar="<action>")

    info = ds.add_parser("info", help="summary table of a dataset", description="Print a dataset's summary: "
                         "frames, episodes, tasks, fps, features with shapes, files.")
    info.add_argument("root", help="dataset directory or Hub repo id")
    info.add_argument("--episodes", action="store_true",
                      help="also one line per episode: index, frames, seconds, task (to pick ones to delete)")
    add_config_arg(info)
    info.set_defaults(func=run_info, _parser=info)

    check = ds.add_parser("check", help="validate a dataset against LeRobot's loader rules",
                          description="Check every rule LeRobot's v3 loader relies on; exit 1 and list the "
                          "problems (each naming its file) if any.")
    check.add_argument("root", type=Path, help="dataset directory")
    check.add_argument("--deep", action="store_true", help="also decode every image and video frame")
    check.add_argument("--repair", action="store_true",
                       help="first finish an interrupted episode commit and delete stray temp files")
    add_config_arg(check)
    check.set_defaults(func=run_check, _parser=check)

    push = ds.add_parser("push", help="upload a dataset to the Hugging Face Hub",
                         description="Validate, then upload a dataset folder as a Hub dataset repo tagged v3.0.")
    push.add_argument("root", type=Path, help="dataset directory")
    push.add_argument("--repo-id", type=hub_repo_id, default=None, help="Hub repo id, e.g. user/so101_pickcube (default: the "
                      "--repo-id it was recorded with)")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--branch", default=None, help="upload to this branch")
    push.add_argument("--no-check", action="store_true", help="skip the validator")
    add_config_arg(push)
    push.set_defaults(func=run_push, _parser=push)

    conv = ds.add_parser(
        "convert-units", help="copy a dataset with its joints from LeRobot's -100..100 range to degrees, or back",
        description="LeRobot records body joints in degrees or, with use_degrees=False (the Koch follower's "
        "default in LeRobot 0.6.1, an option for the SO arms), in a -100..100 range over each motor's calibrated "
        "span. twinarm reads LeRobot datasets in degrees: convert a range-mode recording with the calibration "
        "file of the arm that recorded it (--to range writes the other way, for a LeRobot setup in range "
        "mode). observation.state and action are rescaled and their stats recomputed; the gripper (0..100 in "
        "both modes), videos and images are copied as they are.",
    )
    conv.add_argument("root", type=Path, help="dataset directory")
    conv.add_argument("out", type=Path, help="new directory for the converted copy")
    conv.add_argument("--calibration", type=Path, required=True,
                      help="LeRobot calibration JSON of the recording arm (LeRobot keeps it under "
                      "~/.cache/huggingface/lerobot/calibration/robots/<robot_type>/<id>.json)")
    conv.add_argument("--arm", default=None,
                      help="arm name (so101, so100, koch; default: the one of the dataset's robot_type)")
    conv.add_argument("--to", choices=("degrees", "range"), default="degrees",
                      help="degrees (from range mode; the default) or range (from degrees)")
    add_config_arg(conv)
    conv.set_defaults(func=run_convert_units, _parser=conv)

    units = ds.add_parser(
        "units", help="say (or set) which units a dataset's joints are in: degrees or LeRobot's -100..100 range",
        description="LeRobot's Koch follower records body joints in a -100..100 range unless use_degrees=true, "
        "and nothing in its dataset says which; twinarm reads degrees and warns on such a recording. This prints "
        "what twinarm knows of a dataset's units and how; --set records it (meta/twinarm_units.json, nothing else "
        "changes), for a recording known to be in degrees. Range data is converted with convert-units instead.",
    )
    units.add_argument("root", type=Path, help="dataset directory")
    units.add_argument("--set", choices=("degrees", "range"), default=None, dest="set_units",
                       help="record the joints' units in the dataset")
    add_config_arg(units)
    units.set_defaults(func=run_units, _parser=units)

    dele = ds.add_parser(
        "delete-episodes", help="copy a dataset without some episodes (renumbered, stats recomputed)",
        description="Write a copy of a dataset without the given episodes, e.g. botched demonstrations. The "
        "kept episodes are renumbered from 0 in order; indices, tasks and stats follow. Videos are remuxed, "
        "not re-encoded, so the kept frames are bit-identical and the deleted footage is cut out (a video whose "
        "episodes do not each start on a keyframe is kept whole instead, and the command says so). The source "
        "is not changed.",
    )
    dele.add_argument("root", type=Path, help="dataset directory")
    dele.add_argument("out", type=Path, help="new directory for the edited copy")
    dele.add_argument("--episodes", nargs="+", required=True, metavar="N|A-B",
                      help="episode indices to delete: numbers and inclusive ranges, e.g. 3 7-9")
    add_config_arg(dele)
    dele.set_defaults(func=run_delete_episodes, _parser=dele)

    merge = ds.add_parser(
        "merge", help="write several datasets of one robot as one new dataset",
        description="Write the given datasets, in order, as one new dataset (recording sessions of several days; "
        "sim and real demonstrations to publish together). They must agree on fps, robot type and features; "
        "videos are copied, not re-encoded, so each video feature must also share codec, pixel format and size. "
        "Episodes, frames and tasks are renumbered; stats are aggregated again. The sources are not changed.",
    )
    merge.add_argument("sources", type=Path, nargs="+", help="dataset directories (two or more)")
    merge.add_argument("--out", type=Path, required=True, help="new directory for the merged dataset")
    add_config_arg(merge)
    merge.set_defaults(func=run_merge, _parser=merge)

    register_edits(ds)

    view = ds.add_parser("view", help="render an episode's frames and plots to mp4/PNG",
                         description="Render one episode: cameras side by side over state/action plots with "
                         "a moving cursor, to an mp4 (or a PNG contact sheet if FILE ends in .png).")
    view.add_argument("root", help="dataset directory or Hub repo id")
    view.add_argument("--episode", type=int, default=0, help="episode index")
    view.add_argument("--out", type=Path, default=None, help="output file (.mp4 or .png; default: "
                      "episode_<6-digit index>.mp4 in the current folder, e.g. episode_000003.mp4)")
    add_config_arg(view)
    view.set_defaults(func=run_view, _parser=view)


def _arm_said(root: Path, robot_type: str | None) -> str:
    """Which twinarm arm recorded the dataset, in words (LeRobot's `so_follower` does not say which SO arm)."""
    from twinarm.dataset_arm import recorded_arms, twinarm_arm

    arms = recorded_arms(root, robot_type)
    if not arms:
        return "none of twinarm's (pass --env to train or replay)"
    if twinarm_arm(root) is not None:
        return f"{arms[0].name} (recorded by twinarm)"
    return " or ".join(a.name for a in arms) + (" (LeRobot names both so_follower)" if len(arms) > 1 else "")


def info_rows(root: str) -> list[tuple[str, str]]:
    """The summary shown by `twinarm dataset info`, as (field, value) rows."""
    from twinarm.datasets_io.meta import DatasetMeta, resolve_root

    meta = DatasetMeta(resolve_root(root))
    info = meta.info
    lengths = meta.episodes["length"]
    rows = [
        ("root", str(meta.root)),
        ("codebase_version", info["codebase_version"]),
        ("robot_type", str(info.get("robot_type"))),
        ("arm", _arm_said(meta.root, info.get("robot_type"))),
        ("fps", str(meta.fps)),
        ("episodes", str(meta.total_episodes)),
        ("frames", f"{meta.total_frames} ({meta.total_frames / meta.fps:.1f} s)"),
        ("episode length", f"min {lengths.min()}, mean {lengths.mean():.1f}, max {lengths.max()}" if len(lengths) else "-"),
        ("tasks", "; ".join(f"{i}: {t}" for i, t in enumerate(meta.tasks))),
    ]
    for k, ft in meta.features.items():
        extra = ""
        if ft["dtype"] == "video" and ft.get("info"):
            extra = f" {ft['info'].get('video.codec')} {ft['info'].get('video.pix_fmt')}"
        depth = meta.depth.get(k)
        if depth is not None:
            quant = (f", {'log' if depth.use_log else 'linear'} 12-bit codes over {depth.depth_min:g}-{depth.depth_max:g} m"
                     if depth.video else f", stored in {depth.unit or 'unstated units'}")
            extra += f" (depth camera: float32 millimetres{quant})"
        names = ft.get("names")
        shown = f" {names}" if isinstance(names, list) and ft["dtype"] not in ("video", "image") else ""
        rows.append((f"feature {k}", f"{ft['dtype']} {list(ft['shape'])}{extra}{shown}"))
    n_data = len(list((meta.root / "data").glob("*/*.parquet")))
    n_video = len(list((meta.root / "videos").glob("*/*/*.mp4")))
    size = sum(f.stat().st_size for f in meta.root.rglob("*") if f.is_file())
    rows.append(("files", f"{n_data} data parquet, {n_video} mp4, {size / 1e6:.2f} MB"))
    return rows


def episode_rows(root: str) -> list[tuple[int, int, float, str]]:
    """(episode, frames, seconds, task(s)) of every episode, from meta/episodes."""
    from twinarm.datasets_io.layout import EPISODES_DIR, read_parquet, sorted_parquet_files
    from twinarm.datasets_io.meta import DatasetMeta, resolve_root

    meta = DatasetMeta(resolve_root(root))
    rows = []
    for path in sorted_parquet_files(meta.root / EPISODES_DIR):
        table = read_parquet(path)
        tasks = table.column("tasks").to_pylist() if "tasks" in table.column_names else [[]] * table.num_rows
        for e, n, t in zip(table.column("episode_index").to_pylist(), table.column("length").to_pylist(), tasks,
                           strict=True):
            rows.append((int(e), int(n), n / meta.fps, " | ".join(t or [])))
    return sorted(rows)


def run_info(args: argparse.Namespace) -> int:
    rows = info_rows(args.root)
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(w)}  {v}")
    if args.episodes:
        print(f"\n{'episode':>7}  {'frames':>6}  {'seconds':>7}  task")
        for e, n, sec, task in episode_rows(args.root):
            print(f"{e:>7}  {n:>6}  {sec:>7.1f}  {task}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.layout import DatasetError
    from twinarm.datasets_io.meta import not_a_folder
    from twinarm.datasets_io.validator import check_dataset
    from twinarm.datasets_io.writer import repair

    if (why := not_a_folder(args.root)) is not None:  # one error, not a list of one "problem"
        raise DatasetError(why)
    if args.repair and repair(args.root):
        print(f"{args.root}: finished an interrupted commit / removed temp files")
    problems = check_dataset(args.root, deep=args.deep)
    if problems:
        print(f"{args.root}: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"{args.root}: OK (LeRobot v3.0 rules{', every frame decoded' if args.deep else ''})")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.hub import push
    from twinarm.datasets_io.validator import check_dataset

    if not args.no_check:
        problems = check_dataset(args.root)
        if problems:
            print("not pushing; the dataset has problems:\n  - " + "\n  - ".join(problems))
            return 1
    repo_id = args.repo_id or _recorded_repo_id(args.root)
    if not repo_id:
        args._parser.error(f"--repo-id is needed: {args.root} was not recorded with one")
    url = push(args.root, repo_id, private=args.private, branch=args.branch)
    print(f"pushed {args.root} to {url}")
    return 0


def _recorded_repo_id(root: Path) -> str | None:
    """The --repo-id that `twinarm record` / `teleop --record` stored beside the dataset, if any."""
    from twinarm.datasets_io.layout import recording_options

    return recording_options(root).get("repo_id")


def run_convert_units(args: argparse.Namespace) -> int:
    import numpy as np

    from twinarm.arms import get_arm
    from twinarm.dataset_arm import recorded_arms
    from twinarm.datasets_io.layout import INFO_PATH, load_json
    from twinarm.datasets_io.units import check_direction, rescale_joints
    from twinarm.real.calibration import Calibration

    robot_type = load_json(args.root / INFO_PATH).get("robot_type")
    recorded = recorded_arms(args.root, robot_type)
    if args.arm:
        spec = get_arm(args.arm)
        if recorded and spec not in recorded:
            args._parser.error(f"--arm {args.arm}: {args.root} was recorded on {recorded[0].name} ({robot_type!r}); "
                               "convert it with that arm's calibration")  # fmt: skip
    else:
        if not recorded:
            args._parser.error(f"{args.root}: robot_type {robot_type!r} is none of twinarm's arms; name one with --arm")
        spec = recorded[0]  # LeRobot's so_follower: the SO arms' joints and factors are alike
    factors = Calibration.load(args.calibration).degrees_per_range_unit(spec)
    body = ~spec.gripper_mask
    check_direction(args.root, args.to, body)
    if args.to == "range":
        factors = np.where(body, 1.0 / factors, 1.0)
    out = rescale_joints(args.root, args.out, factors, range_mask=body if args.to == "range" else None,
                         names=spec.motor_feature_names, to=args.to)
    print(f"wrote {out}: {spec.name} joints to {args.to} ({joint_factors(spec, factors)})")
    return 0


def run_units(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.layout import INFO_PATH, write_json_atomic
    from twinarm.datasets_io.units import UNITS_PATH, known_units

    if not (args.root / INFO_PATH).is_file():
        args._parser.error(f"{args.root}: not a dataset (no {INFO_PATH})")
    if args.set_units is not None:
        write_json_atomic(args.root / UNITS_PATH, {"joints": args.set_units, "set_by": "twinarm dataset units"})
    known = known_units(args.root)
    print(f"{args.root}: " + (f"joints in {known[0]} ({known[1]})" if known else "units unknown (a LeRobot recording "
                             "says nothing of them; `--set degrees` or `convert-units` for range data)"))
    return 0


def episode_list(items: list[str]) -> list[int]:
    """`["3", "7-9"]` -> [3, 7, 8, 9]; ValueError naming the item that is neither N nor A-B."""
    out: list[int] = []
    for item in items:
        for part in str(item).replace(",", " ").split():
            a, dash, b = part.partition("-")
            if not a.isdigit() or (dash and not b.isdigit()):
                raise ValueError(f"episode {part!r}: give an index (3) or an inclusive range (7-9)")
            if dash and int(b) < int(a):
                raise ValueError(f"episode range {part!r} runs backwards: did you mean {b}-{a}?")
            out += list(range(int(a), int(b) + 1)) if dash else [int(a)]
    return out


def run_delete_episodes(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.edit import delete_episodes

    try:
        drop = episode_list(args.episodes)
    except ValueError as exc:
        args._parser.error(str(exc))
    out, notes = delete_episodes(args.root, args.out, drop)
    for line in notes:
        print(f"note: {line}")
    print(f"wrote {out}: {args.root} without episode(s) {sorted(set(drop))}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.layout import INFO_PATH, load_json
    from twinarm.datasets_io.merge import merge_datasets

    out = merge_datasets(args.sources, args.out)
    info = load_json(out / INFO_PATH)
    print(f"wrote {out}: {len(args.sources)} datasets, {info['total_episodes']} episodes, {info['total_frames']} "
          f"frames, {info['total_tasks']} task(s)")
    return 0


def joint_factors(spec: object, factors: object) -> str:
    """`shoulder_pan x0.5432, ...; gripper unchanged`: what a unit conversion multiplies each body joint by."""
    scale = ", ".join(f"{n} x{f:.4f}" for n, f, g in zip(spec.joint_names, factors, spec.gripper_mask, strict=True)
                      if not g)
    return f"{scale}; gripper unchanged"


def run_view(args: argparse.Namespace) -> int:
    from twinarm.datasets_io.viz import render_episode

    out = args.out if args.out is not None else Path(f"episode_{args.episode:06d}.mp4")
    print(f"wrote {render_episode(args.root, args.episode, out)}")
    return 0
