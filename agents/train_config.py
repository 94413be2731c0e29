"""`TrainConfig`, one training run's settings (saved beside it as `train_config.json`), and how
`--resume` squares a new config with the run folder's own."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from twinarm.agents.checkpoints import last_checkpoint
from twinarm.agents.policy import PolicyConfigError


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
    frame_cache_mb: int = 1024
    """Bound of the decoded-frame cache of the dataset reader, per process (each DataLoader worker holds its own)."""
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


def sim_kwargs(tc: TrainConfig) -> dict[str, Any]:
    """The gym.make kwargs that shape the sim world of online training and evaluation: randomization, dynamics,
    camera poses."""
    shaping = (("randomization", tc.randomization), ("dynamics", tc.dynamics), ("camera_poses", tc.camera_poses))
    return {k: v for k, v in shaping if v is not None}


def _read_saved(path: Path, ckpt: Path) -> dict[str, Any]:
    """A run's train_config.json; PolicyConfigError naming it when it is no JSON object (cut short, overwritten),
    and saying how to resume anyway: the policy's config is checkpoint `ckpt`'s own, this file only checks flags."""
    try:
        saved = json.loads(path.read_text())
    except ValueError as exc:  # json.JSONDecodeError, or bytes that are no UTF-8 text
        said = str(exc)
    else:
        if isinstance(saved, dict):
            return saved
        said = f"a JSON {type(saved).__name__}, not an object"
    raise PolicyConfigError(f"--resume: {path} cannot be read ({said}); checkpoint {ckpt.name} keeps the policy's "
                            f"config: move {path.name} out of {path.parent} (or delete it) and --resume again to "
                            "continue with this command's settings, or name a new --output-dir")  # fmt: skip


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
    if (ckpt := last_checkpoint(out)) is None:
        return tc, f"--resume: no checkpoint under {out}; starting a new run there"
    saved_file = out / "train_config.json"
    if not saved_file.is_file():
        return tc, None
    saved = _read_saved(saved_file, ckpt)
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
