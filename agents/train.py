"""The training loop: offline (ACT, Diffusion) from a LeRobot dataset, online (TD-MPC) in a sim env.

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
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from twinarm.agents.allocator import keep_freed_memory
from twinarm.agents.ema import EMA
from twinarm.agents.features import IMAGE_PREFIX, features_from_spec, split_features, stats_from_spec
from twinarm.agents.normalize import floor_spread
from twinarm.agents.policy import (
    CHECKPOINTS_DIR,
    CONFIG_NAME,
    LAST_NAME,
    PRETRAINED_DIR,
    WEIGHTS_NAME,
    Policy,
    PolicyConfigError,
    resolve_checkpoint,
)
from twinarm.agents.precision import autocast, check_precision
from twinarm.agents.registry import get_config_class, get_policy_class
from twinarm.agents.run_log import RunLog, plot_run
from twinarm.agents.thread_budget import ThreadBudget, budget_for, on_budget
from twinarm.arms import ARMS, get_arm
from twinarm.registration import entry_for


@dataclass
class TrainConfig:
    """One training run; saved beside its outputs as `train_config.json`."""

    policy: str
    """Registered policy name (`act`, `diffusion`, `tdmpc`)."""
    output_dir: str
    """Run directory (logs, checkpoints)."""
    dataset: str | list[str] | None = None
    """LeRobot v3 dataset root or Hub repo id (offline training); several (e.g. sim and real recordings of one
    arm) are trained on together, frames drawn in proportion to their sizes."""
    env: str | None = None
    """Env id for periodic evaluation, and the env of online training."""
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    """Policy config fields to override (e.g. {"dim_model": 256})."""
    steps: int = 100_000
    """Gradient steps (offline) or env steps (online)."""
    batch_size: int = 8
    """Batch size per process."""
    num_workers: int = 0
    """DataLoader worker processes."""
    seed: int = 1000
    """Seed of everything (weights, batch order, env resets)."""
    log_freq: int = 100
    """Steps between loss log rows."""
    save_freq: int = 10_000
    """Steps between checkpoints (the last step is always saved)."""
    eval_freq: int = 10_000
    """Steps between in-sim evaluations (0: never)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation."""
    eval_n_envs: int = 5
    """Parallel envs during evaluation."""
    obs_type: str | None = None
    """Env observation type for online training / eval (default: what the policy's inputs need)."""
    image_size: tuple[int, int] | None = None
    """Env image size (h, w) for pixel observations."""
    randomization: dict[str, Any] | None = None
    """Sim-to-real randomization (`twinarm.envs.randomization.Randomization` fields) of the online / eval env."""
    dynamics: dict[str, Any] | None = None
    """The arm's fitted servo and joint parameters (`twinarm fit-dynamics`' file, as a dict) in the online / eval env."""
    camera_poses: dict[str, Any] | None = None
    """Where the sim's fixed cameras sit (`twinarm fit-camera`'s file, as a dict) in the online / eval env."""
    lr_schedule: str | None = None
    """`constant` or `cosine` (default: cosine with warmup for diffusion, constant otherwise)."""
    lr_warmup_steps: int = 500
    """Linear warmup steps of the cosine schedule."""
    threads: int | None = None
    """torch CPU threads per process (None: torch's own count: OMP_NUM_THREADS, which torchrun sets to 1 for each
    of several processes, else one per physical core)."""
    device: str = "auto"
    """Torch device for the policy (`auto`: CUDA when available, else CPU)."""
    precision: str = "float32"
    """Compute precision of the forward passes: float32, or bf16 (autocast: bf16 matmuls and convolutions, float32
    weights and losses; needs bf16 hardware — see agents.precision)."""
    ema: bool | None = None
    """Keep an exponential moving average of the weights and save/evaluate it (default: on for diffusion)."""
    yield_cores: bool = False
    """Run each training step (online: each plan and update too) and the periodic evals on the cores other
    processes left idle (`agents.thread_budget`; CPU). Off by default: the thread count changes float rounding, so
    a seeded run repeats bit for bit only at a fixed count."""
    min_std: float = 1e-3
    """Input features whose spread in the dataset (per dimension, in its own units) is below this are centred but
    not scaled (`agents.normalize.floor_spread`): something the demonstrations never varied would otherwise blow
    any deviation at deployment up into a huge input. 0: divide by whatever spread there is, as LeRobot does."""
    ema_max_decay: float = 0.9999
    """Upper bound of the EMA decay (its warm-up is `1 - (1 + step) ** -0.75`)."""
    resume: bool = False
    """Continue from the last checkpoint in output_dir."""
    init_from: str | None = None
    """Start from this policy checkpoint's weights (a run folder or a `pretrained_model/`; offline training): fine-
    tuning, e.g. a sim-trained policy on real recordings. Its config, changed by `policy_overrides`, is the run's;
    the dataset's stats normalize (as LeRobot's fine-tuning does); optimizer and schedule start fresh."""
    progress: bool = True
    """Show a progress bar."""
    # ----- online (TD-MPC) -----
    seed_steps: int = 2_000
    """Random-action env steps before learning starts (online)."""
    buffer_capacity: int = 1_000_000
    """Replay buffer size in env steps (online)."""
    update_every: int = 2
    """Env steps between gradient updates (online; TD-MPC's action repeat)."""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size) if self.image_size else None
        return d


def dataset_roots(dataset: str | list[str] | None) -> list[str]:
    """`TrainConfig.dataset` (one root or repo id, several, or none) as a list."""
    if not dataset:
        return []
    roots = [dataset] if isinstance(dataset, str) else list(dataset)
    twice = sorted({r for r in roots if roots.count(r) > 1})
    if twice:  # its frames would be drawn twice as often and its stats counted twice: a slip, not a weighting
        raise PolicyConfigError(f"--dataset {', '.join(twice)} is given more than once")
    return roots


def _where(dataset: str | list[str]) -> list[str]:
    """Dataset roots as places: a local folder by its resolved path (`data/x` and `./data/x` are one), a Hub id as
    it is."""
    return [str(Path(r).resolve()) if Path(r).exists() else r for r in dataset_roots(dataset)]


# ----- distributed helpers ------------------------------------------------------------------------
def dist_info() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment; (0, 1) for a plain run."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: torch.device) -> tuple[int, int]:
    rank, world = dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world


class DeviceError(ValueError):
    """A --device this torch cannot run on (no CUDA device, or no such device type)."""


def resolve_device(name: str) -> torch.device:
    """`auto` -> this process's CUDA device (LOCAL_RANK under torchrun) when there is one, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name}: not a torch device; give auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: torch {torch.__version__} sees no CUDA device (auto picks the CPU)")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def use_ema(tc: TrainConfig) -> bool:
    return tc.policy == "diffusion" if tc.ema is None else tc.ema


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----- datasets ---------------------------------------------------------------------------------------
def arm_for(env_id: str | None, robot_type: str | None) -> str:
    """The arm a policy is trained for: `env_id`'s, else the dataset's `robot_type`'s (warning when both are
    given and differ: another arm's recordings, same joints and units, other kinematics)."""
    recorded = next((name for name, spec in ARMS.items() if robot_type in (spec.robot_type, spec.name)), None)
    if env_id:
        arm = entry_for(env_id).arm
        if recorded is not None and recorded != arm:
            from twinarm.agents.env_io import OtherArmWarning

            warnings.warn(f"the dataset was recorded on the {recorded} arm ({robot_type}) and the policy is trained "
                          f"for {env_id} ({arm})", OtherArmWarning, stacklevel=2)  # fmt: skip
        return arm
    if recorded is None:
        known = ", ".join(spec.robot_type for spec in ARMS.values())
        raise PolicyConfigError(f"the dataset's robot_type {robot_type!r} is none of twinarm's arms ({known}): pass "
                                "--env to name the arm the policy is for")
    return recorded


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


def delta_timestamps(cfg: Any, fps: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    obs = cfg.observation_delta_indices() if cfg.n_obs_steps > 1 else None
    if obs is not None:
        for k in cfg.input_features:
            out[k] = [i / fps for i in obs]
    out["action"] = [i / fps for i in cfg.action_delta_indices()]
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
    inputs, outputs = split_features(dataset.features)
    cfg_cls = get_config_class(tc.policy)
    arm = arm_for(tc.env, dataset.meta.info.get("robot_type"))
    cfg = cfg_cls(input_features=inputs, output_features=outputs, arm=arm, **tc.policy_overrides)
    stats = dataset.stats
    if stats is None:
        from twinarm.datasets_io.layout import DatasetError

        raise DatasetError(f"{', '.join(dataset_roots(tc.dataset))}: no meta/stats.json, which normalization needs "
                           "(`twinarm dataset check` lists anything else missing)")
    stats, notes = floor_spread(stats, tc.min_std, inputs)
    for note in notes.values():
        print(f"normalization: {note} (--min-std)")
    if tc.init_from:
        return policy_from_checkpoint(tc, cfg, stats)
    return get_policy_class(tc.policy)(cfg, stats)


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
    cfg = get_config_class(tc.policy).from_dict({**raw, **tc.policy_overrides})
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
    policy = get_policy_class(tc.policy)(cfg, stats)
    norms = tuple(f"{n}." for n in ("normalize_inputs", "normalize_targets", "unnormalize_outputs"))
    weights = {k: v for k, v in load_file(str(src / WEIGHTS_NAME)).items() if not k.startswith(norms)}
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
    print(f"initialized from {src} ({len(weights)} tensors); normalization: the dataset's stats")
    return policy


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


# ----- logging, checkpoints -----------------------------------------------------------------------------
def checkpoint_dir(out: Path, step: int) -> Path:
    return out / CHECKPOINTS_DIR / f"{step:08d}"


def last_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / CHECKPOINTS_DIR).glob("[0-9]*")) if (out / CHECKPOINTS_DIR).is_dir() else []
    done = [c for c in ckpts if (c / "training_state.pt").is_file()]
    return done[-1] if done else None


def save_checkpoint(
    out: Path, step: int, policy: Policy, opt: torch.optim.Optimizer, sched: Any, extra: dict[str, Any], ema: EMA | None = None
) -> Path:
    """`pretrained_model/` holds the weights to deploy (the EMA when kept); `training_state.pt` what resuming needs."""
    d = checkpoint_dir(out, step)
    with ema.applied(policy) if ema is not None else contextlib.nullcontext():
        policy.save_pretrained(d / PRETRAINED_DIR)
    if ema is not None:
        extra = {**extra, "ema": ema.state_dict(), "model": {k: v.cpu() for k, v in policy.state_dict().items()}}
    state = {
        "step": step,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        **extra,
    }
    tmp = d / "training_state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(d / "training_state.pt")
    (out / CHECKPOINTS_DIR / LAST_NAME).write_text(d.name + "\n")
    return d


def make_scheduler(tc: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    kind = tc.lr_schedule or ("cosine" if tc.policy == "diffusion" else "constant")
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    if kind != "cosine":
        raise ValueError(f"lr_schedule must be constant or cosine, got {kind!r}")
    warm, total = tc.lr_warmup_steps, max(tc.steps, 1)

    def factor(s: int) -> float:
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def make_optimizer(policy: Policy) -> torch.optim.Optimizer:
    cfg = policy.config
    # The fused (single-kernel) AdamW: one pass over each parameter instead of a chain of foreach ops.
    return torch.optim.AdamW(
        policy.get_optim_params(), lr=cfg.optimizer_lr, weight_decay=cfg.optimizer_weight_decay, fused=True
    )


def _sim_kwargs(tc: TrainConfig) -> dict[str, Any]:
    """The gym.make kwargs that shape the sim world of online training and evaluation: randomization, dynamics,
    camera poses."""
    shaping = (("randomization", tc.randomization), ("dynamics", tc.dynamics), ("camera_poses", tc.camera_poses))
    return {k: v for k, v in shaping if v is not None}


def _eval_row(tc: TrainConfig, policy: Policy, step: int, out: Path, budget: ThreadBudget | None) -> dict[str, Any]:
    from twinarm.agents.eval import evaluate, save_result

    assert tc.env is not None
    res = evaluate(
        policy, tc.env, n_episodes=tc.eval_episodes, n_envs=tc.eval_n_envs, seed=tc.seed + 10_000_000,
        videos_dir=out / "eval" / f"{step:08d}", max_videos=1, image_size=tc.image_size,
        env_kwargs=_sim_kwargs(tc) or None, precision=tc.precision,
        thread_budget=budget,
    )  # fmt: skip
    save_result(res, out / "eval" / f"{step:08d}")
    return {"step": step, **{k: v for k, v in res.aggregated.items()}}


def _curve_title(tc: TrainConfig) -> str:
    return f"{tc.policy} on {tc.env.split('/')[-1]}" if tc.env else tc.policy


def _report_eval(bar: tqdm, postfix: dict[str, str], row: dict[str, Any], out: Path, title: str) -> None:
    """An evaluation's result: a line above the progress bar (or on stdout without one), the bar's
    postfix, and the learning curve redrawn."""
    videos = sorted((out / "eval" / f"{row['step']:08d}").glob("*.mp4"))
    n = row["n_episodes"]
    line = (f"step {row['step']}: eval pc_success {row['pc_success']:.0f} % over {n} episode{'s' * (n != 1)}, "
            f"avg_max_reward {row['avg_max_reward']:.3f}" + (f", video {videos[0]}" if videos else ""))
    tqdm.write(line)
    postfix["success"] = f"{row['pc_success']:.0f}%"
    bar.set_postfix(postfix)
    plot_run(out, title=title)


# ----- the loops ------------------------------------------------------------------------------------------
def reconcile_resume(tc: TrainConfig) -> tuple[TrainConfig, str | None]:
    """`resume` on a run folder, checked before anything in it is overwritten: its policy type must be `tc`'s and
    its `--set` values are the run's (taken when `tc` gives none, refused when it gives others); a folder without
    a checkpoint starts a new run. Returns the config to train and a note for the user (or None)."""
    out = Path(tc.output_dir)
    if not tc.resume:
        if (ckpt := last_checkpoint(out)) is not None:  # as LeRobot: a run folder is never trained over afresh
            raise ValueError(f"{out} holds a run (checkpoint {ckpt.name}): --resume continues it; name a new "
                             "--output-dir to start another")  # fmt: skip
        return tc, None
    if last_checkpoint(out) is None:
        return tc, f"--resume: no checkpoint under {out}; starting a new run there"
    saved_file = out / "train_config.json"
    if not saved_file.is_file():
        return tc, None
    saved = json.loads(saved_file.read_text())
    if saved.get("dataset") and tc.dataset and _where(saved["dataset"]) != _where(tc.dataset):
        raise ValueError(f"--resume: {out} trains on --dataset {' '.join(dataset_roots(saved['dataset']))}, not "
                         f"{' '.join(dataset_roots(tc.dataset))}: resume it on its own data (its normalization "
                         "comes from it), or name a new --output-dir (--init-from its checkpoint fine-tunes)")  # fmt: skip
    if saved.get("policy") != tc.policy:
        raise ValueError(f"--resume: {out} trains the {saved.get('policy')} policy, not {tc.policy}: resume it with "
                         f"--policy {saved.get('policy')}, or name a new --output-dir")  # fmt: skip
    theirs = dict(saved.get("policy_overrides") or {})
    if not tc.policy_overrides and theirs:
        said = " ".join(f"--set {k}={json.dumps(v)}" for k, v in theirs.items())
        return replace(tc, policy_overrides=theirs), f"--resume: with the run's own {said}"
    if tc.policy_overrides != theirs:
        differ = sorted(k for k in {*theirs, *tc.policy_overrides} if theirs.get(k) != tc.policy_overrides.get(k))
        def shown(d: dict[str, Any], k: str) -> str:
            return json.dumps(d[k]) if k in d else "unset"

        said = ", ".join(f"{k}: run {shown(theirs, k)}, now {shown(tc.policy_overrides, k)}" for k in differ)
        raise ValueError(f"--resume: {out} was trained with other --set values ({said}); resume with its own "
                         "(or none), or name a new --output-dir")  # fmt: skip
    return tc, None


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
            return _train_online(tc, out, device, budget, start_run)
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

        check_policy_env(policy, tc.env, tc.image_size, _sim_kwargs(tc) or None)
    elif tc.env is not None:
        check_joints(policy, tc.env)
    if tc.env is not None:
        warn_other_rate(probe.fps, tc.env, roots)
    start_run()
    deltas = delta_timestamps(policy.config, probe.fps)
    cameras = list(policy.config.image_keys)  # the policy's cameras only: others are never decoded
    dataset: Any = LeRobotDatasetReader(roots[0], delta_timestamps=deltas, cameras=cameras)
    if len(roots) > 1:
        dataset = ConcatReader(
            [dataset] + [LeRobotDatasetReader(r, delta_timestamps=deltas, cameras=cameras) for r in roots[1:]]
        )
    policy.to(device)
    opt = make_optimizer(policy)
    sched = make_scheduler(tc, opt)
    ema = EMA(policy, max_decay=tc.ema_max_decay) if use_ema(tc) else None
    start = 0
    ckpt = last_checkpoint(out) if tc.resume else None
    if ckpt is not None:
        start = _restore(ckpt, policy, opt, sched, ema)
        _say_if_done(start, tc.steps, out)
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
    log = RunLog(out / "train_log.csv", out / "tensorboard") if rank == 0 else None
    eval_log = RunLog(out / "eval_log.csv", None) if rank == 0 else None
    policy.train()
    bar = tqdm(total=tc.steps, initial=start, disable=not tc.progress or rank != 0, desc=f"train {tc.policy}", dynamic_ncols=True)
    t0, step, last, postfix = time.perf_counter(), start, None, {}
    for batch in loader:
        with on_budget(budget) as threads:
            with autocast(tc.precision, device):  # the forward only: backward, clipping and the step stay float32
                loss, info = model(to_device(_float_images(batch), device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = nn.utils.clip_grad_norm_(policy.parameters(), policy.config.grad_clip_norm)
            opt.step()
            sched.step()
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
                row = _eval_row(tc, policy, step, out, budget)
            eval_log.write(row)
            _report_eval(bar, postfix, row, out, _curve_title(tc))
            policy.train()
        if step % tc.save_freq == 0 or step == tc.steps:
            if world > 1:
                check_replicas(policy, out, step, rank, world)
            if rank == 0:
                last = save_checkpoint(out, step, policy, opt, sched, {}, ema)
            if world > 1:
                torch.distributed.barrier()
    bar.close()
    if rank == 0:
        plot_run(out, title=_curve_title(tc))
    return last or checkpoint_dir(out, step)


def fingerprint(module: nn.Module) -> torch.Tensor:
    """Per-tensor float64 sums of every parameter and buffer: equal across ranks iff replicas agree."""
    tensors = list(module.state_dict().values())
    return torch.stack([t.detach().double().sum() for t in tensors if t.is_floating_point()])


def check_replicas(policy: Policy, out: Path, step: int, rank: int, world: int) -> None:
    """Gather every rank's weight fingerprint; record them in `replica_check.json` and fail on any drift."""
    fp = fingerprint(policy)
    gathered = [torch.empty_like(fp) for _ in range(world)]
    torch.distributed.all_gather(gathered, fp)
    diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
    if rank == 0:
        record = {"step": step, "world_size": world, "max_abs_diff": diff,
                  "fingerprint_sums": [float(g.sum()) for g in gathered]}
        (out / "replica_check.json").write_text(json.dumps(record, indent=2) + "\n")
    if diff != 0.0:
        raise RuntimeError(f"step {step}: data-parallel replicas diverged (max fingerprint difference {diff})")


def _restore(ckpt: Path, policy: Policy, opt: torch.optim.Optimizer, sched: Any, ema: EMA | None = None) -> int:
    from safetensors.torch import load_file

    state = torch.load(ckpt / "training_state.pt", weights_only=False, map_location="cpu")
    if "model" in state:  # pretrained_model/ holds the EMA; the raw weights live here
        policy.load_state_dict(state["model"])
    else:
        policy.load_state_dict(load_file(str(ckpt / PRETRAINED_DIR / WEIGHTS_NAME)))
    if ema is not None:
        if "ema" not in state:
            raise ValueError(f"{ckpt} was trained without EMA; resume with --no-ema or start a new run")
        ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    return int(state["step"])


def _store_obs(obs: dict[str, Any], batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in batch.items():
        if k.startswith(IMAGE_PREFIX):
            out[k] = np.transpose(obs["pixels"][k[len(IMAGE_PREFIX) :]], (2, 0, 1))
        else:
            out[k] = v[0].cpu().numpy()
    return out


def _say_if_done(start: int, steps: int, out: Path) -> None:
    """A resumed run already at --steps trains nothing: say so (it printed the last checkpoint as if it had)."""
    if start >= steps and dist_info()[0] == 0:
        print(f"--resume: {out} is at step {start} of --steps {steps}: nothing to train (a larger --steps continues)")


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


def _train_online(
    tc: TrainConfig, out: Path, device: torch.device, budget: ThreadBudget | None, start_run: Callable[[], None]
) -> Path:
    import gymnasium as gym

    from twinarm.agents.env_io import EnvAdapter
    from twinarm.agents.replay import ReplayBuffer

    if tc.env is None:
        raise ValueError("online training needs --env")
    kwargs: dict[str, Any] = {"obs_type": tc.obs_type or "state"}
    if tc.image_size:
        kwargs["image_size"] = tuple(tc.image_size)
    kwargs.update(_sim_kwargs(tc))
    env = gym.make(tc.env, **kwargs)
    policy = build_policy_online(tc, env).to(device)
    check_online_budget(tc, policy.config.horizon)
    start_run()
    spec = get_arm(policy.config.arm)
    adapter = EnvAdapter(spec, policy.config.input_features, device)
    opt = make_optimizer(policy)
    sched = make_scheduler(tc, opt)
    shapes = {k: f.shape for k, f in policy.config.input_features.items()}
    buffer = ReplayBuffer(min(tc.buffer_capacity, tc.steps), shapes, policy.config.action_dim, tc.seed)
    log = RunLog(out / "train_log.csv", out / "tensorboard")
    eval_log = RunLog(out / "eval_log.csv", None)
    start, episode = 0, 0
    ckpt = last_checkpoint(out) if tc.resume else None
    if ckpt is not None:
        start = _restore(ckpt, policy, opt, sched)
        _say_if_done(start, tc.steps, out)
        extra = torch.load(ckpt / "training_state.pt", weights_only=False)
        buffer = extra["buffer"]
        episode = int(extra["episode"])
    policy.train()
    policy.explore = True
    env.action_space.seed(tc.seed)
    obs, _ = env.reset(seed=tc.seed + episode)
    policy.reset()
    ep_return, ep_success, t0, last = 0.0, False, time.perf_counter(), None
    horizon = policy.config.horizon
    bar = tqdm(total=tc.steps, initial=start, disable=not tc.progress, desc="train tdmpc (online)", dynamic_ncols=True)
    info: dict[str, float] = {}
    postfix: dict[str, str] = {}
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
            log.write({"step": step, "episode": episode, "episode_return": ep_return, "episode_success": int(ep_success),
                       "time_s": round(time.perf_counter() - t0, 2), **info})
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
            info = {"loss": loss.item(), **info, **({"threads": threads} if threads is not None else {})}
        bar.update(1)
        if tc.eval_freq and step % tc.eval_freq == 0:
            policy.explore = False
            row = _eval_row(tc, policy, step, out, budget)
            eval_log.write(row)
            _report_eval(bar, postfix, row, out, _curve_title(tc))
            policy.explore = True
            policy.train()
            policy.reset()
        if step % tc.save_freq == 0 or step == tc.steps:
            last = save_checkpoint(out, step, policy, opt, sched, {"buffer": buffer, "episode": episode})
    bar.close()
    env.close()
    plot_run(out, title=_curve_title(tc))
    return last or checkpoint_dir(out, tc.steps)
