"""The recording loop: any Gymnasium env + any policy callable -> episodes committed by one writer.

Episodes run in-process or in N worker processes (each with its own env, policy and video encoders);
workers hand finished, already-encoded episodes to the parent, which alone writes the dataset, in seed order
whichever worker finishes first (episode k is seed + k, as in-process). This module
never imports twinarm's envs: the caller passes factories and a `to_frame` mapping (where unit conversion
happens, e.g. `functools.partial(gym_frame, convert=spec.to_lerobot)`).
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from twinarm.datasets_io.writer import DatasetWriter, EncodedEpisode, EpisodeBuffer
from twinarm.spec import LEROBOT_ENV_STATE, LEROBOT_IMAGES, LEROBOT_STATE

EnvFactory = Callable[[], gym.Env]
#: Builds the policy for an env: an object with `__call__(obs) -> action` and optionally `reset()`.
PolicyFactory = Callable[[gym.Env], Callable[[Any], Any]]
FrameFn = Callable[[Any, Any], dict[str, Any]]

#: What an operator can ask for while episodes are recorded (`RecordingControl`).
END, RERECORD, STOP = "end", "rerecord", "stop"


class RecordingControl:
    """An operator's requests during a recording (keys, a GUI, a test), thread-safe: END the episode now and
    keep it (during a reset period: end that), RERECORD it (discard its frames, reset the scene, record it
    again), STOP after it (it is kept; no more episodes). END and RERECORD are taken once; STOP stays."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: str | None = None
        self.stopped = False

    def request(self, what: str) -> None:
        if what not in (END, RERECORD, STOP):
            raise ValueError(f"unknown recording request {what!r}: expected {END!r}, {RERECORD!r} or {STOP!r}")
        with self._lock:
            if what == STOP:
                self.stopped = True
            else:
                self._pending = what

    def take(self) -> str | None:
        """The request to act on now: STOP once asked for, else the pending END or RERECORD (consumed), or None."""
        with self._lock:
            if self.stopped:
                return STOP
            what, self._pending = self._pending, None
            return what

    def drop_pending(self) -> None:
        """Forget an END or RERECORD not yet acted on (one pressed before the episode it would act on began)."""
        with self._lock:
            self._pending = None


def gym_frame(obs: dict[str, Any], action: Any, convert: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """Map a LeRobot-style Gymnasium observation (`agent_pos`, `pixels/{cam}`, `environment_state`)
    and the action taken to dataset features; `convert` turns joint values into the dataset's units."""
    conv = convert if convert is not None else (lambda x: x)
    frame: dict[str, Any] = {"action": np.asarray(conv(np.asarray(action)), dtype=np.float32)}
    if "agent_pos" in obs:
        frame[LEROBOT_STATE] = np.asarray(conv(np.asarray(obs["agent_pos"])), dtype=np.float32)
    if "environment_state" in obs:
        frame[LEROBOT_ENV_STATE] = np.asarray(obs["environment_state"], dtype=np.float32)
    pixels = obs.get("pixels")
    if isinstance(pixels, dict):
        for cam, img in pixels.items():
            frame[f"{LEROBOT_IMAGES}.{cam}"] = img
    elif pixels is not None:
        frame["observation.image"] = pixels
    return frame


@dataclass
class EpisodeResult:
    """A finished rollout: the encoded episode (or None if it was not kept) and its outcome."""

    seed: int
    success: bool
    length: int
    episode: EncodedEpisode | None
    rerecord: bool = False
    """The operator discarded it (`RecordingControl`): record this episode again."""


@dataclass
class RecordSummary:
    """What a recording run did."""

    saved: int = 0
    attempted: int = 0
    next_seed: int = 0
    """One past the last seed decided (committed, or dropped as a failure with `only_success`), in seed order:
    where a later run continues without repeats. Seeds past it whose rollouts finished early are not counted."""
    successes: int = 0
    discarded: int = 0
    """Rollouts the operator discarded to record them again."""
    stopped: bool = False
    """The operator stopped the recording before all episodes were saved."""
    frames: int = 0
    seconds: float = 0.0
    episode_indices: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    """The seed of each committed episode (beside `episode_indices`), ascending."""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def rollout(env: gym.Env, policy: Callable[[Any], Any], buffer: EpisodeBuffer, seed: int, task: str,
            to_frame: FrameFn, keep_failures: bool = True, max_steps: int | None = None,
            control: RecordingControl | None = None) -> EpisodeResult:
    """Run one episode with `policy` until termination/truncation (or the operator's END or STOP), feeding every
    (obs, action) frame into `buffer`; success is `info["is_success"]` at the last step. On RERECORD the frames
    are dropped and the result says so."""
    try:
        obs, info = env.reset(seed=seed)
        if hasattr(policy, "reset"):
            policy.reset()
        done, steps = False, 0
        while not done:
            action = policy(obs)
            buffer.add_frame(to_frame(obs, action), task=task)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            done = terminated or truncated or (max_steps is not None and steps >= max_steps)
            request = control.take() if control is not None else None
            if request == RERECORD:
                buffer.clear()
                return EpisodeResult(seed, False, steps, None, rerecord=True)
            done = done or request is not None
    except BaseException:  # env, policy or encoder error, Ctrl-C: release the episode's encoders (threads, containers)
        buffer.clear()
        raise
    success = bool(info.get("is_success", False))
    if not success and not keep_failures:
        buffer.clear()
        return EpisodeResult(seed, success, steps, None)
    return EpisodeResult(seed, success, steps, buffer.finish())


def _worker(make_env: EnvFactory, make_policy: PolicyFactory, to_frame: FrameFn, buffer_kwargs: dict[str, Any],
            task: str, keep_failures: bool, max_steps: int | None, jobs: Any, results: Any, parent: int) -> None:
    """Worker process: take seeds from `jobs` until None, send EpisodeResults (or an error) to `results`.
    It exits soon after the recorder dies (SIGKILL, say), whatever it is doing: nobody would stop it."""
    _die_with_parent()
    try:
        env = make_env()
        policy = make_policy(env)
        buffer = EpisodeBuffer(**buffer_kwargs)
        while True:
            if _parent_gone(parent, results):
                return
            try:
                seed = jobs.get(timeout=1.0)
            except queue.Empty:
                continue
            if seed is None:
                break
            if not _put(results, rollout(env, policy, buffer, seed, task, to_frame, keep_failures, max_steps), parent):
                return
        env.close()
    except BaseException:  # report any failure to the parent instead of dying silently
        _put(results, RuntimeError(f"recorder worker {os.getpid()} failed:\n{traceback.format_exc()}"), parent)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent() -> None:
    """Have Linux SIGTERM this process when the process that started it dies, even while it is blocked in an env
    step, a codec or a queue. (Strictly, when the thread that started it ends: `_record_parallel` outlives its
    workers. Elsewhere the worker's own checks of its parent are all there is.)"""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # an ignored SIGTERM is inherited through exec: undo that
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _parent_gone(parent: int, results: Any) -> bool:
    """True once the recorder has died. Then this process's exit must not wait for the queue's feeder thread
    to flush results into a pipe that nobody reads any more: it would wait for ever."""
    if os.getppid() == parent:
        return False
    results.cancel_join_thread()
    return True


def _put(results: Any, item: Any, parent: int) -> bool:
    """Send `item` to the recorder, waiting while the bounded queue is full; False, at once, if it died."""
    while True:
        try:
            results.put(item, timeout=0.5)
            return True
        except queue.Full:
            if _parent_gone(parent, results):
                return False


def record(
    make_env: EnvFactory,
    make_policy: PolicyFactory,
    writer: DatasetWriter,
    *,
    episodes: int,
    task: str,
    to_frame: FrameFn = gym_frame,
    only_success: bool = False,
    num_workers: int = 1,
    seed: int = 0,
    max_attempts: int | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    between_episodes: Callable[[int, bool], None] | None = None,
    background_encoding: bool = False,
    on_seed: Callable[[int], None] | None = None,
    control: RecordingControl | None = None,
    on_commit_error: Callable[[Exception], bool] | None = None,
    on_commit: Callable[[int, int], None] | None = None,
) -> RecordSummary:
    """Record `episodes` episodes into `writer` (each committed as soon as it and every earlier seed are done).

    Episode k uses `env.reset(seed=seed + k)`; with `only_success`, failed rollouts are dropped and
    more seeds are tried, up to `max_attempts` (default 4x `episodes`): the episodes are the first `episodes`
    successes in seed order. Both hold with `num_workers > 1` too: a rollout that finishes before an earlier
    seed's waits (encoded, in memory; at most two per worker) and is committed after it. `make_env`/`make_policy`/
    `to_frame` must be picklable (module-level functions or partials) when `num_workers > 1`.
    `between_episodes(saved, rerecord)` runs in-process between rollouts (a real robot's reset period, say):
    `saved` episodes are committed, and `rerecord` says the last rollout was discarded, to be recorded again.
    `background_encoding` encodes videos in worker threads (in-process only), so that a real-time loop
    stepping a robot does not wait for the codec. `on_seed(next_seed)` runs as each seed is decided, in seed
    order, before its episode is committed, so that a record of it survives a kill: resuming from it repeats no
    seed, and passes no undecided seed but the one whose commit the kill interrupted (a rollout that finished
    early, waiting for an earlier seed, is past it: lost at a kill, recorded again on resuming). `on_commit(seed,
    episode_index)` runs after each episode is committed.
    `control` (in-process only) carries an operator's requests: end an episode early, discard and re-record it
    (same seed; not counted as an attempt), or stop after the current one.
    A commit that fails before anything is swapped in (disk full, an I/O error) keeps its episode in `writer`:
    `on_commit_error(exc)` returning True tries it again (an operator freed space, say); without it, or when it
    returns False, the error is raised and `writer.save_episode()` can still save that episode.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    if between_episodes is not None and num_workers > 1:
        raise ValueError("between_episodes needs num_workers=1 (it runs between rollouts of one env)")
    if control is not None and num_workers > 1:
        raise ValueError("control needs num_workers=1 (an operator drives one env)")
    max_attempts = max_attempts if max_attempts is not None else (4 * episodes if only_success else episodes)
    summary = RecordSummary(next_seed=seed)
    t0 = time.perf_counter()
    bar = tqdm(total=episodes, unit="ep", desc="record", disable=not progress, dynamic_ncols=True)

    def take(res: EpisodeResult) -> None:
        """Decide the next seed in order: commit its episode, or drop it (a failure with `only_success`)."""
        summary.next_seed = res.seed + 1  # seeds are decided in order, also from parallel workers
        if on_seed is not None:
            on_seed(summary.next_seed)
        summary.attempted += 1
        summary.successes += res.success
        if res.episode is not None and summary.saved < episodes:
            index = _commit(writer, res.episode, on_commit_error)
            summary.episode_indices.append(index)
            summary.seeds.append(res.seed)
            summary.saved += 1
            summary.frames += res.length
            bar.update(1)
            if on_commit is not None:
                on_commit(res.seed, index)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(frames_s=f"{summary.frames / max(elapsed, 1e-9):.0f}",
                        success=f"{summary.successes}/{summary.attempted}")

    try:
        if num_workers <= 1:
            env = make_env()
            policy = make_policy(env)
            buffer = EpisodeBuffer(**writer.buffer_kwargs(), background=background_encoding)
            try:
                k = 0
                while summary.saved < episodes and k < max_attempts:
                    if control is not None:
                        if control.stopped:
                            break
                        control.drop_pending()
                    res = rollout(env, policy, buffer, seed + k, task, to_frame, not only_success, max_steps, control)
                    if res.rerecord:
                        summary.discarded += 1
                    else:
                        take(res)
                        k += 1
                    more = summary.saved < episodes and k < max_attempts
                    if between_episodes is not None and more and not (control is not None and control.stopped):
                        between_episodes(summary.saved, res.rerecord)
                summary.stopped = control is not None and control.stopped and summary.saved < episodes
            finally:
                env.close()
        else:
            _record_parallel(make_env, make_policy, to_frame, writer, task, only_success, num_workers, seed,
                             episodes, max_attempts, max_steps, take, summary)
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - t0
    return summary


def _commit(writer: DatasetWriter, episode: EncodedEpisode, on_error: Callable[[Exception], bool] | None) -> int:
    """Commit `episode`; while a failed commit kept it and `on_error(exc)` says so, commit it again."""
    try:
        return writer.save_encoded(episode)
    except Exception as exc:
        error = exc
    while writer.has_unsaved and on_error is not None and on_error(error):
        try:
            return writer.save_episode()
        except Exception as exc:
            error = exc
    raise error


def _record_parallel(make_env: EnvFactory, make_policy: PolicyFactory, to_frame: FrameFn, writer: DatasetWriter,
                     task: str, only_success: bool, num_workers: int, seed: int, episodes: int, max_attempts: int,
                     max_steps: int | None, take: Callable[[EpisodeResult], None], summary: RecordSummary) -> None:
    ctx = mp.get_context("spawn")  # no inherited GL/decoder state in the workers
    jobs, results = ctx.Queue(), ctx.Queue(maxsize=2 * num_workers)
    procs = [
        ctx.Process(target=_worker, args=(make_env, make_policy, to_frame, writer.buffer_kwargs(), task,
                                          not only_success, max_steps, jobs, results, os.getpid()), daemon=True)
        for _ in range(num_workers)
    ]
    for p in procs:
        p.start()
    issued = decided = 0
    early: dict[int, EpisodeResult] = {}  # finished before an earlier seed: waits for it, to be committed in order
    dead_worker = False

    def top_up() -> None:
        """Keep at most two seeds per worker issued and undecided (one in hand, one queued, or one finished early
        and held in `early`), and no more than the episodes still missing plus one spare per worker: what is
        queued is what a shutdown waits behind, and what finished early is held in memory."""
        nonlocal issued
        want = min(2 * num_workers, episodes - summary.saved + num_workers)
        while issued < max_attempts and issued - decided < want:
            jobs.put(seed + issued)
            issued += 1

    try:
        top_up()
        while summary.saved < episodes and decided < issued:
            try:
                res = results.get(timeout=1.0)
            except queue.Empty:
                gone = [p for p in procs if p.exitcode is not None]
                if gone:
                    # killed without a word (OOM killer, a segfault in MuJoCo/EGL/the codec, kill -9): its seed never
                    # comes back, and it may have died holding a queue's lock, so the others cannot go on safely
                    dead_worker = True
                    # exit code 1 before any episode: the worker's import of the caller's script failed or ran the
                    # script again (a script without a __main__ guard re-runs itself in each spawned worker)
                    hint = ("; a worker that exits 1 before its first episode is often a script calling record() "
                            "without an `if __name__ == \"__main__\":` guard (spawned workers import it again)"
                            if summary.saved == 0 and any(p.exitcode == 1 for p in gone) else "")  # fmt: skip
                    raise RuntimeError("recorder worker(s) died without reporting an error: " + "; ".join(
                        f"pid {p.pid} exit code {p.exitcode}{_signal_name(p.exitcode)}" for p in gone)
                        + f"; the {summary.saved} episode(s) committed so far are intact{hint}") from None
                continue
            if isinstance(res, BaseException):
                raise res
            early[res.seed] = res
            while summary.saved < episodes and seed + decided in early:  # every earlier seed is decided
                take(early.pop(seed + decided))
                decided += 1
            top_up()
    finally:
        if dead_worker:  # the shared queues may be wedged: no graceful drain
            for p in procs:
                if p.is_alive():
                    p.terminate()
        else:
            for _ in procs:
                jobs.put(None)
            deadline = time.monotonic() + 30
            while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
                try:  # drain late results so no worker blocks on a full queue
                    results.get(timeout=0.2)
                except queue.Empty:
                    pass
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=1)


def _signal_name(exitcode: int | None) -> str:
    """' (SIGKILL)' for a process that a signal ended (a negative exit code), else ''."""
    if exitcode is None or exitcode >= 0:
        return ""
    try:
        return f" ({signal.Signals(-exitcode).name})"
    except ValueError:
        return ""
