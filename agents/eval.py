"""Evaluation in sim, or on a real arm by its -Real id: episodes over Gymnasium vector envs, LeRobot's metrics.

Reports `pc_success` (percent of episodes with `info["is_success"]` at any step), `avg_sum_reward`
and `avg_max_reward`, writes them as JSON plus a printed table, and saves mp4s of the first episodes.
Envs are reached only through `gymnasium.make`; an episode ends at success, termination or truncation.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from twinarm.agents.env_io import (
    EnvAdapter,
    PolicyEnvMismatch,
    ResizedImagesWarning,
    check_fits,
    image_size_problem,
    resize_note,
)
from twinarm.agents.features import ENV_STATE, IMAGE_PREFIX
from twinarm.agents.policy import Policy
from twinarm.agents.precision import autocast, check_precision
from twinarm.agents.prefetch import ChunkPrefetcher
from twinarm.agents.thread_budget import ThreadBudget, on_budget
from twinarm.arms import get_arm
from twinarm.datasets_io.recorder import END, STOP, RecordingControl
from twinarm.datasets_io.video import x264_deterministic
from twinarm.registration import entry_for, import_env_module

# Video frames come from offscreen rendering; without a display, use headless EGL (as the envs do).
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


@dataclass
class EvalResult:
    """Per-episode outcomes plus the aggregates LeRobot reports."""

    sum_rewards: list[float] = field(default_factory=list)
    max_rewards: list[float] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    eval_s: float = 0.0
    #: Wall time of each `select_action` call (one call serves every parallel env), in milliseconds.
    action_ms: list[float] = field(default_factory=list)
    #: The compute precision the policy ran in (`agents.precision`).
    precision: str = "float32"
    #: How many policy calls ran on each intra-op thread count (with a `ThreadBudget`; empty without one).
    threads: dict[int, int] = field(default_factory=dict)
    #: With `record_to`: each episode's index in the recorded dataset (episodes are saved in the order they
    #: end, which parallel envs make differ from the order of seeds).
    recorded: list[int] = field(default_factory=list)
    #: Whether success was measured: by the sim's task, or a person's verdict on a real arm (`judge`). A real
    #: arm has no success detector, so without a judge its episodes' success is unknown, not 0.
    judged: bool = True
    #: Why the evaluation ended before its episodes were all run (None: it ran them all).
    stopped: str | None = None
    #: Seconds spent in the operator's hooks (`before_round`: resetting the scene, waiting for Enter; `judge`: the
    #: y/n answer), left out of `eval_s`; None when there were no such hooks (sim).
    operator_wait_s: float | None = None

    @property
    def aggregated(self) -> dict[str, Any]:
        n = max(len(self.successes), 1)
        return {
            "pc_success": 100.0 * sum(self.successes) / n if self.judged else None,
            "avg_sum_reward": float(np.mean(self.sum_rewards)) if self.sum_rewards else 0.0,
            "avg_max_reward": float(np.mean(self.max_rewards)) if self.max_rewards else 0.0,
            "n_episodes": len(self.successes),
            "eval_s": self.eval_s,
            "eval_ep_s": self.eval_s / n,
            **({} if self.operator_wait_s is None else {"operator_wait_s": self.operator_wait_s}),
        }

    def to_json(self) -> dict[str, Any]:
        per_episode = [
            {"episode_ix": i, "seed": s, "sum_reward": sr, "max_reward": mr, "success": ok if self.judged else None,
             "length": ln}
            for i, (s, sr, mr, ok, ln) in enumerate(
                zip(self.seeds, self.sum_rewards, self.max_rewards, self.successes, self.lengths, strict=True)
            )
        ]
        for row, index in zip(per_episode, self.recorded, strict=False):
            row["recorded_episode_index"] = index
        out = {"aggregated": self.aggregated, "select_action_ms": self.latency, "precision": self.precision,
               "threads": {str(n): k for n, k in sorted(self.threads.items())},
               "per_episode": per_episode, "video_paths": self.videos}
        return out if self.stopped is None else {**out, "stopped": self.stopped}

    @property
    def latency(self) -> dict[str, float]:
        """Percentiles of the `select_action` time: what a real control loop must fit into its period."""
        if not self.action_ms:
            return {}
        ms = np.asarray(self.action_ms)
        return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
                "calls": int(ms.size)}


def format_table(agg: dict[str, float], latency: dict[str, float] | None = None, precision: str = "float32") -> str:
    """The printed summary of an evaluation: LeRobot's metrics, time, `select_action`'s latency (in `precision`,
    named when not float32: latency and actions depend on it)."""
    rows = [
        ("pc_success", "not measured (--ask-success: judge each episode)" if agg["pc_success"] is None
         else f"{agg['pc_success']:.1f} %"),
        ("avg_sum_reward", f"{agg['avg_sum_reward']:.3f}"),
        ("avg_max_reward", f"{agg['avg_max_reward']:.3f}"),
        ("n_episodes", f"{agg['n_episodes']}"),
        ("eval_s", f"{agg['eval_s']:.1f}"),
    ]
    if agg.get("operator_wait_s") is not None:
        rows.append(("operator_wait_s", f"{agg['operator_wait_s']:.1f} (not in eval_s)"))
    if latency:
        rows.append(("select_action", f"p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, "
                                      f"max {latency['max']:.1f} ms ({latency['calls']} calls)"))
    if precision != "float32":
        rows.append(("precision", precision))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)


def write_mp4(frames: list[np.ndarray], path: Path, fps: int) -> None:
    """Encode RGB frames (H, W, 3 uint8) to an H.264 mp4 with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.options = x264_deterministic({})  # the same frames, the same bytes
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: stream.height, : stream.width]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def obs_type_for(policy: Policy, real: bool = False) -> str:
    """The env `obs_type` that yields a policy's inputs. A policy without cameras reads `state` in sim; a real
    env has no `state` (no object poses), and its `pixels_agent_pos` without cameras is the joints alone."""
    cfg = policy.config
    if cfg.image_keys:
        return "pixels_agent_pos" if cfg.has_state else "pixels"
    return "pixels_agent_pos" if real else "state"


def make_vector_env(
    env_id: str, n_envs: int, obs_type: str, image_size: tuple[int, int] | None, render: bool, use_async: bool,
    env_kwargs: Mapping[str, Any] | None = None, max_steps: int | None = None,
) -> gym.vector.VectorEnv:
    """`n_envs` copies of `env_id` without autoreset; `max_steps` replaces the id's episode length (longer too)."""
    kwargs: dict[str, Any] = {**(env_kwargs or {}), "obs_type": obs_type}
    if max_steps is not None:
        kwargs["max_episode_steps"] = max_steps
    if image_size is not None:
        kwargs["image_size"] = tuple(image_size)
    if render:
        kwargs["render_mode"] = "rgb_array"
    fns = [partial(_make_env, env_id, kwargs)] * n_envs
    if use_async and n_envs > 1:
        # forkserver, not fork: a worker forked from a process that has rendered inherits its GL (EGL) state and
        # deadlocks in its first reset, the parent waiting for ever (and its workers orphaned when it is killed).
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.DISABLED, context="forkserver")
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.DISABLED)


def check_real_inputs(policy: Policy, env_id: str) -> None:
    """PolicyEnvMismatch when `env_id` is a real arm and the policy reads what only the simulator has (object
    poses), naming the ways on: `evaluate` and `twinarm eval` check it before any port is opened."""
    env_id = import_env_module(env_id)
    entry = entry_for(env_id)
    if env_id == entry.real_id and ENV_STATE in policy.config.input_features:
        raise PolicyEnvMismatch(f"the policy reads observation.environment_state (object poses), which only the "
                                f"simulator has; {env_id} is the real arm: evaluate it in sim ({entry.sim_id}), "
                                "or, to deploy it, train on cameras and joint positions (obs_type pixels_agent_pos)")


def _make_env(env_id: str, kwargs: Mapping[str, Any]) -> gym.Env:
    """One env of `make_vector_env` (module level: a forkserver worker unpickles it and registers the ids, a user
    package's too)."""
    import twinarm  # noqa: F401

    return gym.make(import_env_module(env_id), **kwargs)


def _policy_image_size(policy: Policy) -> tuple[int, int] | None:
    """The image size a camera policy was trained at (the env renders at it), None for a state policy."""
    keys = policy.config.image_keys
    return tuple(policy.config.input_features[keys[0]].shape[-2:]) if keys else None


def _check_fits(policy: Policy, spec: Any, venv: gym.vector.VectorEnv, env_id: str) -> None:
    features = {**policy.config.input_features, **policy.config.output_features}
    check_fits(features, policy.config.arm, spec, venv.single_observation_space, env_id)


def check_policy_env(policy: Policy, env_id: str, image_size: tuple[int, int] | None = None,
                     env_kwargs: Mapping[str, Any] | None = None) -> None:  # fmt: skip
    """Raise PolicyEnvMismatch when `env_id` (one env built as `evaluate` builds them) gives other inputs or takes
    other actions than the policy's: `twinarm train` asks before its first step, not at its first evaluation."""
    env_id = import_env_module(env_id)
    obs_type = obs_type_for(policy, real=env_id == entry_for(env_id).real_id)
    venv = make_vector_env(env_id, 1, obs_type, image_size or _policy_image_size(policy), False, False, env_kwargs)
    try:
        _check_fits(policy, get_arm(entry_for(env_id).arm), venv, env_id)
    finally:
        venv.close()


def evaluate(
    policy: Policy,
    env_id: str,
    n_episodes: int = 50,
    n_envs: int = 10,
    seed: int = 0,
    videos_dir: Path | None = None,
    max_videos: int = 4,
    image_size: tuple[int, int] | None = None,
    use_async: bool = False,
    max_steps: int | None = None,
    progress: bool = False,
    env_kwargs: Mapping[str, Any] | None = None,
    before_round: Callable[[int], None] | None = None,
    prefetch_at: int = 0,
    record_to: Path | None = None,
    judge: Callable[[int, bool], bool] | None = None,
    precision: str = "float32",
    thread_budget: ThreadBudget | None = None,
    reset_options: Mapping[str, Any] | None = None,
    control: RecordingControl | None = None,
    after_round: Callable[[EvalResult], None] | None = None,
    noise_seed: int | None = None,
) -> EvalResult:
    """Roll out `n_episodes` (seeds seed, seed+1, ...) in rounds of `n_envs` parallel envs.

    The policy's random numbers (Diffusion's sampling noise, TD-MPC's planning samples) come from torch's
    generators seeded with `noise_seed` (default: `seed`), and the caller's generator states are given back
    after: a call repeats exactly, and draws nothing from (nor depends on) a training run's random state. They
    are drawn for the whole batch of envs, so an episode of those policies also depends on `n_envs` and on its
    place in the round; ACT's only by float rounding.

    The first `max_videos` episodes are saved as `videos_dir/eval_episode_<k>.mp4` (none without `videos_dir`).
    `image_size` (height, width) is what the sim envs render at (default: the size the policy was trained on; for
    a state policy, the env's own); `max_steps` replaces the env id's episode length, shorter or longer (default:
    the id's own). `use_async` runs the envs (n_envs > 1) in subprocesses started from a forkserver (a script then
    needs the `if __name__ == "__main__":` guard, as multiprocessing does); `progress` prints a line after each
    round of `n_envs` episodes ("eval 20/50: success 18/20").

    `env_kwargs` go to `gymnasium.make` (a -Real id's port, calibration and cameras); `before_round(k)` runs
    before the round starting with episode k (on a real arm: time to reset the scene). With `prefetch_at` > 0
    the next action chunk is computed in the background once that many queued actions are left
    (`ChunkPrefetcher`), so a real control loop does not stop for inference. `record_to` saves every episode
    as a LeRobot v3 dataset there (observations and the actions sent, in the units a recording of the env has;
    `result.recorded` maps each evaluated episode to its index there).
    `judge(k, env_verdict)` decides episode k's success when it ends (a person watching a real arm). Every policy
    call runs under `precision`'s autocast (`agents.precision`: float32, or bf16 where the hardware has it), and
    with `thread_budget` on the intra-op threads it grants (fewer while other processes keep cores busy).
    `reset_options` go to every env's reset (`{"joints": spec.home}`: a real arm starts each episode at home).
    `control` carries an operator's requests (one env at a time): END cuts the episode short (it counts, as it
    ended), STOP does so and runs no more episodes; the result then holds the episodes run. `after_round(result)`
    sees the result after every round (what has finished survives a disconnect or Ctrl-C in the next). Time spent
    in `before_round` and `judge` (a person resetting the scene, answering y/n) is left out of `eval_s` and reported
    as `operator_wait_s`."""
    if n_episodes < 1 or n_envs < 1:  # 0 episodes reported "0 % success"; n_envs 0 was raised to 1 silently
        raise ValueError(f"n_episodes and n_envs must be at least 1, got {n_episodes} and {n_envs}")
    check_precision(precision, policy.device)
    env_id = import_env_module(env_id)  # `pkg:ns/Id`: the package imported, the id as registered
    entry = entry_for(env_id)
    real = env_id == entry.real_id
    check_real_inputs(policy, env_id)
    spec = get_arm(entry.arm)
    # in sim the sizes are known before the envs start and said below; a real arm's cameras say theirs on the first frame
    adapter = EnvAdapter(spec, policy.config.input_features, policy.device, warn_resize=real)
    obs_type = obs_type_for(policy, real=real)
    trained_at = _policy_image_size(policy)
    rendered = tuple(image_size or trained_at or ())  # a sim env renders every camera at one size
    for key in policy.config.image_keys if rendered and not real else ():
        want = tuple(policy.config.input_features[key].shape[-2:])
        if want != rendered:
            cam = key[len(IMAGE_PREFIX):]
            if problem := image_size_problem(cam, rendered, want):
                raise PolicyEnvMismatch(f"the policy does not fit {env_id}: {problem}")
            warnings.warn(resize_note(cam, rendered, want, gets="the env gives"), ResizedImagesWarning, stacklevel=2)
    image_size = image_size or trained_at
    n_envs = max(1, min(n_envs, n_episodes))
    if control is not None and n_envs != 1:
        raise ValueError("control needs n_envs=1 (an operator watches one episode at a time)")
    render = videos_dir is not None and max_videos > 0
    venv = make_vector_env(env_id, n_envs, obs_type, image_size, render, use_async, env_kwargs, max_steps)
    try:
        _check_fits(policy, spec, venv, env_id)
    except PolicyEnvMismatch:
        venv.close()
        raise
    fps = int(venv.metadata.get("render_fps", spec.control_hz) or spec.control_hz)
    result = EvalResult(precision=precision, judged=judge is not None or not real)
    waited = OperatorClock(result, before_round is not None or judge is not None)
    was_training = policy.training
    policy.eval()
    prefetching = prefetch_at > 0
    actor: Any = ChunkPrefetcher(policy, prefetch_at, precision, thread_budget) if prefetching else policy
    # With prefetching the budget applies in the prefetcher's worker, where the chunks are computed.
    budget = thread_budget if thread_budget is not None and not prefetching else None
    rollouts = None if record_to is None else RolloutRecorder(record_to, env_id, venv, image_size, n_envs)
    granted_before = Counter() if thread_budget is None else Counter(thread_budget.granted)
    t0 = time.perf_counter()
    rendered = False  # whether render() was called yet (the first call tells whether the env renders at all)
    own_noise = seeded_noise(policy.device, seed if noise_seed is None else noise_seed)
    try:
        done_eps = 0
        while done_eps < n_episodes:
            k = min(n_envs, n_episodes - done_eps)
            seeds = [seed + done_eps + i for i in range(n_envs)]
            if before_round is not None:
                with waited:
                    before_round(done_eps)
            obs, _ = venv.reset(seed=seeds, options=dict(reset_options) if reset_options else None)
            if done_eps == 0:
                warm_up(policy, adapter.obs_to_batch(obs), precision)
            actor.reset()
            if control is not None:
                control.drop_pending()  # a key pressed before the episode began does not cut it short
            active = np.ones(n_envs, dtype=bool)
            active[k:] = False
            sums = np.zeros(n_envs)
            maxs = np.full(n_envs, -np.inf)
            success = np.zeros(n_envs, dtype=bool)
            length = np.zeros(n_envs, dtype=int)
            record = [render and done_eps + i < max_videos for i in range(n_envs)]
            frames: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
            saved_as: dict[int, int] = {}  # env slot -> its episode's index in the recorded dataset
            while active.any():
                if any(record[i] and active[i] for i in range(n_envs)):
                    imgs = _render_frames(venv, first=not rendered)
                    rendered = True
                    if all(img is None for img in imgs):  # a real arm without cameras: nothing to film, ever
                        print(f"note: {env_id} renders no frames (no camera): no videos written", file=sys.stderr)
                        render, record = False, [False] * n_envs
                    for i in range(n_envs):
                        if record[i] and active[i] and imgs[i] is not None:
                            frames[i].append(np.asarray(imgs[i]))
                t_act = time.perf_counter()
                with on_budget(budget), torch.inference_mode(), autocast(precision, policy.device):
                    action = actor.select_action(adapter.obs_to_batch(obs))
                result.action_ms.append((time.perf_counter() - t_act) * 1e3)
                env_action = adapter.action_to_env(action, batched=True)
                if rollouts is not None:
                    rollouts.add(obs, env_action, active)
                obs, reward, terminated, truncated, info = venv.step(env_action)
                is_success = np.asarray(info.get("is_success", np.zeros(n_envs, bool)), dtype=bool)
                reward = np.asarray(reward, dtype=np.float64)
                sums[active] += reward[active]
                maxs[active] = np.maximum(maxs[active], reward[active])
                length[active] += 1
                success |= is_success & active
                ended = np.asarray(terminated) | np.asarray(truncated)  # max_steps: the envs' TimeLimit
                over = ended | is_success
                if control is not None and control.take() in (END, STOP):
                    over[:] = True
                if rollouts is not None:
                    for i in np.flatnonzero(active & over):
                        saved_as[int(i)] = rollouts.commit(int(i))
                active &= ~over
                if active.any() and ended.any():
                    # Without autoreset Gymnasium refuses to step an env whose episode ended while the round's others
                    # run on: restart it (its steps count for nothing now); the next round reseeds every env anyway.
                    obs, _ = venv.reset(options={"reset_mask": ended.copy()})
            for i in range(k):
                ok = bool(success[i])
                if judge is not None:  # first: an operator's Ctrl-C at the y/n prompt leaves no half-added episode
                    with waited:
                        ok = judge(done_eps + i, ok)
                result.seeds.append(seeds[i])
                result.sum_rewards.append(float(sums[i]))
                result.max_rewards.append(float(maxs[i]))
                result.successes.append(ok)
                result.lengths.append(int(length[i]))
                if rollouts is not None:  # every episode of the round ended, so each was saved
                    result.recorded.append(saved_as[i])
                if record[i] and frames[i]:
                    path = Path(videos_dir) / f"eval_episode_{done_eps + i}.mp4"  # type: ignore[arg-type]
                    write_mp4(frames[i], path, fps)
                    result.videos.append(str(path))
            done_eps += k
            result.eval_s = time.perf_counter() - t0 - (result.operator_wait_s or 0.0)
            if progress:
                said = f": success {sum(result.successes)}/{done_eps}" if result.judged else ""
                print(f"eval {done_eps}/{n_episodes}{said}", flush=True)
            if control is not None and control.stopped:
                result.stopped = f"stopped by the operator after {done_eps} of {n_episodes} episodes"
            if after_round is not None:
                after_round(result)
            if control is not None and control.stopped:
                break
    finally:
        if actor is not policy:
            actor.close()
        if rollouts is not None:
            rollouts.close()
        venv.close()
        policy.train(was_training)
        own_noise.close()
    result.eval_s = time.perf_counter() - t0 - (result.operator_wait_s or 0.0)
    if thread_budget is not None:  # this evaluation's calls (a budget may be shared with training steps)
        result.threads = dict(thread_budget.granted - granted_before)
    return result


class OperatorClock:
    """A context that adds the time spent inside it to `result.operator_wait_s` (the operator's hooks), so that
    `eval_s` measures the episodes, not how long a person took to reset the scene or answer y/n."""

    def __init__(self, result: EvalResult, used: bool) -> None:
        self.result = result
        if used:
            result.operator_wait_s = 0.0

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.result.operator_wait_s = (self.result.operator_wait_s or 0.0) + time.perf_counter() - self._t0


class RolloutRecorder:
    """Evaluated episodes into a new LeRobot v3 dataset: one episode buffer per parallel env, each episode
    committed when it ends; features from the arm spec and the env's observations, as `record` would write."""

    def __init__(self, root: Path, env_id: str, venv: gym.vector.VectorEnv, image_size: tuple[int, int] | None,
                 n_envs: int) -> None:
        from twinarm.datasets_io.writer import DatasetWriter, EpisodeBuffer

        entry = entry_for(env_id)
        self.spec, self.task = get_arm(entry.arm), entry.task_info.instruction
        space = venv.single_observation_space
        cams = list(space["pixels"].spaces) if "pixels" in space.spaces else []
        env_dim = space["environment_state"].shape[0] if "environment_state" in space.spaces else None
        features = self.spec.lerobot_features(
            cameras=self.spec.resolve_cameras(cams, image_size) if cams else (), env_state_dim=env_dim
        )
        self.writer = DatasetWriter.create(Path(root), self.spec.control_hz, features, robot_type=self.spec.robot_type)
        # On a real arm the loop runs in real time: encode videos in worker threads, not in the control step.
        real = env_id == entry.real_id
        self.buffers = [EpisodeBuffer(**self.writer.buffer_kwargs(), background=real) for _ in range(n_envs)]

    def add(self, obs: Mapping[str, Any], actions: np.ndarray, active: np.ndarray) -> None:
        """This step's (observation, action sent) of every env still running."""
        from twinarm.datasets_io.recorder import gym_frame

        for i in np.flatnonzero(active):
            frame = gym_frame(_env_row(obs, int(i)), actions[i], convert=self.spec.to_lerobot)
            self.buffers[i].add_frame(frame, task=self.task)

    def commit(self, i: int) -> int:
        """Save env i's finished episode; returns its episode index in the dataset."""
        return self.writer.commit(self.buffers[i].finish())

    def close(self) -> None:
        """Finalize the dataset and drop any episode left half-recorded (an evaluation that raised mid-episode):
        a real arm's buffers encode in threads that would otherwise wait for frames for ever."""
        for b in self.buffers:
            b.clear()
        self.writer.finalize()


def seeded_noise(device: torch.device, seed: int) -> ExitStack:
    """Seed torch's generators that a policy on `device` draws from; closing the stack gives the caller's states
    back (`torch.random.fork_rng`)."""
    stack = ExitStack()
    cuda = [] if device.type != "cuda" else [device.index if device.index is not None else torch.cuda.current_device()]
    stack.enter_context(torch.random.fork_rng(devices=cuda))
    torch.default_generator.manual_seed(seed)
    for index in cuda:
        torch.cuda.default_generators[index].manual_seed(seed)
    return stack


def _render_frames(venv: gym.vector.VectorEnv, first: bool) -> tuple[Any, ...]:
    """Every env's `render()`. An env with nothing to render returns None (a real arm without cameras, by the real
    env's contract); on the `first` call Gymnasium's env checker warns about that, which `evaluate` replaces with
    its own note and then stops rendering, so that warning is silenced here."""
    if not first:
        return tuple(venv.call("render"))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*RGB-array rendering should return a numpy array, got <class 'NoneType'>")
        return tuple(venv.call("render"))


def _env_row(obs: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Env i's observation out of a vector env's batched one (nested dicts of arrays)."""
    return {k: _env_row(v, i) if isinstance(v, Mapping) else v[i] for k, v in obs.items()}


def warm_up(policy: Policy, batch: dict[str, torch.Tensor], precision: str = "float32") -> None:
    """One untimed `select_action` before the first episode: the first call of a process builds kernels and
    weight caches (hundreds of ms), which would otherwise stall a real arm's first control step. The random
    state is restored, so episodes draw exactly what they would without it. It runs in the episodes' `precision`,
    whose kernels and caches (bf16 weight packs) differ from float32's."""
    devices = [policy.device] if policy.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode(), autocast(precision, policy.device):
        policy.select_action(batch)
    policy.reset()


def save_result(result: EvalResult, out_dir: Path, name: str = "eval_info.json") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return path
