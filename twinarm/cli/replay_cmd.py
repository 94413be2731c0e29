"""`twinarm replay`: play recorded episodes' actions on a sim env or the real arm, and measure how closely the
arm follows what was recorded.

Replaying a real-arm demonstration in sim measures the sim-to-real gap of the arm itself, joint by joint (the
servo model, friction, gravity sag, a gripper closing on an object); replaying a sim episode on the real arm
checks a calibration and the safety limits before any policy runs there. Both start at the episode's first
recorded pose (`reset(options={"joints": ...})`: the sim arm is put there, the real arm driven there at its
`--max-relative-target` per step). Frame t's recorded state is compared with the arm's state after the first t
actions; the table and `replay.json` give each joint's RMS and largest difference in LeRobot's units
(degrees and gripper 0..100; radians and 0..1 for ALOHA), pooled over the episodes replayed, `replay.png`
plots recorded against replayed, and in sim `replay.mp4` shows each camera the dataset recorded beside the
sim's view of it (camera placement, lighting, the scene); several episodes get `replay_ep<N>.png` and
`replay_ep<N>.mp4` each.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from twinarm.cli.config import (
    add_camera_poses_arg,
    add_config_arg,
    add_dynamics_arg,
    at_least,
    env_entry,
    known_env_id,
    load_camera_poses_arg,
    load_dynamics,
    positive,
    write_resolved_config,
)
from twinarm.cli.real_cmd import add_follower_args, parse_follower

EPILOG = """examples:
  twinarm replay --dataset data/so101_real --episode 3 --env twinarm/SO101-PickCube-v0     # real demo in sim
  twinarm replay --dataset data/so101_sim --episode 0 --env twinarm/SO101-PickCube-Real-v0 \\
      --port /dev/ttyACM0 --calibration follower.json                                      # sim demo on the arm"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="play a recorded episode's actions in sim or on the real arm; report how the arm followed",
        description=__doc__.split("\n\n", 1)[1].strip(),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--dataset", required=True, help="dataset directory or Hub repo id (LeRobot v3, twinarm or LeRobot)")
    p.add_argument("--episode", nargs="+", default=["0"], metavar="N|A-B",
                   help="episode index, or several (3 5-8): each is plotted, the table pools them (default: 0)")
    p.add_argument("--env", type=known_env_id, required=True, help="env id of the dataset's arm: a sim id, or its -Real twin")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder for the replay files and config.json (the resolved options) (default: "
                   "outputs/replay/<dataset>_ep<N>, and <dataset>_ep<N>_real for a -Real "
                   "id, so a sim and a real replay of one episode sit side by side); what an earlier replay wrote "
                   "there is replaced")
    p.add_argument("--video", action=argparse.BooleanOptionalAction, default=True,
                   help="write replay.mp4 (replay_ep<N>.mp4 each, for several episodes; sim only): each recorded camera "
                   "beside the sim's view of the same camera")
    p.add_argument("--camera-map", nargs="+", action="extend", default=None, metavar="DATASET_CAMERA=SIM_CAMERA",
                   help="pair dataset cameras with sim cameras of other names for the video, one or more pairs "
                   "(the flag may repeat), e.g. LeRobot's --camera-map laptop=front phone=wrist; by default "
                   "cameras pair by name")
    p.add_argument("--seed", type=at_least(0), default=None,
                   help="sim seed of episode 0: episode k replays with seed + k, where the task's objects start. "
                   "Default: each episode's own seed where the dataset says it (the `sessions` of a twinarm "
                   "recording's meta/twinarm_record.json: every run, resumed and --only-success ones too, and "
                   "episodes kept by `dataset delete-episodes`, `split` or `merge`), else 0")
    add_dynamics_arg(p, "sim (to see how close a `twinarm fit-dynamics` file brings it)")
    add_camera_poses_arg(p, "sim (the video then shows each recorded camera beside the sim's, seen from the same place)")
    p.add_argument("--rate", type=float, default=None, metavar="HZ",
                   help="sim only: the rate the recording's control loop really ran at, so each action is held "
                   "1/HZ s (default: the rate `fit-dynamics --fit-rate` found, when --dynamics was fitted on this "
                   "dataset; else the dataset's fps)")
    real = p.add_argument_group("on the real arm (a -Real env id)")
    add_follower_args(real, required=False)
    real.add_argument("--start-time", type=positive, default=10.0,
                      help="seconds allowed to drive the arm to the episode's first pose (default: 10)")
    add_config_arg(p)
    p.set_defaults(func=run_replay, _parser=p)


def sim_recording(dataset: str) -> str | None:
    """The sim env id a twinarm dataset was recorded in (`record`, `teleop --env`; from meta/twinarm_record.json),
    or None: recorded on a real arm, or by LeRobot."""
    from twinarm.datasets_io.layout import recording_options
    from twinarm.registration import UnknownEnvId, entry_for

    env = recording_options(str(dataset)).get("env")
    try:
        return env if isinstance(env, str) and entry_for(env).sim_id == env else None
    except UnknownEnvId:
        return None


def episode_seeds_for(args: argparse.Namespace, episodes: list[int], real: bool) -> dict[int, int]:
    """The sim seed each episode replays with: `--seed` + index when given, else the dataset's record of it
    (`layout.episode_seeds`), else index (said once when the dataset knows some but not these)."""
    from twinarm.datasets_io.layout import episode_seeds

    if args.seed is not None or real:
        return {e: (args.seed or 0) + e for e in episodes}
    known = episode_seeds(str(args.dataset))
    if all(e in known for e in episodes):
        return {e: known[e] for e in episodes}
    if known:
        print(f"note: {args.dataset}'s meta/twinarm_record.json gives no seed for episode(s) "
              f"{[e for e in episodes if e not in known]}: they replay with seed = episode index (--seed to choose)")
    return {e: e for e in episodes}


def load_episode(dataset: str, episode: int, spec: Any, other_arm: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """(recorded states, actions) in the spec's SI units, and the dataset's fps; errors name what does not fit
    (a dataset of another robot type with the same joints is played with a note, SO-100 data on an SO-101 sim,
    or refused when not `other_arm`: on real hardware, or to fit this arm's servos)."""
    from twinarm.dataset_arm import check_range_units, recorded_arms
    from twinarm.datasets_io.features import joint_names
    from twinarm.datasets_io.layout import DatasetError
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    ds = LeRobotDatasetReader(dataset, episodes=[episode], cameras=[])
    for key in ("observation.state", "action"):
        ft = ds.features.get(key)
        if ft is None:
            raise DatasetError(f"{ds.root}: no {key!r} feature to replay")
        names = joint_names(ft.get("names"))  # LeRobot's `.pos` names and aloha_sim's {"motors": [...]} alike
        if list(ft["shape"]) != [spec.dof] or (names and names != list(spec.joint_names)):
            raise DatasetError(f"{ds.root}: {key!r} is {ft['shape']} {ft.get('names')}; arm {spec.name} has "
                               f"{spec.motor_feature_names}: replay it on its own arm's env")
    robot = ds.meta.info.get("robot_type")
    recorded = recorded_arms(ds.root, robot)
    if robot and spec not in recorded:
        which = f"the {recorded[0].name} arm ({robot!r})" if len(recorded) == 1 else f"robot_type {robot!r}"
        if not other_arm:
            raise DatasetError(f"{ds.root} was recorded on {which}, not {spec.name}: the same joint names, other "
                               "kinematics and ranges; replay it in sim, on its own arm's env")
        print(f"note: {ds.root} was recorded on {which}, not {spec.name} (same joints: replaying anyway)")
    check_range_units(ds.root, recorded)
    batch = ds.get_batch(list(range(len(ds))))
    state = spec.from_lerobot(batch["observation.state"].numpy().astype(np.float64))
    action = spec.from_lerobot(batch["action"].numpy().astype(np.float64))
    return state, action, ds.fps


def shared_cameras(dataset: str, spec: Any, mapping: dict[str, str]) -> tuple[list[tuple[str, str]], tuple[int, int] | None]:
    """(dataset camera, sim camera) pairs, by name or as `mapping` pairs them (LeRobot's `laptop` as the sim's
    `front`, say), colour cameras only, and the dataset's image size. When the dataset has cameras and none pairs,
    a note on stderr names both sides and the --camera-map that pairs them (the video would otherwise show the
    sim's view alone without saying why)."""
    from twinarm.datasets_io.features import depth_keys
    from twinarm.datasets_io.layout import DatasetError
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    meta = LeRobotDatasetReader(dataset, episodes=[0], cameras=[]).meta
    depth = set(depth_keys(meta.features))
    recorded = [k.rsplit(".", 1)[-1] for k in meta.camera_keys if k not in depth]
    sim = {c.name for c in (*spec.cameras, *spec.optional_cameras)}
    for a, b in mapping.items():
        if a not in recorded or b not in sim:
            raise DatasetError(f"--camera-map {a}={b}: the dataset's colour cameras are {recorded}, the sim's "
                               f"{sorted(sim)}")
    pairs = [(c, mapping.get(c, c)) for c in recorded if mapping.get(c, c) in sim]
    if recorded and not pairs:  # LeRobot's laptop/phone: the video would show the sim's view alone, silently
        hint = " ".join(f"{a}={b}" for a, b in zip(recorded, [c.name for c in spec.cameras], strict=False))
        print(f"note: none of the dataset's cameras {recorded} is a sim camera {sorted(sim)}, so the video shows the "
              f"sim's view alone: pair them with --camera-map {hint}", file=sys.stderr)
    size_of = {c: tuple(meta.features[f"observation.images.{c}"]["shape"][:2]) for c, _ in pairs}
    if pairs:  # one image size per sim env: keep the cameras of the first's
        pairs = [p for p in pairs if size_of[p[0]] == size_of[pairs[0][0]]]
    return pairs, (size_of[pairs[0][0]] if pairs else None)


def recorded_frames(dataset: str, episode: int, cameras: list[str]) -> dict[str, list[np.ndarray]]:
    """The episode's frames of `cameras`, uint8 HWC, decoded as LeRobot would."""
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    keys = [f"observation.images.{c}" for c in cameras]
    ds = LeRobotDatasetReader(dataset, episodes=[episode], cameras=keys, uint8_images=True)
    out: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    for i in range(len(ds)):
        sample = ds[i]
        for c, k in zip(cameras, keys, strict=True):
            out[c].append(sample[k].permute(1, 2, 0).numpy())
    return out


def side_by_side(pairs: list[tuple[str, str]], recorded: dict[str, np.ndarray], sim: dict[str, np.ndarray]) -> np.ndarray:
    """Each recorded camera's frame beside the sim's view of it, labelled, one row per camera."""
    import cv2

    rows = []
    for cam, sim_cam in pairs:
        pair = [recorded[cam].copy(), np.ascontiguousarray(sim[sim_cam])]
        for img, label in zip(pair, (f"recorded {cam}", f"sim {sim_cam}"), strict=True):
            scale = max(0.3, img.shape[0] / 480)
            cv2.putText(img, label, (6, int(18 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 0),
                        max(1, int(scale)), cv2.LINE_AA)
        rows.append(np.concatenate(pair, axis=1))
    return np.concatenate(rows, axis=0)


def tracking_table(spec: Any, recorded: np.ndarray, replayed: np.ndarray) -> dict[str, dict[str, float]]:
    """Per joint: RMS and largest |replayed - recorded| over the episode, in LeRobot's units."""
    diff = spec.to_lerobot(replayed) - spec.to_lerobot(recorded)
    return {
        name: {"rms": float(np.sqrt(np.mean(diff[:, j] ** 2))), "max": float(np.max(np.abs(diff[:, j]))),
               "unit": spec.lerobot_unit_labels[j]}
        for j, name in enumerate(spec.joint_names)
    }  # fmt: skip


def format_tracking(table: dict[str, dict[str, float]]) -> str:
    w = max(len(n) for n in (*table, "joint")) + 2
    rows = [f"{'joint':<{w}}{'RMS':>8}{'max':>8}  unit"]
    for name, v in table.items():
        d = 4 if v["unit"] in ("rad", "0..1") else 2  # about the same resolution either way
        rows.append(f"{name:<{w}}{v['rms']:>8.{d}f}{v['max']:>8.{d}f}  {v['unit']}")
    return "\n".join(rows)


def plot_joints(spec: Any, fps: int, series: list[tuple[np.ndarray, str, dict[str, Any]]], out: Path,
                title: str) -> Path | None:  # fmt: skip
    """One panel per joint, each (values in spec units, label, matplotlib style) drawn in LeRobot's units; None
    without matplotlib. The action sent goes first, dashed grey, by the callers' convention."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    t = np.arange(len(series[0][0])) / fps
    curves = [(spec.to_lerobot(values), label, style) for values, label, style in series]
    cols = 2 if spec.dof <= 8 else 4
    rows = -(-spec.dof // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 1.9 * rows), sharex=True, squeeze=False)
    try:
        for j, ax in enumerate(axes.flat):
            if j >= spec.dof:
                ax.axis("off")
                continue
            for values, label, style in curves:
                ax.plot(t, values[:, j], label=label, **style)
            ax.set_title(f"{spec.joint_names[j]} ({spec.lerobot_unit_labels[j]})", fontsize=8)
            ax.tick_params(labelsize=7)
        axes.flat[0].legend(fontsize=6, loc="best")
        for ax in axes[-1]:
            ax.set_xlabel("s", fontsize=7)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return out


#: The dashed grey line of the action sent, under the states it drove.
ACTION_STYLE = {"c": "0.6", "lw": 0.8, "ls": "--"}


def plot_tracking(spec: Any, recorded: np.ndarray, replayed: np.ndarray, action: np.ndarray, fps: int,
                  out: Path, title: str) -> Path | None:
    """One panel per joint: recorded state, replayed state and the commanded action; None without matplotlib."""
    return plot_joints(spec, fps, [(action, "action sent", ACTION_STYLE),
                                   (recorded, "recorded", {"c": "tab:blue", "lw": 1.2}),
                                   (replayed, "replayed", {"c": "tab:orange", "lw": 1.2})], out, title)  # fmt: skip


def replay_episode(env: Any, state: np.ndarray, action: np.ndarray, seed: int,
                   frame: Callable[[dict[str, Any], int], np.ndarray] | None) -> tuple[np.ndarray, list]:
    """The arm's state before each recorded action (from the episode's first pose on), and `frame(obs, t)` of
    each step for a video."""
    frames: list[np.ndarray] = []
    replayed = np.empty_like(state)
    obs, _ = env.reset(seed=seed, options={"joints": state[0]})
    for t in range(len(action)):
        replayed[t] = obs["agent_pos"]
        if frame is not None:
            frames.append(frame(obs, t))
        obs, *_ = env.step(action[t].astype(np.float32))
    return replayed, frames


def parse_camera_map(parser: argparse.ArgumentParser, items: list[str] | None) -> dict[str, str]:
    """`--camera-map laptop=front phone=wrist ...` (one or more pairs per flag, the flag repeatable) as
    {dataset camera: sim camera}."""
    mapping = {}
    for item in items or []:
        a, _, b = item.partition("=")
        if not (a and b):
            parser.error(f"--camera-map {item!r}: give DATASET_CAMERA=SIM_CAMERA, e.g. laptop=front")
        mapping[a] = b
    return mapping


def replay_rate(dataset: str, fps: float, dynamics: dict[str, Any] | None, rate: float | None) -> tuple[float, str]:
    """The rate to hold each recorded action at in sim, and where it comes from: `--rate`, else the rate a
    `fit-dynamics --fit-rate` file found for this same dataset, else the dataset's fps."""
    if rate is not None:
        return rate, "--rate"
    fit = (dynamics or {}).get("fit", {})
    fitted = fit.get("control_hz_fitted")
    if fitted is None:
        return float(fps), "the dataset's fps"
    if not _same_dataset(str(fit.get("dataset", "")), dataset):
        print(f"note: the --dynamics file's fitted loop rate ({fitted:.2f} Hz) belongs to {fit.get('dataset')}, "
              f"not {dataset}: replaying at the dataset's {fps:g} fps (--rate to choose)")
        return float(fps), "the dataset's fps"
    return float(fitted), "the rate fit-dynamics found for this recording"


def _same_dataset(a: str, b: str) -> bool:
    """Whether two --dataset values name the same dataset (local folders by their resolved path)."""
    if Path(a).is_dir() and Path(b).is_dir():
        return Path(a).resolve() == Path(b).resolve()
    return a == b


def hold_actions_for(env: Any, control_hz: float, rate: float) -> None:
    """Stretch the sim's physics timestep so each control step lasts 1/`rate` s (the substep count stays, so
    the period stays an exact multiple of the timestep), as `fit-dynamics --fit-rate` replays a recording."""
    env.unwrapped.physics.model.opt.timestep *= control_hz / rate


def make_env(args: argparse.Namespace, spec: Any, real: bool, video: bool, longest: int,
             camera_map: dict[str, str]) -> tuple[Any, list[tuple[str, str]]]:
    """The env to replay on, and the (dataset, sim) camera pairs its video shows: the real arm without cameras
    (its joints are what is compared); in sim, the cameras the dataset recorded at its image size, or none."""
    import gymnasium as gym

    if real:
        kwargs = parse_follower(args._parser, args, spec).env_kwargs("replay")
        return gym.make(args.env, **{**kwargs, "cameras": {}, "start_timeout_s": args.start_time}), []
    cams, size = shared_cameras(args.dataset, spec, camera_map) if video else ([], None)
    # however long the recordings, not the task's limit
    kwargs = {"max_episode_steps": longest + 1, "dynamics": load_dynamics(args.dynamics, spec.name),
              "camera_poses": load_camera_poses_arg(args.camera_poses, spec.name)}
    if cams:
        sim_cams = list(dict.fromkeys(b for _, b in cams))
        return gym.make(args.env, obs_type="pixels_agent_pos", cameras=sim_cams, image_size=size, **kwargs), cams
    return gym.make(args.env, obs_type="state", render_mode="rgb_array" if video else None, **kwargs), []


def video_frame(env: Any, dataset: str, episode: int,
                cams: list[tuple[str, str]]) -> Callable[[dict[str, Any], int], np.ndarray]:
    """A frame per step: each recorded camera beside the sim's view of it, or (no shared camera) the sim's render."""
    if not cams:
        return lambda obs, t: env.render()
    seen = recorded_frames(dataset, episode, [a for a, _ in cams])
    return lambda obs, t: side_by_side(cams, {c: frames[t] for c, frames in seen.items()}, obs["pixels"])


#: The files a replay writes into its folder (replay.json, and replay[_ep<N>].png/.mp4).
REPLAY_FILE = re.compile(r"replay(_ep\d+)?\.(json|png|mp4)")


def remove_old_replay(out: Path) -> list[Path]:
    """Delete the files an earlier replay wrote into `out` (this run writes its own): a real replay's table beside
    a sim replay's video read as one run's. Other files in the folder are left alone."""
    old = sorted(p for p in out.iterdir() if p.is_file() and REPLAY_FILE.fullmatch(p.name))
    for path in old:
        path.unlink()
    return old


def run_replay(args: argparse.Namespace) -> int:
    import twinarm  # noqa: F401  (registers the env ids)
    from twinarm.arms import get_arm
    from twinarm.cli.dataset_cmd import episode_list

    parser = args._parser
    entry = env_entry(parser, args.env)
    try:
        episodes = list(dict.fromkeys(episode_list(args.episode)))
    except ValueError as exc:
        parser.error(str(exc))
    spec = get_arm(entry.arm)
    real = args.env == entry.real_id
    if real and not (args.port and args.calibration):
        parser.error(f"{args.env} is the real arm: name its --port and --calibration")
    if real and (args.camera or args.lens):
        parser.error(f"{'--camera' if args.camera else '--lens'}: replay compares the joints and opens no camera")
    if real and args.dynamics:
        parser.error(f"--dynamics sets the sim arm's parameters; {args.env} is the real arm")
    if real and args.camera_poses:
        parser.error(f"--camera-poses places the sim's cameras; {args.env} is the real arm")
    if real and args.rate is not None:
        parser.error(f"--rate: {args.env} is the real arm, which runs at its own loop's rate")
    if args.rate is not None and not args.rate > 0:
        parser.error(f"--rate {args.rate:g}: give the loop's rate in Hz, above 0")
    if not real and (args.port or args.calibration or args.camera or args.lens):
        parser.error(f"--port/--calibration/--camera/--lens: only for a real arm ({entry.real_id}), not the sim id {args.env}")
    data = {e: load_episode(args.dataset, e, spec, other_arm=not real) for e in episodes}
    fps = data[episodes[0]][2]
    if fps != spec.control_hz:
        parser.error(f"{args.dataset} is recorded at {fps} fps; {args.env} runs at {spec.control_hz} Hz, so its "
                     "actions would play at the wrong speed")
    which = "_".join(args.episode).replace(",", "_")
    out = args.out or Path("outputs") / "replay" / f"{Path(str(args.dataset)).name}_ep{which}{'_real' if real else ''}"
    out.mkdir(parents=True, exist_ok=True)
    if removed := remove_old_replay(out):
        print(f"{out}: removed {', '.join(p.name for p in removed)} of an earlier replay")
    write_resolved_config(args, out)
    video = args.video and not real
    camera_map = parse_camera_map(parser, args.camera_map)
    env, cams = make_env(args, spec, real, video, max(len(d[1]) for d in data.values()), camera_map)
    rate = None
    if not real:
        rate, source = replay_rate(str(args.dataset), fps, load_dynamics(args.dynamics, spec.name), args.rate)
        if abs(rate - spec.control_hz) > 1e-9:
            hold_actions_for(env, spec.control_hz, rate)
            print(f"replaying at {rate:.2f} Hz ({source}), not the dataset's {fps:g} fps")
    seeds = episode_seeds_for(args, episodes, real)
    single = len(episodes) == 1
    per_episode: dict[str, Any] = {}
    written: list[Path] = []
    states, replays = [], []
    try:
        for e in episodes:
            state, action, _ = data[e]
            if real:
                print(f"episode {e}: driving the arm to its first pose (up to {args.start_time:g} s) ...", flush=True)
            frame = video_frame(env, args.dataset, e, cams) if video else None
            replayed, frames = replay_episode(env, state, action, seeds[e], frame)
            states.append(state)
            replays.append(replayed)
            table = tracking_table(spec, state, replayed)
            per_episode[str(e)] = {"frames": len(action), "seed": None if real else seeds[e], "joints": table}
            name = "replay" if single else f"replay_ep{e}"
            title = f"{args.dataset} episode {e} replayed on {args.env}"
            if (png := plot_tracking(spec, state, replayed, action, fps, out / f"{name}.png", title)) is not None:
                written.append(png)
            if frames:
                from twinarm.agents.eval import write_mp4

                write_mp4(frames, out / f"{name}.mp4", fps)
                written.append(out / f"{name}.mp4")
            if not single:
                worst = max(table, key=lambda j: table[j]["rms"])
                print(f"episode {e}: {len(action)} steps, largest RMS {table[worst]['rms']:.3g} {table[worst]['unit']} "
                      f"({worst})", flush=True)
    finally:
        env.close()
    pooled = tracking_table(spec, np.concatenate(states), np.concatenate(replays))
    result = {"dataset": str(args.dataset), "env": args.env, "dynamics": args.dynamics, "fps": fps, "rate_hz": rate,
              "frames": sum(len(s) for s in states),
              "episodes": per_episode, "joints": pooled}
    (out / "replay.json").write_text(json.dumps(result, indent=2) + "\n")
    what = f"episode {episodes[0]}" if single else f"{len(episodes)} episodes ({result['frames']} steps, pooled)"
    print(f"{args.dataset} {what} replayed on {args.env}: the arm's state against the recorded one")
    print(format_tracking(pooled))
    print("wrote " + ", ".join(str(p) for p in [out / "replay.json", *written]))
    if not real and args.dynamics is None and sim_recording(args.dataset) is None:  # a real arm's recording
        print(f"to fit the sim arm's servos and latency to this recording: twinarm fit-dynamics --dataset "
              f"{args.dataset} --env {args.env}")
    return 0
