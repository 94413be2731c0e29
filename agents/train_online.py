"""Online training (TD-MPC): the policy learns in a sim env from its own episodes, kept in a replay
buffer that checkpoints carry for `--resume`. `train_log.csv` gets a row every `--log-freq` env steps."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from twinarm.agents.checkpoints import (
    checkpoint_dir,
    last_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    say_if_done,
)
from twinarm.agents.distributed import dist_info, to_device
from twinarm.agents.ema import EMA
from twinarm.agents.features import IMAGE_PREFIX, features_from_spec, stats_from_spec
from twinarm.agents.graceful_stop import GracefulStop
from twinarm.agents.optimizer import make_optimizer, make_scheduler
from twinarm.agents.periodic_eval import curve_title, eval_row, report_eval
from twinarm.agents.policy import Policy, PolicyConfigError
from twinarm.agents.precision import autocast
from twinarm.agents.registry import get_config_class, get_policy_class
from twinarm.agents.run_log import RunLog, plot_run
from twinarm.agents.thread_budget import ThreadBudget, on_budget
from twinarm.agents.train_config import TrainConfig, sim_kwargs
from twinarm.arms import get_arm
from twinarm.registration import entry_for


def build_policy_online(tc: TrainConfig, env: Any) -> Policy:
    import gymnasium as gym

    assert tc.env is not None
    arm = entry_for(tc.env).arm
    spec = get_arm(arm)
    space: gym.spaces.Dict = env.observation_space
    env_dim = space["environment_state"].shape[0] if "environment_state" in space.spaces else None
    cams = None
    if "pixels" in space.spaces:
        cams = tuple(
            spec.resolve_cameras((name,), space["pixels"][name].shape[:2])[0] for name in space["pixels"].spaces
        )
    inputs, outputs = features_from_spec(spec, tc.obs_type or "state", cams, env_dim)
    cfg = get_config_class(tc.policy)(input_features=inputs, output_features=outputs, arm=arm, **tc.policy_overrides)
    return get_policy_class(tc.policy)(cfg, stats_from_spec(spec, env_dim))


def _store_obs(obs: dict[str, Any], batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in batch.items():
        if k.startswith(IMAGE_PREFIX):
            out[k] = np.transpose(obs["pixels"][k[len(IMAGE_PREFIX) :]], (2, 0, 1))
        else:
            out[k] = v[0].cpu().numpy()
    return out


def check_online_budget(tc: TrainConfig, horizon: int) -> None:
    """PolicyConfigError unless the replay buffer and the seed steps hold one `horizon`-step sequence when the
    first update samples one (it used to fail there, after every seed step ran: 'holds no full sequence yet');
    warns when no update will run at all (--steps within --seed-steps: the checkpoint is the initial network)."""
    need = horizon + 1
    if min(tc.buffer_capacity, tc.steps) < need:
        raise PolicyConfigError(f"--buffer-capacity {tc.buffer_capacity} / --steps {tc.steps}: the replay buffer must "
                                f"hold a {need}-step sequence (TD-MPC's horizon {horizon} + 1)")  # fmt: skip
    if tc.seed_steps < need and tc.steps > tc.seed_steps:
        raise PolicyConfigError(f"--seed-steps {tc.seed_steps}: the first update samples a {need}-step sequence "
                                f"(TD-MPC's horizon {horizon} + 1); seed at least {need} steps")  # fmt: skip
    if tc.steps <= tc.seed_steps:
        warnings.warn(f"--steps {tc.steps} <= --seed-steps {tc.seed_steps}: every step is a random seed step and no "
                      "update runs; the checkpoint holds the initial network", stacklevel=2)  # fmt: skip


def check_one_process() -> None:
    """PolicyConfigError under torchrun (WORLD_SIZE > 1): online training runs in one process. Every rank would
    otherwise run the same seeded episodes and updates, unsynchronised, and write the same run folder's logs and
    checkpoints (no data parallelism, duplicated rows, racing checkpoint files)."""
    rank, world = dist_info()
    if world > 1:
        raise PolicyConfigError(f"online TD-MPC training runs in one process, but this is rank {rank} of WORLD_SIZE="
                                f"{world} (torchrun): run `twinarm train --policy tdmpc --env ...` without torchrun "
                                "(torchrun's data-parallel training is for offline training, --dataset)")  # fmt: skip


def _log_row(step: int, episodes: int, finished: list[tuple[float, bool]], seconds: float,
             info: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """One `train_log.csv` row (every --log-freq env steps): the episodes done so far, the mean return and success
    rate of those that ended since the last row (empty when none did), and the latest update's losses."""
    row: dict[str, Any] = {"step": step, "episodes": episodes}
    if finished:
        row["episode_return"] = sum(r for r, _ in finished) / len(finished)
        row["episode_success"] = sum(ok for _, ok in finished) / len(finished)
    return {**row, "time_s": round(seconds, 2), **info}


def train_online(
    tc: TrainConfig, out: Path, device: torch.device, budget: ThreadBudget | None, start_run: Callable[[], None]
) -> Path:
    import gymnasium as gym

    from twinarm.agents.env_io import EnvAdapter
    from twinarm.agents.replay import ReplayBuffer

    check_one_process()  # before anything is built or written
    if tc.env is None:
        raise ValueError("online training needs --env")
    kwargs: dict[str, Any] = {"obs_type": tc.obs_type or "state"}
    if tc.image_size:
        kwargs["image_size"] = tuple(tc.image_size)
    kwargs.update(sim_kwargs(tc))
    env = gym.make(tc.env, **kwargs)
    policy = build_policy_online(tc, env).to(device)
    check_online_budget(tc, policy.config.horizon)
    start_run()
    spec = get_arm(policy.config.arm)
    adapter = EnvAdapter(spec, policy.config.input_features, device)
    opt = make_optimizer(policy)
    sched = make_scheduler(tc, opt)
    # As offline: the averaged weights are the ones saved (pretrained_model/) and evaluated; the raw ones act and
    # learn. Off unless --ema (its default is on for diffusion only).
    ema = EMA(policy, max_decay=tc.ema_max_decay) if tc.ema else None
    shapes = {k: f.shape for k, f in policy.config.input_features.items()}
    buffer = ReplayBuffer(min(tc.buffer_capacity, tc.steps), shapes, policy.config.action_dim, tc.seed)
    start, episode = 0, 0
    ckpt = last_checkpoint(out) if tc.resume else None
    if ckpt is not None:
        start = restore_checkpoint(ckpt, policy, opt, sched, ema)
        say_if_done(start, tc.steps, out)
        extra = torch.load(ckpt / "training_state.pt", weights_only=False)
        buffer = extra["buffer"]
        episode = int(extra["episode"])
        if buffer.newest_episode() == episode:
            # The checkpoint fell mid-episode: the env restarts from a reset, so the steps from here are another
            # episode (its own id and reset seed); stored under the interrupted one's id they would continue it in
            # the buffer, and sampled sequences would run through the reset.
            episode += 1
        if start < tc.steps and buffer.capacity != (want := min(tc.buffer_capacity, tc.steps)):
            buffer = buffer.resized(want)  # --steps (or --buffer-capacity) changed: as a run begun with it
    # Rows after `start` were logged by an attempt killed before its next checkpoint (all of them when it was killed
    # before its first): this run logs those steps again.
    log = RunLog(out / "train_log.csv", out / "tensorboard", start=start)
    eval_log = RunLog(out / "eval_log.csv", None, start=start)
    policy.train()
    policy.explore = True
    env.action_space.seed(tc.seed)
    for _ in range(min(start, tc.seed_steps)):  # a resumed run goes on with the seed steps' actions not yet taken
        env.action_space.sample()
    obs, _ = env.reset(seed=tc.seed + episode)
    policy.reset()
    ep_return, ep_success, t0, last = 0.0, False, time.perf_counter(), None
    finished: list[tuple[float, bool]] = []  # (return, success) of the episodes ended since the last log row
    horizon = policy.config.horizon
    bar = tqdm(total=tc.steps, initial=start, disable=not tc.progress, desc="train tdmpc (online)", dynamic_ncols=True)
    info: dict[str, float] = {}
    postfix: dict[str, str] = {}
    with GracefulStop() as stopping:
        for step in range(start + 1, tc.steps + 1):
            batch = adapter.obs_to_batch(obs)
            if step <= tc.seed_steps:
                env_action = env.action_space.sample().astype(np.float32)
                action = spec.to_lerobot(env_action).astype(np.float32)
            else:
                with on_budget(budget), torch.inference_mode(), autocast(tc.precision, device):
                    a = policy.select_action(batch)
                env_action = adapter.action_to_env(a)
                action = spec.to_lerobot(env_action).astype(np.float32)
            next_obs, reward, terminated, truncated, step_info = env.step(env_action)
            buffer.add(_store_obs(obs, batch), action, float(reward), _store_obs(next_obs, adapter.obs_to_batch(next_obs)),
                       bool(terminated), episode)
            ep_return += float(reward)
            ep_success |= bool(step_info.get("is_success", False))
            obs = next_obs
            if terminated or truncated:
                postfix["return"] = f"{ep_return:.1f}"
                if "loss" in info:
                    postfix["loss"] = f"{info['loss']:.4f}"
                bar.set_postfix(postfix)
                finished.append((ep_return, ep_success))
                episode += 1
                obs, _ = env.reset(seed=tc.seed + episode)
                policy.reset()
                ep_return, ep_success = 0.0, False
            n_updates = 0
            if step == tc.seed_steps:
                n_updates = tc.seed_steps // tc.update_every  # TD-MPC's pretraining on the seed data
            elif step > tc.seed_steps and step % tc.update_every == 0:
                n_updates = 1
            for _ in range(n_updates):
                with on_budget(budget) as threads:
                    with autocast(tc.precision, device):
                        loss, info = policy(to_device(buffer.sample(tc.batch_size, horizon), device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(policy.model.parameters(), policy.config.grad_clip_norm)
                    opt.step()
                    sched.step()
                    policy.update_target()
                    if ema is not None:
                        ema.update(policy)
                info = {"loss": loss.item(), **info, **({"threads": threads} if threads is not None else {})}
            bar.update(1)
            if step % tc.log_freq == 0:
                log.write(_log_row(step, episode, finished, time.perf_counter() - t0, info))
                finished = []
            if tc.eval_freq and step % tc.eval_freq == 0:
                policy.explore = False
                with ema.applied(policy) if ema is not None else contextlib.nullcontext():
                    row = eval_row(tc, policy, step, out, budget)
                eval_log.write(row)
                report_eval(bar, postfix, row, out, curve_title(tc))
                policy.explore = True
                policy.train()
                policy.reset()
            if step % tc.save_freq == 0 or step == tc.steps:
                last = save_checkpoint(out, step, policy, opt, sched, {"buffer": buffer, "episode": episode}, ema)
            if stopping.requested:  # Ctrl-C: this step is done; keep it, with the replay buffer
                if not (step % tc.save_freq == 0 or step == tc.steps):
                    last = save_checkpoint(out, step, policy, opt, sched, {"buffer": buffer, "episode": episode}, ema)
                bar.close()
                env.close()
                stopping.stop(step, last)
    bar.close()
    env.close()
    plot_run(out, title=curve_title(tc))
    return last or checkpoint_dir(out, tc.steps)
