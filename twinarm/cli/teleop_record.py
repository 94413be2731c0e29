"""`twinarm teleop --record`: teleoperated demonstrations on a real (or simulated) arm into a LeRobot v3 dataset.

The follower env's observations and the joint targets actually sent (the leader's pose after the env's
safety clamps) go through the same recorder and writer as sim rollouts, in LeRobot units, so real and sim
datasets of one arm have the same features. Between episodes teleoperation goes on unrecorded for
`--reset-time` seconds, so the scene can be reset; each finished episode is committed at once. From a terminal,
LeRobot's recording keys work: right arrow ends the episode (or the reset period) now, left arrow discards the
episode being recorded and records it again after a reset period, Esc stops after the current episode.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from twinarm.cli.config import hub_repo_id, resolved_config

if TYPE_CHECKING:
    from twinarm.cli.teleop_sim import SimFollower
    from twinarm.datasets_io.recorder import RecordSummary
    from twinarm.real.env import RealArmEnv
    from twinarm.real.teleop import LoopStats, Teleoperator
    from twinarm.real.terminal_keys import KeyHub
    from twinarm.spec import ArmSpec, CameraSpec

#: A recording loop below this fraction of the dataset's fps gets a note at the end (jitter stays above it).
SLOW_LOOP = 0.97
#: How `teleop --record --resume` matches a dataset it appends to (see `record_cmd.open_writer`).
TELEOP_HINTS = {
    "images": "teleop --record writes videos: append to a video copy (`twinarm dataset convert-to-video ROOT OUT`) "
    "or name a new --record folder",
    "size": "pass --image-size {h} {w}",
}
#: ... and with a simulated follower (`--env`), which records state observations with --obs-type state.
SIM_TELEOP_HINTS = {**TELEOP_HINTS, "state": "add --obs-type state", "pixels": "drop --obs-type state"}
KEYS_HELP = "keys: -> end the episode (or the reset period) now, <- discard the episode and record it again, Esc stop"


def add_record_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recording demonstrations (a LeRobot v3 dataset)",
                             "From a terminal: right arrow ends the episode (or the reset period) now, left arrow "
                             "discards the episode being recorded and records it again, Esc stops after the "
                             "current episode (kept). Every finished episode is saved at once.")
    g.add_argument("--record", type=Path, default=None, metavar="ROOT",
                   help="record episodes into this dataset folder (created, or appended with --resume)")
    g.add_argument("--task", default=None, help="what the demonstrations do, stored with every episode "
                   "(e.g. 'Pick up the cube.'); required with --record on a real arm (default with --env: the "
                   "sim task's instruction)")
    g.add_argument("--episodes", type=int, default=10, help="episodes to record")
    g.add_argument("--episode-time", type=float, default=20.0, help="seconds per episode")
    g.add_argument("--reset-time", type=float, default=5.0,
                   help="seconds of unrecorded teleoperation between episodes, to reset the scene")
    g.add_argument("--resume", action="store_true", help="append to the dataset at --record")
    g.add_argument("--repo-id", type=hub_repo_id, default=None, help="Hub repo id of the dataset, kept beside it for `twinarm dataset push`")
    g.add_argument("--end-on-success", type=float, nargs="?", const=1.0, default=None, metavar="SECONDS",
                   help="with --env: end each episode this long (default 1 s) after the task is done, instead of "
                   "at --episode-time")
    g.add_argument("--only-success", action="store_true",
                   help="with --env: keep only episodes that end with the task done; a failed one is dropped and "
                   "recorded again on a new scene")


class TeleopPolicy:
    """The recorder's policy: the leader's pose, clamped by the follower env as its step will clamp it, so the
    dataset's action is the target the follower was sent. With `episode_s`, a status line (time left, loop
    rate) is redrawn about once a second."""

    def __init__(self, leader: Teleoperator, env: RealArmEnv | SimFollower, stats: LoopStats, episode_s: float | None = None,
                 label: Callable[[], str] = lambda: "recording") -> None:
        self.leader, self.env, self.stats = leader, env, stats
        self.episode_s, self.label = episode_s, label
        self._t0 = self._shown = 0.0

    def reset(self) -> None:
        self._t0 = self._shown = time.monotonic()
        self.stats.pause()  # the gap since the last episode's final step is no loop period

    def __call__(self, obs: Any) -> np.ndarray:
        self.stats.tick()
        if self.episode_s is not None and (now := time.monotonic()) - self._shown >= 1.0:
            self._shown = now
            left = max(0.0, self.episode_s - (now - self._t0))
            print(f"\r{self.label()}: {left:4.0f} s left | {self.stats.line()}", end="", flush=True)
        return self.env.safe_target(np.asarray(self.leader.get_action(), dtype=np.float64)).astype(np.float32)


class TeleopRecording:
    """One `teleop --record` run: the dataset is opened (or checked for appending) before any motor moves.
    `cameras` are the follower's (and `env_state_dim` the size of a sim's object poses, when recorded), `source`
    names it in errors; `sim` counts the task's successes."""

    def __init__(self, args: argparse.Namespace, spec: ArmSpec, cameras: tuple[CameraSpec, ...], source: str,
                 sim: bool = False, env_state_dim: int | None = None) -> None:  # fmt: skip
        from twinarm.cli.record_cmd import open_writer
        from twinarm.datasets_io.layout import INFO_PATH

        parser = args._parser
        if not args.task:
            parser.error("--record needs --task 'what the demonstrations do' (stored with each episode, as "
                         "LeRobot datasets require)")
        if args.episodes < 1 or args.episode_time <= 0 or args.reset_time < 0:
            parser.error("--episodes must be >= 1, --episode-time > 0 and --reset-time >= 0")
        self.args, self.spec, self.sim = args, spec, sim
        features = spec.lerobot_features(cameras=cameras, use_videos=True, env_state_dim=env_state_dim)
        # a dataset this run creates is removed again if the run saves no episode (`close`), so that the same
        # command can be run again once a bad camera or port is fixed
        self.fresh, self.created = not args.record.exists(), not (args.record / INFO_PATH).exists()
        self.writer = open_writer(args.record, features, spec.control_hz, robot_type=spec.robot_type,
                                  resume=args.resume, source=source, flag="--record",
                                  hints=SIM_TELEOP_HINTS if sim else TELEOP_HINTS, env=args.env if sim else None,
                                  arm=spec.name)
        self.before = self.writer.num_episodes
        self.summary: RecordSummary | None = None
        # Each episode resets the scene from its own seed; in sim, past those of earlier runs on this dataset
        # (`twinarm record --resume` keeps count in the same file), so no scene is repeated.
        self.first_seed = self.before
        if sim and args.resume:
            from twinarm.cli.record_cmd import next_seed

            self.first_seed = max(self.before, next_seed(args.record, 0))

    def run(self, leader: Teleoperator, env: RealArmEnv | SimFollower, stats: LoopStats, keys: KeyHub | None = None) -> None:
        from twinarm.datasets_io.recorder import END, RERECORD, STOP, RecordingControl, gym_frame, record
        from twinarm.real.teleop import teleoperate

        a = self.args
        steps = max(1, round(a.episode_time * self.spec.control_hz))
        control = RecordingControl()
        record_keys = {"right": END, "left": RERECORD, "esc": STOP}  # LeRobot's recording keys
        phase = {"episode": 1, "reset": False}  # what the keys act on now (for the lines they print)
        if keys is not None:
            print(KEYS_HELP, flush=True)

            def on_key(key: str) -> None:
                if key not in record_keys or control.stopped:
                    return
                k = phase["episode"]
                if key == "right":
                    line = "-> reset period over" if phase["reset"] else f"-> episode {k} ends now (kept)"
                elif key == "left":
                    line = (f"<- discarding episode {k}; it is recorded again after a reset period"
                            if not phase["reset"] else "")
                else:
                    line = "Esc: stopping" + ("" if phase["reset"] else f" (episode {k} is kept)")
                if line:
                    print(f"\n{line}", flush=True)
                control.request(record_keys[key])

            keys.subscribe(on_key)

        def reset_over() -> bool:
            what = control.take()
            if what == RERECORD:
                print("(<- discards an episode while it records; this one is saved already: drop it later with "
                      "`twinarm dataset delete-episodes`)", flush=True)
            return what in (END, STOP)

        last = {"saved": 0}  # episodes this run has saved (what between_episodes counts)

        def reset_period(saved: int, rerecord: bool) -> None:
            k = saved + 1
            if rerecord:
                done = f"episode {k} discarded"
            elif saved == last["saved"]:  # --only-success dropped it
                done = f"episode {k} did not end with the task done: dropped, recorded again on a new scene"
            else:
                done = f"episode {saved} saved"
            last["saved"] = saved
            if a.reset_time > 0:
                print(f"\n{done}; reset the scene: {a.reset_time:g} s of teleoperation, not recorded", flush=True)
                phase.update(episode=k, reset=True)
                teleoperate(leader, env, duration_s=a.reset_time, until=reset_over)
                phase["reset"] = False
            else:  # --reset-time 0: straight on to the next episode, no reset period to announce
                print(f"\n{done}", flush=True)
                phase["episode"] = k
            if not control.stopped:
                print(f"recording episode {k}/{a.episodes} ({a.episode_time:g} s)", flush=True)

        def save_failed(exc: Exception) -> bool:
            """A save that failed before anything was swapped in (disk full, say) kept its episode: from a terminal
            the operator fixes the cause and has it saved again, rather than losing a demonstration."""
            print(f"\nsaving episode {phase['episode']} into {a.record} failed: {type(exc).__name__}: {exc}",
                  flush=True)
            if keys is None or not sys.stdin.isatty():  # no operator at a terminal to answer
                return False
            with keys.suspended():
                answer = input("the episode is kept: free space (or fix the cause), then press Enter to save it "
                               "again, or type q and Enter to stop without it ")
            return answer.strip().lower() not in ("q", "quit")

        print(f"recording episode 1/{a.episodes} ({a.episode_time:g} s) into {a.record}", flush=True)
        def label() -> str:  # the sim follower also says whether the task is done
            return f"episode {phase['episode']}/{a.episodes}" + (f", {env.status()}" if self.sim else "")

        self.summary = record(
            lambda: env, lambda e: TeleopPolicy(leader, env, stats, a.episode_time, label), self.writer,
            episodes=a.episodes, task=a.task, to_frame=functools.partial(gym_frame, convert=self.spec.to_lerobot),
            seed=self.first_seed, max_steps=steps, between_episodes=reset_period, background_encoding=True,
            control=control, progress=False,  # the status line above says where the run is
            on_commit_error=save_failed,
            only_success=self.sim and a.only_success,
            max_attempts=10**9 if a.only_success else None,  # the operator stops with Esc or Ctrl-C
        )  # fmt: skip
        if self.summary.discarded:
            print(f"{self.summary.discarded} episode(s) discarded and recorded again", flush=True)

    @property
    def saved(self) -> int:
        """Episodes committed by this run (also when it ended early)."""
        return self.writer.num_episodes - self.before

    def close(self) -> None:
        """Finish the dataset's metadata (finished episodes are already committed) and save the run's options;
        a dataset this run created and saved no episode into (a device failed to open, Ctrl-C) is removed."""
        from twinarm.cli.record_cmd import remove_new_dataset
        from twinarm.datasets_io.layout import RECORD_PATH

        self.writer.finalize()
        root: Path = self.args.record
        if self.created and self.saved == 0:
            remove_new_dataset(root, self.fresh)
            print(f"{root}: no episode was saved; the dataset folder this run started is removed again")
            return
        config = resolved_config(self.args)
        if self.sim:  # where the next run on this dataset, teleoperated or scripted, takes its seeds from, and
            # each episode's seed (`replay` reads them), kept with the earlier runs' as `twinarm record` keeps them
            from twinarm.cli.record_cmd import RecordingLog
            from twinarm.datasets_io.layout import recording_options

            prior = recording_options(root) if self.args.resume else {}
            log = RecordingLog(config, prior, seed=self.first_seed, first_episode_index=self.before,
                               list_seeds=True)  # an operator's discards and --only-success skip seeds
            for seed in self.summary.seeds if self.summary is not None else ():
                log.committed(seed)
            log.next_seed = self.summary.next_seed if self.summary is not None else self.first_seed
            config = log.state()
        (root / RECORD_PATH).write_text(json.dumps(config, indent=2, default=str) + "\n")
        done = ""
        if self.sim and self.summary is not None and self.summary.attempted:
            done = f" ({self.summary.successes} of the {self.summary.attempted} ended with the task done)"
        print(f"{root}: saved {self.saved} episode(s) this run{done}; the dataset has {self.before + self.saved} "
              f"episodes. Task: {self.args.task!r}")

    def exit_code(self) -> int:
        """0 when every episode asked for was saved, or the operator stopped early with Esc."""
        stopped = self.summary is not None and self.summary.stopped
        return 0 if self.saved == self.args.episodes or stopped else 1


def slow_loop_note(stats: LoopStats, fps: float, root: Path) -> str | None:
    """A note when the recording loop ran clearly slower than the fps its dataset states (overruns): the
    timestamps, replays and fits assume that fps. Judged on the loop's median period, so a few start-up
    overruns do not make a loop that kept its rate look slow (`fit-dynamics --fit-rate` then finds the fps)."""
    rate_hz = stats.median_rate_hz
    if not rate_hz or rate_hz >= SLOW_LOOP * fps:
        return None
    return (f"note: the recording loop ran at {rate_hz:.1f} Hz (median step) against the dataset's {fps:g} fps "
            f"(overruns: a slow camera or a busy CPU); replays and fits assume {fps:g}: `twinarm fit-dynamics "
            f"--dataset {root} ... --fit-rate` fits the rate it really ran at")
