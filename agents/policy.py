"""The policy API shared by ACT, Diffusion Policy and TD-MPC (LeRobot's `PreTrainedPolicy` shape).

A checkpoint directory holds `config.json` (the policy's config dataclass plus its `type`),
`model.safetensors` (weights) and `normalization.safetensors` (dataset stats as flat
`"<feature>.<stat>"` tensors). Policies work in dataset (LeRobot) units on LeRobot-keyed batches;
`agents.env_io.EnvAdapter` converts env observations/actions at the boundary.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from twinarm.agents.features import (
    ACTION,
    ENV_STATE,
    IMAGE_PREFIX,
    STATE,
    Feature,
    features_from_json,
    features_to_json,
)
from twinarm.agents.normalize import MODE_STATS, Normalizer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
STATS_NAME = "normalization.safetensors"
#: A training run's layout: <run>/checkpoints/<step>/pretrained_model, and checkpoints/last naming the newest.
CHECKPOINTS_DIR = "checkpoints"
LAST_NAME = "last"
PRETRAINED_DIR = "pretrained_model"
#: Prefixes of a policy's normalizer buffers (the stats it carries beside its weights: LeRobot keeps them in its
#: processors, and --init-from takes the new dataset's instead).
NORMALIZER_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")


def last_step(last: Path) -> str:
    """The step folder's name `<run>/checkpoints/last` stands for: the link's target (as LeRobot's), or what the
    file says (twinarm's runs from before it made links, and filesystems without links)."""
    return os.readlink(last) if last.is_symlink() else last.read_text().strip()


def _through_last(src: Path) -> Path:
    """`<run>/checkpoints/last[/pretrained_model]`, as LeRobot users write it, as the path through the step folder
    `last` stands for (so the step is what gets printed): `last` is a link to it, as LeRobot's, or a file naming it
    (runs before twinarm made links, and filesystems without them)."""
    parts = src.parts
    for i in range(1, len(parts)):
        last = Path(*parts[: i + 1])
        if parts[i] == LAST_NAME and parts[i - 1] == CHECKPOINTS_DIR and (last.is_symlink() or last.is_file()):
            return Path(*parts[:i], last_step(last), *parts[i + 1 :])
    return src


def resolve_checkpoint(directory: str | Path) -> Path:
    """The `pretrained_model` folder that `directory` stands for: itself, a checkpoint step folder's, a
    training run directory's newest (the one its `checkpoints/last` names; `checkpoints/last` itself too), or a
    Hub model repo's (`user/name` or `user/name@revision` that is no local path: downloaded into the HF cache,
    `agents.policy_hub`)."""
    src = _through_last(Path(directory))
    if not src.exists():
        from twinarm.agents.policy_hub import fetch_policy, repo_id_of

        hub = repo_id_of(directory)
        if hub is not None:
            return fetch_policy(*hub)
    if (src / WEIGHTS_NAME).is_file():
        return src
    if (src / PRETRAINED_DIR / WEIGHTS_NAME).is_file():
        return src / PRETRAINED_DIR
    last = src / CHECKPOINTS_DIR / LAST_NAME
    if last.is_file() or last.is_symlink():
        newest = src / CHECKPOINTS_DIR / last_step(last) / PRETRAINED_DIR
        if (newest / WEIGHTS_NAME).is_file():
            return newest
        raise FileNotFoundError(f"{last} names {newest}, which holds no {WEIGHTS_NAME}")
    if src.is_file() and (src.parent / WEIGHTS_NAME).is_file():  # the weights file (or config.json) itself
        raise FileNotFoundError(f"{src} is a file of the checkpoint {src.parent}: pass that folder")
    what = "does not exist" if not src.exists() else f"holds no {WEIGHTS_NAME}"
    raise FileNotFoundError(
        f"{src} {what}: pass a policy checkpoint (a folder with {CONFIG_NAME} and {WEIGHTS_NAME}), a "
        f"checkpoint step folder, a training run directory or a Hub repo id (user/name)"
    )

C = TypeVar("C", bound="PolicyConfig")
P = TypeVar("P", bound="Policy")


class PolicyConfigError(ValueError):
    """A policy config that cannot be built: its fields contradict each other or the data's features."""


class ConfigOverrideError(PolicyConfigError):
    """A config override names no field of the policy's config, or gives a value of the wrong type."""


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON-decoded value can be a config field of type `hint` (lists stand for tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, list | tuple):
            return False
        item = args[0] if args and (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else None
        return item is None or all(_fits(v, item) for v in value)
    if hint is dict or origin is dict:
        return isinstance(value, dict)
    return True  # a type this check does not know: the config's own validation decides


def _type_name(hint: Any) -> str:
    """A field type as a `--set` error says it: "a whole number", "true or false", "a number or null"."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(
        hint, "a list" if typing.get_origin(hint) in (tuple, list) or hint in (tuple, list) else str(hint))


@dataclass
class PolicyConfig(abc.ABC):
    """Fields every policy has; subclasses add their architecture and optimizer defaults."""

    input_features: dict[str, Feature] = field(default_factory=dict)
    """Observation features (LeRobot keys -> kind and shape), from the arm spec or dataset metadata."""
    output_features: dict[str, Feature] = field(default_factory=dict)
    """Output features; always `{"action": Feature("ACTION", (dof,))}`."""
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "mean_std", "STATE": "mean_std", "ENV": "mean_std", "ACTION": "mean_std"}
    )
    """Normalization mode (`mean_std`, `min_max`, `identity`) per feature kind."""
    arm: str = "so101"
    """Arm spec name; fixes the unit conversion between env (SI) and dataset (LeRobot) values."""
    n_obs_steps: int = 1
    """Number of consecutive observations the policy conditions on."""
    optimizer_lr: float = 1e-4
    """Learning rate of AdamW."""
    optimizer_weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip_norm: float = 10.0
    """Gradient norm clip used by the training loop."""

    type: ClassVar[str] = ""

    # ----- derived views --------------------------------------------------------------------------
    @property
    def image_keys(self) -> list[str]:
        """Camera keys in `input_features` order, the order LeRobot's policies stack cameras in (Diffusion's
        conditioning concatenates them), so a LeRobot checkpoint listing `wrist` before `front` reads as written."""
        return [k for k in self.input_features if k.startswith(IMAGE_PREFIX)]

    @property
    def has_state(self) -> bool:
        return STATE in self.input_features

    @property
    def has_env_state(self) -> bool:
        return ENV_STATE in self.input_features

    @property
    def action_dim(self) -> int:
        return self.output_features[ACTION].shape[0]

    @property
    def state_dim(self) -> int:
        return self.input_features[STATE].shape[0] if self.has_state else 0

    @property
    def env_state_dim(self) -> int:
        return self.input_features[ENV_STATE].shape[0] if self.has_env_state else 0

    def observation_delta_indices(self) -> list[int]:
        """Frame offsets of the observations one training sample needs (for `delta_timestamps`)."""
        return list(range(1 - self.n_obs_steps, 1))

    @abc.abstractmethod
    def action_delta_indices(self) -> list[int]:
        """Frame offsets of the actions one training sample needs."""

    def validate(self) -> None:
        if ACTION not in self.output_features:
            raise PolicyConfigError("a policy needs an `action` output feature")
        if not self.input_features:
            raise PolicyConfigError("a policy needs at least one input feature")
        if bad := self.size_problems({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}):
            raise PolicyConfigError("; ".join(bad))

    #: Whole-number fields that may be 0 (TD-MPC plans without policy samples); every other one is a size or count.
    ZERO_OK: typing.ClassVar[frozenset[str]] = frozenset({"n_pi_samples"})

    @classmethod
    def size_problems(cls, values: Mapping[str, Any]) -> list[str]:
        """`FIELD=V: must be at least 1` for each size or count field (a whole-number field whose default is
        positive) given below 1: `dim_model=-4` failed as a torch error building an embedding (audit B9)."""
        out = []
        for f in dataclasses.fields(cls):
            value, default = values.get(f.name), f.default
            if (isinstance(default, int) and not isinstance(default, bool) and default > 0 and isinstance(value, int)
                    and not isinstance(value, bool) and value < (0 if f.name in cls.ZERO_OK else 1)):
                out.append(f"{f.name}={value}: must be at least {0 if f.name in cls.ZERO_OK else 1}")
        return out

    # ----- (de)serialization ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("input_features", "output_features"):
                value = features_to_json(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def check_overrides(cls, overrides: Mapping[str, Any]) -> None:
        """Raise ConfigOverrideError naming each override (`--set FIELD=VALUE`) that is no field of this config,
        offering the nearest names, or whose value is not of the field's type (text where a number goes)."""
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)} - {"input_features", "output_features"}
        bad = []
        for name, value in overrides.items():
            if name not in fields:
                near = difflib.get_close_matches(name, sorted(fields), n=3)
                bad.append(f"{name}: no such {cls.type} field" + (f" (did you mean {', '.join(near)}?)" if near else ""))
            elif not _fits(value, hints[name]):
                bad.append(f"{name}={json.dumps(value)}: expected {_type_name(hints[name])}")
        bad += cls.size_problems(overrides)
        if bad:
            raise ConfigOverrideError("; ".join(bad))

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        """The config a `to_dict` (a checkpoint's config.json) describes. PolicyConfigError names each field that is
        no field of this config (with the nearest names) or whose value is not of the field's type: a bare
        TypeError deep in `validate` or the network's constructor before."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        unknown = []
        for name in sorted(set(d) - set(known) - {"type"}):
            near = difflib.get_close_matches(name, sorted(known), n=3)
            unknown.append(name + (f" (did you mean {', '.join(near)}?)" if near else ""))
        bad = [f"no such {cls.type} field(s): {', '.join(unknown)}"] if unknown else []
        kwargs: dict[str, Any] = {}
        for name, value in d.items():
            if name == "type" or name not in known:
                continue
            if name in ("input_features", "output_features"):
                try:
                    value = features_from_json(value)
                except (AttributeError, KeyError, TypeError, ValueError) as exc:
                    bad.append(f"{name}: expected {{KEY: {{\"kind\": ..., \"shape\": [...]}}}} ({exc!r})")
                    continue
            elif not _fits(value, hints[name]):
                bad.append(f"{name}={json.dumps(value, default=str)}: expected {_type_name(hints[name])}")
                continue
            elif isinstance(value, list) and isinstance(known[name].default, tuple):
                value = tuple(value)
            kwargs[name] = value
        if bad:
            raise PolicyConfigError("; ".join(bad))
        return cls(**kwargs)


class Policy(nn.Module, abc.ABC):
    """Base class: normalization, save/load, and the select_action/forward/reset contract."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[PolicyConfig]] = PolicyConfig

    def __init__(self, config: PolicyConfig, stats: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        mapping = config.normalization_mapping
        shapes = {k: f.shape for k, f in {**config.input_features, **config.output_features}.items()}
        in_modes = {k: mapping.get(f.kind, "identity") for k, f in config.input_features.items()}
        out_modes = {k: mapping.get(f.kind, "identity") for k, f in config.output_features.items()}
        self.normalize_inputs = Normalizer(in_modes, shapes, stats)
        self.normalize_targets = Normalizer(out_modes, shapes, stats)
        self.unnormalize_outputs = Normalizer(out_modes, shapes, stats, inverse=True)

    # ----- contract ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Training loss on a dataset batch (dataset units, LeRobot keys) and scalar logs."""

    @abc.abstractmethod
    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        """The next action, shape (B, action_dim), in dataset units, for one observation step."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the action queue / observation history (call at every episode start)."""

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        """The env action for a twinarm env observation (one env's, or a vector env's with its leading axis): joint
        targets in SI units, clipped to the arm's limits, converted with the arm spec as `twinarm eval` converts.
        `select_action` is the same step on a LeRobot batch (dataset keys and units)."""
        from twinarm.agents.env_io import EnvAdapter
        from twinarm.arms import get_arm

        adapter = getattr(self, "_env_adapter", None)
        if adapter is None or adapter.device != self.device:
            adapter = self._env_adapter = EnvAdapter(get_arm(self.config.arm), self.config.input_features, self.device)
        return adapter.action_to_env(self.select_action(adapter.obs_to_batch(obs)), adapter.is_batched(obs))

    def check_inputs(self, batch: Mapping[str, Any]) -> None:
        """Raise ValueError naming the policy inputs a batch lacks (an env observation passed where a LeRobot batch
        goes is the usual case: `act` takes those)."""
        missing = [k for k in self.config.input_features if k not in batch]
        if missing:
            env_obs = "agent_pos" in batch or "pixels" in batch
            raise ValueError(f"the batch lacks the policy's input(s) {', '.join(missing)} (it has {', '.join(batch)})"
                             + ("; that is an env observation: policy.act(obs) converts it and returns the env's "
                                "action" if env_obs else ""))  # fmt: skip

    def check_queued(self, batch: Mapping[str, Any], queued: int) -> None:
        """On a call answered from the action queue: the inputs checked as on the call that filled it, and the
        batch size the queue holds (a queue of one env's actions used to answer a batch of three, or `{}`)."""
        self.check_inputs(batch)
        first = next((batch[k] for k in self.config.input_features if hasattr(batch[k], "shape")), None)
        if first is not None and first.shape[0] != queued:
            raise ValueError(f"a batch of {first.shape[0]} where the queued actions are for {queued}: call "
                             "policy.reset() when the number of envs changes")  # fmt: skip

    def get_optim_params(self) -> list[dict[str, Any]] | Any:
        return self.parameters()

    def load_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Set normalization stats (e.g. a dataset's `meta/stats.json`) after construction."""
        for norm in (self.normalize_inputs, self.normalize_targets, self.unnormalize_outputs):
            norm.load_stats(stats)

    def rescale_joint_units(self, factors: np.ndarray | Tensor) -> None:
        """Make the policy act in units `factors` times those it was trained in, per joint (`observation.state` and
        `action`): e.g. a checkpoint trained on LeRobot's -100..100 range-mode data, with
        `Calibration.degrees_per_range_unit`, then acts in degrees as twinarm's envs expect. Exact: only the
        normalization stats change (`Normalizer.rescale`), so the network sees the same numbers.

        A feature normalized with mode `identity` has no stats to carry the change (the network would be fed the new
        units as they are): refused (PolicyConfigError naming the feature and its mode), nothing changed."""
        scale = torch.as_tensor(np.asarray(factors, dtype=np.float32))
        kinds = {k: f.kind for k, f in {**self.config.input_features, **self.config.output_features}.items()}
        for key in ("observation.state", "action"):
            mode = next((n.modes[key] for n in (self.normalize_inputs, self.normalize_targets) if key in n.modes), None)
            if mode is not None and not MODE_STATS[mode]:
                raise PolicyConfigError(
                    f"rescale_joint_units (twinarm eval --lerobot-range-units): {key} has normalization mode "
                    f"{mode.value!r} (normalization_mapping {kinds[key]}), which has no stats to carry the unit change: "
                    "the network would read the joints in the new units. Convert the data instead (`twinarm dataset "
                    "convert-units`) and train on it")  # fmt: skip
        for norm in (self.normalize_inputs, self.normalize_targets, self.unnormalize_outputs):
            for key in ("observation.state", "action"):
                norm.rescale(key, scale)

    def normalization_stats(self) -> dict[str, Tensor]:
        return {**self.normalize_inputs.flat_stats(), **self.normalize_targets.flat_stats()}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ----- checkpoints ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config JSON, weights and normalization stats into `directory` (created if needed)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_NAME))
        save_file(self.normalization_stats(), str(out / STATS_NAME))
        return out

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
        """Publish this policy as Hub model repo `repo_id` (twinarm's layout, with a model card; LeRobot's layout:
        `agents.policy_hub.push_policy(policy, repo_id, lerobot=True)`); returns the repo URL."""
        from twinarm.agents.policy_hub import push_policy

        return push_policy(self, repo_id, private=private, token=token)

    @classmethod
    def from_pretrained(
        cls: type[P], directory: str | Path, map_location: str = "cpu", overrides: Mapping[str, Any] | None = None,
        rename: Mapping[str, str] | None = None, arm: str | None = None,
    ) -> P:
        """Load a checkpoint written by `save_pretrained` (or a run's newest, see `resolve_checkpoint`); on
        `Policy` it picks the class from `type`. A checkpoint in LeRobot's layout (LeRobot's own, `export-lerobot`,
        a `push-policy --lerobot` repo) is read by `lerobot_checkpoint.load_lerobot` for `arm` (its units are the
        arm's), which defaults to the arm of its training dataset when that dataset is on this machine.

        `overrides` replace config fields before the policy is built: inference settings such as
        `n_action_steps`, `num_inference_steps` or `temporal_ensemble_coeff` (a field that changes the
        architecture makes the strict weight load fail). `rename` gives cameras other keys, e.g.
        `{"observation.images.laptop": "observation.images.front"}` (see `camera_rename`; CameraRenameError).
        A damaged or inconsistent checkpoint (config.json cut short, a field unknown or of the wrong type, weights
        cut short or of another config) raises PolicyConfigError naming the file and field.
        """
        from twinarm.agents import camera_rename as cr

        src = resolve_checkpoint(directory)
        config_path = src / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{src} holds no {CONFIG_NAME}; is it a policy checkpoint directory?")
        from twinarm.agents.lerobot_checkpoint import is_lerobot_checkpoint

        if is_lerobot_checkpoint(src):
            return cls._from_lerobot(src, map_location, overrides, rename, arm)
        stored = _read_config(config_path)
        overrides = dict(overrides or {})
        rename = dict(rename or {})
        if rename:
            cr.check_camera_renames(stored.get("input_features", {}), rename, str(config_path))
            stored["input_features"] = cr.renamed_keys(stored["input_features"], rename)
        raw = {**stored, **overrides}
        klass: type[Policy] = cls
        if not cls.name:
            from twinarm.agents.registry import POLICIES, get_policy_class

            if raw.get("type") not in POLICIES:
                raise PolicyConfigError(f"{config_path}: \"type\" {raw.get('type')!r} is no twinarm policy "
                                        f"({', '.join(POLICIES)})")  # fmt: skip
            klass = get_policy_class(raw["type"])
        elif raw.get("type") not in (None, cls.name):
            raise ValueError(f"{src} holds a {raw.get('type')!r} policy, not {cls.name!r}")
        klass.config_class.check_overrides(overrides)
        try:  # the overrides were checked just above: what does not fit is the file's
            config = klass.config_class.from_dict(raw)
        except PolicyConfigError as exc:
            raise PolicyConfigError(f"{config_path}: {exc}{_other_type_hint(stored, klass.name)}") from None
        try:  # every weight comes from the checkpoint: no ImageNet file read
            policy = build_for_weights(klass, config)
        except PolicyConfigError as exc:
            said = ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
            raise PolicyConfigError(f"{config_path}{' with the override(s) ' + said if said else ''}: {exc}") from None
        if torch.device(map_location).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"map_location={map_location!r}: torch {torch.__version__} sees no CUDA device; "
                             "load with map_location='cpu'")  # fmt: skip
        weights = cr.renamed_weights(read_safetensors(src / WEIGHTS_NAME, device=map_location), rename)
        mismatch = _weights_mismatch(policy, weights)
        if mismatch:  # a raw load_state_dict dump of every mismatch before
            if changed := _overrides_at_fault(klass, stored, config, overrides, weights):
                raise ConfigOverrideError(f"{src}: {mismatch}; the override(s) {', '.join(changed)} change the "
                                          "architecture: only inference settings can be overridden")  # fmt: skip
            raise PolicyConfigError(f"{config_path} and {src / WEIGHTS_NAME} disagree: {mismatch} (was config.json "
                                    "edited, or copied from another checkpoint?)")  # fmt: skip
        policy.load_state_dict(weights, strict=True)
        stats = cr.renamed_stats(read_safetensors(src / STATS_NAME), rename)
        for norm in (policy.normalize_inputs, policy.normalize_targets, policy.unnormalize_outputs):
            norm.load_flat_stats(stats)
        policy.to(map_location)
        policy.eval()
        return policy  # type: ignore[return-value]

    @classmethod
    def _from_lerobot(
        cls: type[P], src: Path, map_location: str, overrides: Mapping[str, Any] | None,
        rename: Mapping[str, str] | None, arm: str | None,
    ) -> P:
        """`from_pretrained` of a checkpoint in LeRobot's layout (see there)."""
        from twinarm.agents.lerobot_checkpoint import load_lerobot, recorded_arm

        arm = arm or recorded_arm(src)
        if arm is None:
            raise PolicyConfigError(f"{src} is a LeRobot checkpoint, which does not say which arm it drives (its units "
                                    "are the arm's): pass arm=, e.g. Policy.from_pretrained(..., arm='so101')")  # fmt: skip
        policy = load_lerobot(src, arm=arm, overrides=dict(overrides or {}), rename=dict(rename or {}))
        if cls.name and policy.name != cls.name:
            raise ValueError(f"{src} holds a {policy.name!r} policy, not {cls.name!r}")
        return policy.to(map_location)  # type: ignore[return-value]


def _read_config(path: Path) -> dict[str, Any]:
    """A checkpoint's config.json as a dict; PolicyConfigError naming the file when it is no JSON object (cut short
    by a full disk, a failed copy, a hand edit)."""
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:  # json.JSONDecodeError, or bytes that are no UTF-8 text
        raise PolicyConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise PolicyConfigError(f"{path}: expected a JSON object of config fields, got {type(raw).__name__}")
    return raw


def read_safetensors(path: Path, device: str = "cpu") -> dict[str, Tensor]:
    """The tensors of a checkpoint's `.safetensors` file; PolicyConfigError naming it when it is damaged (safetensors
    says only "header too small" or "incomplete metadata")."""
    try:
        return load_file(str(path), device=device)
    except SafetensorError as exc:
        raise PolicyConfigError(f"{path} is damaged ({exc}): the file is cut short or is no safetensors file "
                                "(a full disk or a failed copy?)") from None  # fmt: skip


def _other_type_hint(stored: Mapping[str, Any], kind: str) -> str:
    """A hint when every field of a config.json whose `type` says `kind` is another policy's (a config copied from
    another checkpoint, or `type` edited): "; its fields are act's, ..."; else ""."""
    from twinarm.agents.registry import POLICIES, get_config_class

    names = set(stored) - {"type"}
    for other in POLICIES:
        if other != kind and names <= {f.name for f in dataclasses.fields(get_config_class(other))}:
            return f"; its fields are {other}'s, not {kind}'s: is its \"type\" wrong?"
    return ""


def _weights_mismatch(policy: nn.Module, weights: Mapping[str, Tensor]) -> str | None:
    """How `weights` do not fit `policy` (shapes that differ, then names on one side only), or None: said in a line,
    where a strict `load_state_dict` dumps every mismatch."""
    own = policy.state_dict()
    reshaped = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
    if reshaped:
        k = reshaped[0]
        return (f"{len(reshaped)} weight(s) change shape (e.g. {k}: {tuple(weights[k].shape)} saved, "
                f"{tuple(own[k].shape)} built)")  # fmt: skip
    missing, unexpected = [k for k in own if k not in weights], [k for k in weights if k not in own]
    said = [f"{len(missing)} weight(s) the config builds are not saved (e.g. {missing[0]})"] if missing else []
    said += [f"{len(unexpected)} saved weight(s) have no place in it (e.g. {unexpected[0]})"] if unexpected else []
    return "; ".join(said) or None


def _overrides_at_fault(klass: type[Policy], stored: Mapping[str, Any], config: PolicyConfig,
                        overrides: Mapping[str, Any], weights: Mapping[str, Tensor]) -> list[str]:  # fmt: skip
    """The overrides that changed the config, when the weights fit the checkpoint's own config (`stored`) and so
    the overrides made them not fit; [] when the file's config itself does not fit its weights."""
    try:
        own = klass.config_class.from_dict(stored)
    except PolicyConfigError:  # an override replaced a field the file got wrong: the override decides
        own = None
    changed = [k for k in overrides if own is None or getattr(own, k) != getattr(config, k)]
    if not changed or own is None:
        return changed
    try:
        fits = _weights_mismatch(build_for_weights(klass, own), weights) is None
    except PolicyConfigError:  # the file's config alone is invalid: the overrides made it buildable
        fits = True
    return changed if fits else []


#: Config fields naming a file read only to initialize weights (the ImageNet ResNet-18 `pretrained_backbone_weights`
#: that training starts from): a policy about to receive a checkpoint's weights is built without reading them.
INIT_ONLY_FIELDS = ("pretrained_backbone_weights",)


def build_for_weights(klass: type[P], config: PolicyConfig, stats: Mapping[str, Mapping[str, Any]] | None = None) -> P:
    """`klass(config, stats)` for a policy whose weights are all loaded next (`Policy.from_pretrained`, `train
    --init-from`): built without reading the files in `INIT_ONLY_FIELDS`, which the checkpoint's trained weights
    replace and which need not exist where it is loaded (another machine, the Hub). The config keeps the recorded
    value (where training started from); only its file is not read."""
    names = {f.name for f in dataclasses.fields(config)}
    held = {n: getattr(config, n) for n in INIT_ONLY_FIELDS if n in names and getattr(config, n) is not None}
    if not held:
        return klass(config, stats)
    policy = klass(dataclasses.replace(config, **dict.fromkeys(held)), stats)
    for name, value in held.items():  # the policy's modules hold this same config object
        setattr(policy.config, name, value)
    return policy


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
