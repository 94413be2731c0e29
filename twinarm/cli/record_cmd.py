"""`twinarm record`: roll a policy out in a sim env (several workers in parallel) into a LeRobot v3 dataset."""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from twinarm.cli.config import (
    add_camera_poses_arg,
    add_config_arg,
    add_dynamics_arg,
    add_randomization_arg,
    at_least,
    hub_repo_id,
    known_env_id,
    load_camera_poses_arg,
    load_dynamics,
    load_randomization,
    resolved_config,
)
from twinarm.datasets_io.layout import RECORD_PATH, recording_options

#: Camera images of sim recordings unless told otherwise (`record --height/--width`, `teleop --env`).
IMAGE_SIZE = (240, 320)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="record policy rollouts from a sim env into a LeRobot v3 dataset",
        description="Roll out a policy (default: the scripted expert) in a twinarm sim env and write every "
        "episode (cameras as H.264 video, state and action in LeRobot units, the task's instruction) to a "
        "LeRobot v3.0 dataset. Each episode is committed crash-safely as soon as it ends.",
    )
    p.add_argument("--env", type=known_env_id, default="twinarm/SO101-PickCube-v0", help="sim env id (see `twinarm envs`)")
    p.add_argument("--policy", default="scripted", choices=sorted(POLICIES), help="who acts")
    p.add_argument("--episodes", type=at_least(1), default=50, help="episodes to save")
    p.add_argument("--root", type=Path, required=True, help="dataset directory (created, or appended with --resume)")
    p.add_argument("--repo-id", type=hub_repo_id, default=None, help="Hub repo id of the dataset, kept beside it for `twinarm dataset push`")
    p.add_argument("--num-workers", type=at_least(1), default=1,
                   help="env worker processes (each encodes its own videos); the episodes are saved in seed order")
    p.add_argument("--only-success", action="store_true", help="keep only episodes that end in success")
    p.add_argument("--resume", action="store_true",
                   help="append to an existing dataset at --root; a missing or empty --root starts a new dataset, so "
                   "a requeued job can always pass --resume")
    p.add_argument("--seed", type=at_least(0), default=None, help="seed of the first rollout (default 0, or where the "
                   "last run on this dataset stopped)")
    p.add_argument("--obs-type", default="pixels_agent_pos", choices=["pixels_agent_pos", "state"],
                   help="what is recorded besides the action: the cameras and joint positions (as on the real arm), "
                   "or the joint positions and the sim's object poses (observation.environment_state; no "
                   "cameras), which state policies train on in minutes")
    p.add_argument("--height", type=at_least(1), default=IMAGE_SIZE[0], help="camera image height")
    p.add_argument("--width", type=at_least(1), default=IMAGE_SIZE[1], help="camera image width")
    p.add_argument("--codec", default=None, choices=["h264", "av1", "hevc"],
                   help="video codec of a new dataset (default h264; --resume keeps the dataset's)")
    p.add_argument("--crf", type=int, default=None, help="video quality (lower is better; default: the codec's; "
                   "--resume keeps the dataset's)")
    p.add_argument("--images", action="store_true", help="store PNG images in the parquet files instead of video")
    p.add_argument("--max-attempts", type=at_least(1), default=None, help="give up after this many rollouts (default: 4x --episodes with --only-success, else --episodes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_randomization_arg(p, "every recorded episode (drawn per episode from its seed)")
    add_dynamics_arg(p, "every recorded episode")
    add_camera_poses_arg(p, "every recorded episode")
    add_config_arg(p)
    # `record --config` of the file a recording leaves skips its bookkeeping (config_file.SAVED_STATE names this)
    p.set_defaults(func=run, _parser=p, _saved_state=RECORD_STATE)


def make_env(env_id: str, image_size: tuple[int, int], randomization: dict[str, Any] | None = None,
             dynamics: dict[str, Any] | None = None, obs_type: str = "pixels_agent_pos",
             camera_poses: dict[str, Any] | None = None) -> gym.Env:  # fmt: skip
    """The env a recorder worker builds (module-level so worker processes can unpickle it)."""
    import twinarm  # noqa: F401  (registers the ids in the worker)
    from twinarm.registration import import_env_module

    return gym.make(import_env_module(env_id), obs_type=obs_type, image_size=image_size, randomization=randomization,
                    dynamics=dynamics, camera_poses=camera_poses)  # fmt: skip


def env_state_dim(env_id: str) -> int:
    """The size of a sim env's `environment_state` (its task's object poses)."""
    probe = make_env(env_id, (8, 8), obs_type="state")
    try:
        return int(probe.observation_space["environment_state"].shape[0])
    finally:
        probe.close()


def scripted_policy(env: gym.Env) -> Any:
    """The task's scripted expert (absolute joint targets in SI units)."""
    from twinarm.envs.experts import make_expert

    return make_expert(env)


class RandomPolicy:
    """Uniform random joint targets from the action space (a baseline / smoke test)."""

    def __init__(self, env: gym.Env) -> None:
        self.space = env.action_space

    def __call__(self, obs: Any) -> np.ndarray:
        return self.space.sample()


POLICIES = {"scripted": scripted_policy, "random": RandomPolicy}


#: How `twinarm record` changes what it records to match a dataset it appends to (see `open_writer`).
RECORD_HINTS = {
    "images": "add --images",
    "videos": "drop --images",
    "size": "pass --height {h} --width {w}",
    "state": "add --obs-type state",
    "pixels": "drop --obs-type state",
}


def _differences(have: dict[str, Any], want: dict[str, Any], hints: dict[str, str]) -> list[str]:
    """What keeps frames of features `want` from being appended to a dataset of features `have`, each with the
    flag that fixes it where `hints` (as RECORD_HINTS) has one; the rest as `mismatched: <features>`."""
    from twinarm.datasets_io.layout import DEFAULT_FEATURES
    from twinarm.spec import LEROBOT_ENV_STATE

    out: list[str] = []
    have = {k: ft for k, ft in have.items() if k not in DEFAULT_FEATURES}
    if (LEROBOT_ENV_STATE in have) != (LEROBOT_ENV_STATE in want) and hints.get("state"):
        out.append(f"it holds state observations ({LEROBOT_ENV_STATE}, no cameras): {hints['state']}"
                   if LEROBOT_ENV_STATE in have else f"it holds camera observations: {hints['pixels']}")
        have = {k: ft for k, ft in have.items() if k in want}  # the rest follows from the observation type
        want = {k: ft for k, ft in want.items() if k in have}
    other = [k for k in want if k not in have] + [k for k in have if k not in want]
    cams = [k for k in want if k in have and {want[k]["dtype"], have[k]["dtype"]} <= {"video", "image"}]
    stored = {k: have[k]["dtype"] for k in cams if have[k]["dtype"] != want[k]["dtype"]}
    hint = hints.get("images" if "image" in stored.values() else "videos")
    if stored and len(set(stored.values())) == 1 and hint:
        out.append(("it stores PNG images: " if "image" in stored.values() else "it stores videos: ") + hint)
    else:
        other += list(stored)
    sizes = {k: tuple(have[k]["shape"]) for k in cams if list(have[k]["shape"]) != list(want[k]["shape"])}
    if sizes and len(set(sizes.values())) == 1 and hints.get("size"):
        h, w, _ = next(iter(sizes.values()))
        out.append(f"its images are {h}x{w}: " + hints["size"].format(h=h, w=w))
    else:
        other += list(sizes)
    other += [k for k in want if k in have and k not in cams and (
        list(have[k]["shape"]) != list(want[k]["shape"]) or have[k]["dtype"] != want[k]["dtype"]
        or have[k].get("names") != want[k].get("names"))]  # fmt: skip
    if other:
        out.append(f"mismatched: {', '.join(dict.fromkeys(other))}")
    return out


def open_writer(root: Path, features: dict[str, Any], fps: int, *, robot_type: str, resume: bool,
                codec: str | None = None, crf: int | None = None, source: str = "", flag: str = "--root",
                hints: dict[str, str] | None = None, env: str | None = None, arm: str | None = None) -> Any:
    """A DatasetWriter on a new dataset at `root`, or with `resume` on the existing one after checking that its
    robot (and twinarm `arm`), features (shape, dtype, names), fps, sim `env` (when recording one) and any
    codec/crf asked for are those of `source` (what is being recorded); exits naming the folder, what differs
    and the flag that fixes it (`hints`, as RECORD_HINTS; `flag` is the option that named `root`) otherwise. The
    dataset is locked only once it is found compatible."""
    from twinarm.arms import same_robot
    from twinarm.dataset_arm import twinarm_arm
    from twinarm.datasets_io.layout import INFO_PATH, DatasetError, load_json
    from twinarm.datasets_io.writer import DatasetWriter, check_version, resume_codec

    hints = RECORD_HINTS if hints is None else hints
    if resume and (root / INFO_PATH).exists():
        try:
            info = load_json(root / INFO_PATH)
            check_version(info, root / INFO_PATH)
        except DatasetError as exc:
            raise SystemExit(str(exc)) from None
        mismatch = _differences(info.get("features", {}), features, hints)
        if info.get("fps") != fps:
            mismatch.append(f"fps {info.get('fps')} != {fps}")
        if not same_robot(info.get("robot_type"), robot_type):
            mismatch.append(f"robot_type {info.get('robot_type')!r} != {robot_type!r}")
        if arm is not None and (own := twinarm_arm(root)) is not None and own.name != arm:
            mismatch.append(f"arm {own.name} != {arm}")  # LeRobot's so_follower is both SO arms
        if mismatch:
            raise SystemExit(f"{root}: cannot append, it differs from {source}: {'; '.join(mismatch)}")
        check_same_env(root, env, flag)
        have_codec, have_opts = resume_codec(info)
        if codec is not None and codec != have_codec:
            raise SystemExit(f"{root}: its videos are {have_codec}; appending keeps that codec (drop --codec)")
        if crf is not None and have_opts.get("crf") not in (None, str(crf), crf):
            raise SystemExit(f"{root}: its videos use crf {have_opts['crf']}; appending keeps it (drop --crf)")
        try:
            return DatasetWriter.resume(root)
        except DatasetError as exc:
            raise SystemExit(str(exc)) from None
    if (root / INFO_PATH).exists():
        raise SystemExit(f"{root}: a dataset is already there; pass --resume to append to it, or name a new folder")
    if resume and root.is_dir() and any(root.iterdir()):
        raise SystemExit(f"{flag} {root} is not a dataset (no {INFO_PATH}): --resume appends episodes to a dataset "
                         f"recorded before; to start a new one, drop --resume and name a new or empty folder")
    try:
        return DatasetWriter.create(root, fps, features, robot_type=robot_type, video_codec=codec or "h264", crf=crf)
    except DatasetError as exc:  # the folder's fault, or the asked --crf's (its message starts "crf N: ...")
        raise SystemExit(f"--{exc}" if str(exc).startswith("crf ") else f"{flag} {exc}") from None


def check_same_env(root: Path, env_id: str | None, flag: str = "--root") -> None:
    """Exit unless the recordings already in the dataset at `root` (meta/twinarm_record.json) are of `env_id`
    (None: the real arm): appending another task's episodes would mix tasks and lose the first env's seed count,
    and real and simulated demonstrations belong in datasets of their own (train takes both: --dataset A
    --dataset B)."""
    options = recording_options(root)
    prior, prior_real = options.get("env"), options.get("env") is None and options.get("port") is not None
    both = f"record into a new {flag} and train on both (--dataset {root} --dataset NEW)"
    if env_id is None and prior:
        raise SystemExit(f"{root} holds demonstrations recorded in sim ({prior}, {RECORD_PATH}); for the real arm's, "
                         + both)  # fmt: skip
    if env_id is not None and prior_real:
        raise SystemExit(f"{root} holds demonstrations recorded on the real arm ({RECORD_PATH}); for {env_id}'s, "
                         + both)  # fmt: skip
    if prior and env_id is not None and prior != env_id:
        raise SystemExit(f"{root} was recorded in {prior} ({RECORD_PATH}); record it with --env {prior} or name "
                         f"a new {flag}")


def run(args: argparse.Namespace) -> int:
    from twinarm.arms import get_arm
    from twinarm.datasets_io.layout import INFO_PATH, write_json_atomic
    from twinarm.datasets_io.recorder import gym_frame, record
    from twinarm.registration import entry_for

    if args.resume:
        _resume_options(args)
    entry = entry_for(args.env)
    if args.env != entry.sim_id:
        raise SystemExit(f"{args.env} is a real-hardware id; `twinarm record` drives sim envs. On the real arm, "
                         "record teleoperated demonstrations with `twinarm teleop ... --record ROOT --task TEXT`")
    randomization = load_randomization(args.randomization)  # bad input fails before anything is written
    spec = get_arm(entry.arm)
    dynamics = load_dynamics(args.dynamics, spec.name)
    camera_poses = load_camera_poses_arg(args.camera_poses, spec.name)
    image_size = (args.height, args.width)
    if args.obs_type == "state":
        features = spec.lerobot_features(cameras=(), env_state_dim=env_state_dim(args.env))
        source = f"{args.env} with state observations"
    else:
        features = spec.lerobot_features(cameras=spec.resolve_cameras(image_size=image_size), use_videos=not args.images)
        source = f"{args.env} at {image_size}"
    root: Path = args.root
    fresh, created = not root.exists(), not (root / INFO_PATH).exists()
    writer = open_writer(root, features, spec.control_hz, robot_type=spec.robot_type, resume=args.resume,
                         codec=args.codec, crf=args.crf, source=source, env=args.env, arm=spec.name)
    prior = recording_options(root) if args.resume else {}
    before = writer.num_episodes
    seed = args.seed if args.seed is not None else int(prior.get("next_seed", 0))
    if args.seed is not None and isinstance(done := prior.get("next_seed"), int) and args.seed < done:
        print(f"twinarm: warning: --seed {args.seed} on a dataset whose runs used seeds up to {done - 1} "
              f"({root / RECORD_PATH}): their scenes are recorded again (leave --seed out to go on from {done})",
              file=sys.stderr)
    cfg = {**resolved_config(args), "seed": seed}  # the seed used, not null
    log = RecordingLog(cfg, prior, seed=seed, first_episode_index=before, list_seeds=args.only_success)

    def save_next_seed(next_seed: int) -> None:
        """Written before each episode is committed, so a killed run resumes past every seed it used."""
        log.next_seed = next_seed
        write_json_atomic(root / RECORD_PATH, log.state())

    def save_commit(seed: int, index: int) -> None:
        """Written after each episode is committed: the run's episode count (and kept seeds)."""
        log.committed(seed)
        write_json_atomic(root / RECORD_PATH, log.state())

    task = entry.task_info.instruction
    try:
        summary = record(
            functools.partial(make_env, args.env, image_size, randomization, dynamics, args.obs_type, camera_poses),
            POLICIES[args.policy],
            writer,
            episodes=args.episodes,
            task=task,
            to_frame=functools.partial(gym_frame, convert=spec.to_lerobot),
            only_success=args.only_success,
            num_workers=args.num_workers,
            seed=seed,
            max_attempts=args.max_attempts,
            progress=not args.no_progress,
            on_seed=save_next_seed,
            on_commit=save_commit,
        )
    except BaseException:
        writer.finalize()
        if created and writer.num_episodes == 0:  # nothing recorded: leave no skeleton that blocks a rerun
            remove_new_dataset(root, fresh)
        elif writer.num_episodes > before:
            print(f"\n{root}: stopped; {writer.num_episodes - before} episode(s) of this run were saved, the dataset "
                  f"has {writer.num_episodes}; `--resume` continues from seed {next_seed(root, seed)}", file=sys.stderr)
        raise
    writer.finalize()
    save_next_seed(summary.next_seed)
    print(
        f"{root}: saved {summary.saved} episode(s) ({summary.frames} frames at {spec.control_hz} fps, recorded "
        f"at {summary.fps:.0f} frames/s) from "
        f"{summary.attempted} rollout(s), {summary.successes} successful; dataset now has "
        f"{before + summary.saved} episodes. Task: {task!r}"
    )
    if summary.saved < args.episodes:
        print(f"only {summary.saved}/{args.episodes} episodes were kept (raise --max-attempts?)")
        return 1
    return 0


#: What `twinarm record` keeps in meta/twinarm_record.json beside the options: where the next run on the dataset
#: takes its seeds from, and what each run recorded (`RecordingLog`). `record --config` of the file skips them.
RECORD_STATE = ("next_seed", "sessions")

#: Options of a run that its entry in `sessions` leaves out: the entry's own seed and count, and what says nothing
#: about the episodes (where the dataset was, whether a progress bar showed).
PER_SESSION = frozenset({"root", "resume", "seed", "episodes", "no_progress"})


class RecordingLog:
    """meta/twinarm_record.json as one run of `twinarm record` leaves it. Its options are those of the run that
    started the dataset, with the seed it used, so that `twinarm record --config FILE --root NEW` records that run
    again; a `--resume` run keeps them. Beside them, `next_seed` (where a `--resume` continues) and `sessions`:
    each run's `seed`, `episodes` (committed), `first_episode_index`, with `--only-success` its kept `seeds`
    (episode `first_episode_index + j` is seed `seeds[j]`, else `seed + j`), and `options` where it was run
    with others than the first (they are what the next `--resume` takes)."""

    def __init__(self, cfg: dict[str, Any], prior: dict[str, Any], *, seed: int, first_episode_index: int,
                 list_seeds: bool) -> None:  # fmt: skip
        """`cfg`: this run's resolved options (made plain JSON here); `prior`: the file as the dataset had it (None
        or {} when new); `list_seeds`: list each committed episode's seed (a run that may skip seeds)."""
        cfg = json.loads(json.dumps(cfg, default=str))
        prior = dict(prior or {})
        self.next_seed = seed
        sessions = prior.pop("sessions", None)
        self.sessions = [dict(x) for x in sessions if isinstance(x, dict)] if isinstance(sessions, list) else []
        if self.sessions:
            _settle(self.sessions[-1], first_episode_index, prior.get("next_seed"))
        prior.pop("next_seed", None)
        self.options = prior or {k: v for k, v in cfg.items() if k not in RECORD_STATE}
        self.session: dict[str, Any] = {"seed": seed, "episodes": 0, "first_episode_index": first_episode_index}
        if list_seeds:
            self.session["seeds"] = []
        changed = {k: v for k, v in cfg.items() if k not in PER_SESSION and k not in RECORD_STATE
                   and self.options.get(k) != v}  # fmt: skip
        if changed:
            self.session["options"] = changed
        self.sessions.append(self.session)

    def committed(self, seed: int) -> None:
        self.session["episodes"] += 1
        if "seeds" in self.session:
            self.session["seeds"].append(seed)

    def state(self) -> dict[str, Any]:
        return {**self.options, "next_seed": self.next_seed, "sessions": self.sessions}


def _settle(session: dict[str, Any], episodes_now: int, next_seed: Any) -> None:
    """Count in the last run's entry the episode whose commit a kill interrupted after its files were swapped in
    (resuming the dataset finished it): it is the one of seed `next_seed - 1`, written before the commit."""
    try:
        missing = episodes_now - int(session["first_episode_index"]) - int(session["episodes"])
    except (KeyError, TypeError, ValueError):
        return
    if missing == 1 and isinstance(next_seed, int):
        session["episodes"] += 1
        if isinstance(session.get("seeds"), list):
            session["seeds"].append(next_seed - 1)


#: What `record --resume` does not take from the recording: this run's own count, seed and processes (the codec and
#: crf the dataset's videos keep anyway).
NOT_RESUMED = frozenset({"command", "root", "resume", "seed", "episodes", "num_workers", "max_attempts", "no_progress",
                         "codec", "crf"})  # fmt: skip


def _resume_options(args: argparse.Namespace) -> None:
    """`--resume` appends as the dataset was recorded: every option not given (env, policy, obs type, image size,
    images, randomization, dynamics, camera poses, only-success) takes its value from meta/twinarm_record.json,
    saying which, instead of the defaults that made a 96x128 dataset refuse its own --resume."""
    from twinarm.cli.config_file import take_saved_options

    options = recording_options(args.root)
    sessions = options.get("sessions")
    last = sessions[-1] if isinstance(sessions, list) and sessions else None
    if isinstance(last, dict) and isinstance(last.get("options"), dict):  # the last run's, where not the first's
        options = {**options, **last["options"]}
    saved = {k: v for k, v in options.items() if v is not None}  # a real arm's env is None
    taken = take_saved_options(args._parser, args, saved, args.root / RECORD_PATH, NOT_RESUMED)
    if taken:
        print(f"--resume: with the recording's own {', '.join(taken)} ({args.root / RECORD_PATH})")


def next_seed(root: Path, default: int) -> int:
    """Where the next recording on the dataset at `root` takes its scenes' seeds from (`default` if none ran):
    past every seed a run on it decided, and never past one whose episode is missing but the one whose commit a
    kill interrupted (a rollout that had finished early, waiting for it, is recorded again)."""
    return int(recording_options(root).get("next_seed", default))


def remove_new_dataset(root: Path, fresh: bool) -> None:
    """Undo a dataset this run created and never added to (`fresh`: the folder itself is new)."""
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():  # the folder was empty before (DatasetWriter.create insists on that)
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
