"""`train()`, the entry of every training run, and the offline loop (ACT, Diffusion) from a LeRobot
dataset; online training (TD-MPC) in a sim env is `train_online.py`.

One run directory holds `train_config.json`, `train_log.csv` (and TensorBoard events when
`tensorboard` is installed), `eval_log.csv`, `learning_curve.png` (redrawn at each evaluation), and `checkpoints/<step>/` each with `pretrained_model/`
(a loadable policy) and `training_state.pt` (optimizer, scheduler, step, RNG states) for `--resume`.
Seeded runs are deterministic: batches come from a per-epoch seeded permutation that depends only on
(seed, step), so a resumed run sees exactly the batches it would have seen. Multi-process training
runs under `torchrun` (torch.distributed, gloo on CPU) with DistributedDataParallel.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from twinarm.agents.allocator import keep_freed_memory
from twinarm.agents.checkpoints import (
    checkpoint_dir,
    last_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    say_if_done,
)
from twinarm.agents.distributed import check_replicas, dist_info, init_distributed, resolve_device, to_device
from twinarm.agents.ema import EMA
from twinarm.agents.features import inputs_for_obs_type, split_features
from twinarm.agents.graceful_stop import GracefulStop
from twinarm.agents.normalize import floor_spread
from twinarm.agents.optimizer import make_optimizer, make_scheduler
from twinarm.agents.periodic_eval import curve_title, eval_row, report_eval
from twinarm.agents.policy import (
    CONFIG_NAME,
    NORMALIZER_PREFIXES,
    PRETRAINED_DIR,
    WEIGHTS_NAME,
    Policy,
    PolicyConfigError,
    build_for_weights,
    read_safetensors,
    resolve_checkpoint,
)
from twinarm.agents.precision import autocast, check_precision
from twinarm.agents.registry import get_config_class, get_policy_class
from twinarm.agents.run_log import RunLog, plot_run
from twinarm.agents.thread_budget import ThreadBudget, budget_for, on_budget
from twinarm.agents.train_config import TrainConfig, dataset_roots, reconcile_resume, sim_kwargs
from twinarm.agents.train_online import train_online
from twinarm.arms import ARMS, get_arm
from twinarm.registration import entry_for
from twinarm.spec import ArmSpec


def use_ema(tc: TrainConfig) -> bool:
    return tc.policy == "diffusion" if tc.ema is None else tc.ema


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----- datasets ---------------------------------------------------------------------------------------
def arm_for(env_id: str | None, root: str | Path, robot_type: str | None, recorded: tuple[ArmSpec, ...]) -> str:
    """The arm a policy is trained for: `env_id`'s, else the one the dataset at `root` was recorded on (`recorded`,
    `dataset_arm.recorded_arms`; warning when `env_id`'s is not it: another arm's recordings, same joints and units,
    other kinematics; and when a LeRobot `so_follower` recording may be either SO arm: LeRobot writes one name for
    both)."""
    names = [a.name for a in recorded]
    if env_id:
        arm = entry_for(env_id).arm
        if names and arm not in names:
            from twinarm.agents.env_io import OtherArmWarning

            warnings.warn(f"the dataset was recorded on the {names[0]} arm ({robot_type}) and the policy is trained "
                          f"for {env_id} ({arm})", OtherArmWarning, stacklevel=2)  # fmt: skip
        return arm
    if not names:
        known = ", ".join(dict.fromkeys(spec.robot_type for spec in ARMS.values()))
        raise PolicyConfigError(f"the dataset's robot_type {robot_type!r} is none of twinarm's arms ({known}): pass "
                                "--env to name the arm the policy is for")
    if len(names) > 1:
        warnings.warn(f"{root}: robot_type {robot_type!r} may be any of {', '.join(names)} (LeRobot writes one name "
                      f"for them): training for {names[0]}; pass --env to name the arm", stacklevel=2)  # fmt: skip
    return names[0]


def check_joints(policy: Policy, env_id: str) -> None:
    """PolicyEnvMismatch when the dataset's action or state size is not `env_id`'s joint count (checked without
    building the env; with periodic evaluation `check_policy_env` checks everything)."""
    from twinarm.agents.env_io import check_joints as check

    check({**policy.config.input_features, **policy.config.output_features}, get_arm(policy.config.arm), env_id)


class OtherRateWarning(UserWarning):
    """A dataset recorded at another frame rate than the env's control rate."""


def warn_other_rate(fps: int, env_id: str, roots: list[str]) -> None:
    """Warn when the dataset's fps is not `env_id`'s control rate: action chunks then span other times in the env
    than in the data (a 15 fps recording played at 30 Hz runs twice as fast)."""
    hz = get_arm(entry_for(env_id).arm).control_hz
    if fps != hz:
        warnings.warn(f"{', '.join(map(str, roots))} is at {fps} fps and {env_id} steps at {hz} Hz: the policy's "
                      f"actions will play {hz / fps:.2g}x as fast as recorded", OtherRateWarning, stacklevel=2)  # fmt: skip


#: The dataset columns a policy that learns from rewards (TD-MPC) reads as sequences beside its actions.
REWARD, DONE = "next.reward", "next.done"


def reward_delta_indices(cfg: Any) -> list[int] | None:
    """Frame offsets of the rewards one training sample of `cfg`'s policy needs (LeRobot's `reward_delta_indices`),
    None for a policy that learns no value (ACT, Diffusion). TD-MPC's reward at step t follows its action at t."""
    own = getattr(cfg, "reward_delta_indices", None)
    if own is not None:
        return list(own() if callable(own) else own)
    return list(cfg.action_delta_indices()) if cfg.type == "tdmpc" else None


def delta_timestamps(cfg: Any, fps: int, features: Mapping[str, Any] | None = None) -> dict[str, list[float]]:
    """The sequences (offsets in seconds) one training sample needs, read off the policy's config as LeRobot's
    `resolve_delta_timestamps` reads them: each input's when the policy takes more than the current frame
    (Diffusion's `n_obs_steps`, TD-MPC's horizon + 1), the actions, and for a policy that learns from rewards
    `next.reward` and (where the dataset's `features` hold it) `next.done`."""
    out: dict[str, list[float]] = {}
    obs = list(cfg.observation_delta_indices())
    if obs != [0]:
        for k in cfg.input_features:
            out[k] = [i / fps for i in obs]
    out["action"] = [i / fps for i in cfg.action_delta_indices()]
    rewards = reward_delta_indices(cfg)
    if rewards is not None:
        out[REWARD] = [i / fps for i in rewards]
        if features is not None and DONE in features:
            out[DONE] = [i / fps for i in rewards]
    return out


class StepSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of dataset indices for steps start..total-1: epoch e is a permutation seeded by (seed, e),
    split across ranks, so batch k depends only on (seed, k, rank)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, total: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.bs, self.seed, self.start, self.total, self.rank, self.world = n, batch_size, seed, start, total, rank, world
        self.per_epoch = max(1, n // (batch_size * world))

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self) -> Iterator[list[int]]:
        epoch, perm = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start, self.total):
            e, j = divmod(step, self.per_epoch)
            if e != epoch:
                epoch = e
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + e))
            lo = (j * self.world + self.rank) * self.bs
            idx = perm[lo : lo + self.bs]
            if len(idx) < self.bs:  # tiny datasets: wrap around
                idx = perm[torch.arange(lo, lo + self.bs) % self.n]
            yield idx.tolist()


def step_offset(step: int) -> int:
    """Worker seeds depend on where a (resumed) run starts, never on the global RNG."""
    return 1_000_003 * step


def _float_images(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}


# ----- policy construction ----------------------------------------------------------------------------
def build_policy_offline(tc: TrainConfig, dataset: Any) -> Policy:
    """The policy to train on `dataset`: a resumed run's own (from its last checkpoint's config), else
    `tc.init_from`'s to fine-tune, else a new one (twinarm's defaults with `tc.policy_overrides`)."""
    inputs, outputs = split_features(dataset.features)
    if "action" not in outputs:  # a policy learns to output it (LeRobot's `action` feature)
        raise PolicyConfigError(f"--dataset {', '.join(dataset_roots(tc.dataset))}: no 'action' feature, which every "
                                "policy learns to output (an observation-only dataset)")
    try:
        inputs = inputs_for_obs_type(inputs, tc.obs_type, ", ".join(dataset_roots(tc.dataset)))
    except ValueError as exc:
        raise PolicyConfigError(str(exc)) from None
    cfg_cls = get_config_class(tc.policy)
    from twinarm.dataset_arm import check_range_units, recorded_arms

    readers = dataset.readers if hasattr(dataset, "readers") else [dataset]  # a ConcatReader's robots are alike
    recorded = [recorded_arms(r.root, r.meta.info.get("robot_type")) for r in readers]
    arm = arm_for(tc.env, readers[0].root, dataset.meta.info.get("robot_type"), recorded[0])
    for r, arms in zip(readers, recorded, strict=True):  # twinarm reads degrees: a LeRobot Koch may be in its range
        check_range_units(r.root, arms)
    ckpt = last_checkpoint(Path(tc.output_dir)) if tc.resume else None
    if ckpt is not None:  # the run's own config: an --init-from run's is its source's, not the defaults
        cfg = config_of_run(tc, ckpt, inputs, outputs)
        cfg.arm = arm
    else:
        cfg = cfg_cls(input_features=inputs, output_features=outputs, arm=arm, **tc.policy_overrides)
    stats = dataset.stats
    if stats is None:
        from twinarm.datasets_io.layout import DatasetError

        raise DatasetError(f"{', '.join(dataset_roots(tc.dataset))}: no meta/stats.json, which normalization needs "
                           "(`twinarm dataset check` lists anything else missing)")
    stats, notes = floor_spread(stats, tc.min_std, inputs)
    for note in notes.values():
        print(f"normalization: {note} (--min-std)")
    if tc.init_from and ckpt is None:
        return policy_from_checkpoint(tc, cfg, stats)
    if ckpt is not None:  # its weights come from the checkpoint next: no backbone file to read
        return build_for_weights(get_policy_class(tc.policy), cfg, stats)
    return get_policy_class(tc.policy)(cfg, stats)


def config_of_run(tc: TrainConfig, ckpt: Path, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> Any:
    """The config a resumed run trains on: its checkpoint `ckpt`'s (`pretrained_model/config.json`, with
    `tc.policy_overrides`, which `reconcile_resume` checked are the run's own), its features checked against the
    dataset's `inputs` and `outputs`. LeRobot resumes from the checkpoint's config too."""
    path = ckpt / PRETRAINED_DIR / CONFIG_NAME
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PolicyConfigError(f"--resume: {path} cannot be read ({exc}); resume from an earlier checkpoint (remove "
                                f"{ckpt}) or name a new --output-dir") from None  # fmt: skip
    if raw.get("type") != tc.policy:
        raise PolicyConfigError(f"--resume: {path} holds a {raw.get('type')!r} policy, not {tc.policy!r}")
    try:
        cfg = get_config_class(tc.policy).from_dict({**raw, **tc.policy_overrides})
    except (TypeError, ValueError) as exc:
        raise PolicyConfigError(f"--resume: {path}: {exc}") from None
    for side, ours in (("input_features", inputs), ("output_features", outputs)):
        theirs = getattr(cfg, side)
        differ = sorted(k for k in {*theirs, *ours} if theirs.get(k) != ours.get(k))
        if differ:
            said = "; ".join(f"{k}: checkpoint {theirs.get(k)}, dataset {ours.get(k)}" for k in differ)
            raise PolicyConfigError(f"--resume: {path}: its {side.replace('_', ' ')} differ from the dataset's ({said})")
    return cfg


def policy_from_checkpoint(tc: TrainConfig, fresh: Any, stats: Mapping[str, Any]) -> Policy:
    """`tc.init_from`'s policy to fine-tune: its config with `tc.policy_overrides` (features and arm: `fresh`'s,
    from the dataset, which must match the checkpoint's), its weights, the dataset's normalization `stats`."""
    try:
        src = resolve_checkpoint(tc.init_from)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"--init-from: {exc}") from None
    if not (src / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"--init-from {tc.init_from}: no policy checkpoint there ({src} holds no {CONFIG_NAME})")
    raw = json.loads((src / CONFIG_NAME).read_text())
    if raw.get("type") != tc.policy:
        raise PolicyConfigError(f"--init-from {src} holds a {raw.get('type')!r} policy, not {tc.policy!r}")
    norms = NORMALIZER_PREFIXES
    from twinarm.agents.lerobot_checkpoint import is_lerobot_checkpoint

    lerobot = is_lerobot_checkpoint(src)
    if lerobot:  # read as `twinarm eval` reads it: LeRobot's config fields and tensor names made twinarm's
        base, weights = _lerobot_start(src, fresh.arm)
    else:
        base = raw
        weights = {k: v for k, v in read_safetensors(src / WEIGHTS_NAME).items() if not k.startswith(norms)}
    try:
        cfg = get_config_class(tc.policy).from_dict({**base, **tc.policy_overrides})
    except ValueError as exc:
        raise PolicyConfigError(f"--init-from {src / CONFIG_NAME}: {exc}") from None
    for side in ("input_features", "output_features"):
        theirs, ours = getattr(cfg, side), getattr(fresh, side)
        differ = sorted(k for k in {*theirs, *ours} if theirs.get(k) != ours.get(k))
        if differ:
            said = "; ".join(f"{k}: checkpoint {theirs.get(k)}, dataset {ours.get(k)}" for k in differ)
            raise PolicyConfigError(f"--init-from {src}: its {side.replace('_', ' ')} differ from the dataset's ({said})")
    if raw.get("arm") not in (None, fresh.arm):
        from twinarm.agents.env_io import OtherArmWarning

        warnings.warn(f"--init-from {src} was trained for the {raw['arm']} arm and is fine-tuned for {fresh.arm}: same "
                      "joints and units, other kinematics and joint ranges", OtherArmWarning, stacklevel=2)  # fmt: skip
    cfg.arm = fresh.arm
    policy = build_for_weights(get_policy_class(tc.policy), cfg, stats)  # the source's backbone is in `weights`
    own = policy.state_dict()
    reshaped = [f"{k} {tuple(v.shape)} -> {tuple(own[k].shape)}" for k, v in weights.items()
                if k in own and own[k].shape != v.shape]
    if reshaped:
        changed = [f"{k}={v}" for k, v in tc.policy_overrides.items() if raw.get(k) != v]
        raise PolicyConfigError(f"--init-from {src}: {len(reshaped)} tensors change shape ({', '.join(reshaped[:3])}, ...): "
                         f"an override that changes the architecture cannot start from these weights (overrides that "
                         f"differ from the checkpoint's config: {', '.join(changed) or 'none'})")
    missing, unexpected = policy.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith(norms)]
    if missing or unexpected:
        raise PolicyConfigError(f"--init-from {src}: weights missing {missing[:5]}, unexpected {unexpected[:5]}")
    what = "a LeRobot checkpoint, " if lerobot else ""
    print(f"initialized from {src} ({what}{len(weights)} tensors); normalization: the dataset's stats")
    return policy


def _lerobot_start(src: Path, arm: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The twinarm config (as a dict) and weights (twinarm's names, no normalizer buffers) of the LeRobot checkpoint
    `src`, read by `lerobot_checkpoint` as `twinarm eval` reads it; what it cannot read is a PolicyConfigError
    naming the file and field (one CLI error line)."""
    from twinarm.agents.lerobot_checkpoint import LeRobotCheckpointError, load_lerobot

    try:
        policy = load_lerobot(src, arm=arm, notes=False)  # its stats are not used: the dataset's normalize
    except LeRobotCheckpointError as exc:
        raise PolicyConfigError(f"--init-from {exc}") from None
    weights = {k: v for k, v in policy.state_dict().items() if not k.startswith(NORMALIZER_PREFIXES)}
    return policy.config.to_dict(), weights


# ----- the loops ------------------------------------------------------------------------------------------
def train(tc: TrainConfig, on_start: Callable[[Path], None] | None = None) -> Path:
    """Run training as configured; returns the last checkpoint directory. The run folder (`train_config.json`,
    then `on_start(folder)` on rank 0, e.g. the CLI's config.json) is written only once the dataset has been read
    and the policy built from it, so a bad dataset leaves nothing behind."""
    if tc.threads is not None:
        torch.set_num_threads(max(1, tc.threads))
    keep_freed_memory()  # freed tensors are reused step to step instead of page-faulted in again
    device = resolve_device(tc.device)
    check_precision(tc.precision, device)  # before any output is written: a clear ValueError saying why not
    get_config_class(tc.policy).check_overrides(tc.policy_overrides)  # likewise: each bad field named
    tc, note = reconcile_resume(tc)  # likewise: a run folder is never overwritten by another policy's config
    if note and dist_info()[0] == 0:
        print(note)
    if device.type == "cuda":  # TF32 tensor cores for matmuls and convolutions, autotuned conv kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if tc.policy == "tdmpc" and tc.dataset is None:  # online: before torchrun's ranks meet, nothing written
        from twinarm.agents.train_online import check_one_process

        check_one_process()
    rank, world = init_distributed(device)
    out = Path(tc.output_dir)

    def start_run() -> None:
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / "train_config.json").write_text(json.dumps(tc.to_json(), indent=2) + "\n")
            if on_start is not None:
                on_start(out)

    seed_everything(tc.seed)
    budget = budget_for(device, tc.yield_cores)
    try:
        if tc.policy == "tdmpc" and tc.dataset is None:
            if tc.init_from:
                raise PolicyConfigError("--init-from starts offline training (from --dataset) at a checkpoint's weights; "
                                 "online TD-MPC starts from scratch")
            return train_online(tc, out, device, budget, start_run)
        return _train_offline(tc, out, rank, world, device, budget, start_run)
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train_offline(
    tc: TrainConfig, out: Path, rank: int, world: int, device: torch.device, budget: ThreadBudget | None,
    start_run: Callable[[], None],
) -> Path:
    from twinarm.datasets_io.concat import ConcatReader
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    if not tc.dataset:
        raise ValueError(f"policy {tc.policy!r} trains from a dataset: pass --dataset")
    roots = dataset_roots(tc.dataset)
    probe = ConcatReader([LeRobotDatasetReader(r) for r in roots]) if len(roots) > 1 else LeRobotDatasetReader(roots[0])
    if tc.policy == "tdmpc" and "next.reward" not in probe.features:
        from twinarm.datasets_io.layout import DatasetError

        raise DatasetError(f"{', '.join(roots)}: no next.reward feature, which TD-MPC learns its value from: train it "
                           "online in sim (--env ID without --dataset), or ACT or Diffusion on this dataset")
    policy = build_policy_offline(tc, probe)
    if tc.env is not None and tc.eval_freq > 0:
        from twinarm.agents.eval import check_policy_env

        check_policy_env(policy, tc.env, tc.image_size, sim_kwargs(tc) or None)
    elif tc.env is not None:
        check_joints(policy, tc.env)
    if tc.env is not None:
        warn_other_rate(probe.fps, tc.env, roots)
    start_run()
    deltas = delta_timestamps(policy.config, probe.fps, probe.features)
    del probe  # its columns would stay in memory beside the training reader's for the whole run
    cameras = list(policy.config.image_keys)  # the policy's cameras only: others are never decoded

    def reader(root: Any) -> LeRobotDatasetReader:
        return LeRobotDatasetReader(root, delta_timestamps=deltas, cameras=cameras, frame_cache_mb=tc.frame_cache_mb)

    dataset: Any = ConcatReader([reader(r) for r in roots]) if len(roots) > 1 else reader(roots[0])
    policy.to(device)
    opt = make_optimizer(policy)
    sched = make_scheduler(tc, opt)
    ema = EMA(policy, max_decay=tc.ema_max_decay) if use_ema(tc) else None
    start = 0
    ckpt = last_checkpoint(out) if tc.resume else None
    if ckpt is not None:
        start = restore_checkpoint(ckpt, policy, opt, sched, ema)
        say_if_done(start, tc.steps, out)
    model: nn.Module = policy
    if world > 1:
        model = nn.parallel.DistributedDataParallel(policy, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = StepSampler(len(dataset), tc.batch_size, tc.seed, start, tc.steps, rank, world)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=tc.num_workers, persistent_workers=tc.num_workers > 0,
        pin_memory=device.type == "cuda",
        # Its own generator: creating the iterator must not draw from the global RNG (exact resume).
        generator=torch.Generator().manual_seed(tc.seed + step_offset(start)),
    )
    # Rows after `start` were logged by an attempt killed before its next checkpoint: this run logs those steps again.
    log = RunLog(out / "train_log.csv", out / "tensorboard", start=start) if rank == 0 else None
    eval_log = RunLog(out / "eval_log.csv", None, start=start) if rank == 0 else None
    update_target = getattr(policy, "update_target", None)
    policy.train()
    bar = tqdm(total=tc.steps, initial=start, disable=not tc.progress or rank != 0, desc=f"train {tc.policy}", dynamic_ncols=True)
    t0, step, last, postfix = time.perf_counter(), start, None, {}
    with GracefulStop(world == 1) as stopping:
        for batch in loader:
            with on_budget(budget) as threads:
                with autocast(tc.precision, device):  # the forward only: backward, clipping and the step stay float32
                    loss, info = model(to_device(_float_images(batch), device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                gnorm = nn.utils.clip_grad_norm_(policy.parameters(), policy.config.grad_clip_norm)
                opt.step()
                sched.step()
                if update_target is not None:  # TD-MPC's target network follows the online one (LeRobot: policy.update())
                    update_target()
                if ema is not None:
                    ema.update(policy)
            if threads is not None:
                info = {**info, "threads": threads}
            step += 1
            bar.update(1)
            if log is not None and (step % tc.log_freq == 0 or step == tc.steps):
                postfix["loss"] = f"{loss.item():.4f}"
                bar.set_postfix(postfix)
                log.write({"step": step, "loss": loss.item(), "grad_norm": float(gnorm), "lr": sched.get_last_lr()[0],
                           "time_s": round(time.perf_counter() - t0, 2), **info})
            if tc.eval_freq and tc.env and step % tc.eval_freq == 0 and rank == 0 and eval_log is not None:
                with ema.applied(policy) if ema is not None else contextlib.nullcontext():
                    row = eval_row(tc, policy, step, out, budget)
                eval_log.write(row)
                report_eval(bar, postfix, row, out, curve_title(tc))
                policy.train()
            if step % tc.save_freq == 0 or step == tc.steps:
                if world > 1:
                    check_replicas(policy, out, step, rank, world)
                if rank == 0:
                    last = save_checkpoint(out, step, policy, opt, sched, {}, ema)
                if world > 1:
                    torch.distributed.barrier()
            if stopping.requested:  # Ctrl-C: this step is done; keep it
                if not (step % tc.save_freq == 0 or step == tc.steps):
                    last = save_checkpoint(out, step, policy, opt, sched, {}, ema)
                bar.close()
                stopping.stop(step, last)
    bar.close()
    if rank == 0:
        plot_run(out, title=curve_title(tc))
    return last or checkpoint_dir(out, step)
