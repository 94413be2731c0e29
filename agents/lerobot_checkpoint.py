"""LeRobot checkpoints in twinarm: a `pretrained_model/` folder written by LeRobot (0.6: `config.json`,
`model.safetensors`, the normalizer's stats in `policy_preprocessor_step_*_normalizer_processor.safetensors`)
loaded as the twinarm policy with the same architecture, weights and normalization, so a policy trained with
LeRobot is evaluated in twinarm's sim and deployed through its real envs unchanged.

ACT, Diffusion Policy and TD-MPC: the networks are the same on both sides (parameter for parameter); only the
names differ (`lerobot_names`). Units: LeRobot checkpoints work in their dataset's units, and twinarm maps those
to the arm's joints by the arm spec's conversion (degrees, gripper 0..100): a policy trained on data recorded in
LeRobot's -100..100 range mode for body joints (`use_degrees=False`) would be driven wrongly unless rescaled
(`Policy.rescale_joint_units`, `twinarm eval --lerobot-range-units`; `twinarm dataset convert-units` converts
such a dataset to degrees).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from twinarm.agents.features import IMAGE_PREFIX, Feature
from twinarm.agents.lerobot_names import twinarm_name
from twinarm.agents.policy import CONFIG_NAME, NORMALIZER_PREFIXES, STATS_NAME, WEIGHTS_NAME, Policy

PREPROCESSOR = "policy_preprocessor.json"
POSTPROCESSOR = "policy_postprocessor.json"
#: The one camera key LeRobot 0.6's TD-MPC plans from.
TDMPC_IMAGE_KEY = "observation.image"
#: The BatchNorm buffer that counts training steps (no effect on outputs), which LeRobot's frozen norms never keep.
BATCH_COUNTER = ".num_batches_tracked"
#: LeRobot fields about where and how it ran or was published: not part of the policy.
_RUNTIME_FIELDS = {"type", "device", "use_amp", "use_peft", "push_to_hub", "repo_id", "private", "tags", "license",
                   "pretrained_path", "pretrained_revision"}  # fmt: skip


@dataclass(frozen=True)
class _Reader:
    """How one LeRobot policy type maps onto twinarm's."""

    #: LeRobot config fields twinarm can honour only at one value.
    fixed: dict[str, Any]
    #: LeRobot training-side fields with no twinarm counterpart (they do not change the network or inference).
    ignored: frozenset[str]
    #: Buffers LeRobot saves and twinarm recomputes (fixed sinusoids, coordinate grids): full-key patterns.
    dropped: tuple[str, ...]
    #: twinarm config fields every import sets, whatever LeRobot's config says (LeRobot builds them so).
    preset: dict[str, Any]


_READERS = {
    "act": _Reader(fixed={"replace_final_stride_with_dilation": False}, ignored=frozenset(),
                   dropped=(r"^model\.vae_encoder_pos_enc$",), preset={"backbone_norm": "frozen_batch_norm"}),
    "diffusion": _Reader(
        fixed={"resize_shape": None, "crop_ratio": 1.0},
        ignored=frozenset({"drop_n_last_frames", "gradient_checkpointing", "compile_model", "compile_mode",
                           "optimizer_eps", "scheduler_name", "scheduler_warmup_steps"}),
        dropped=(r"^diffusion\.rgb_encoder\.(\d+\.)?pool\.pos_grid$",),
        preset={"use_clipped_model_output": False},  # LeRobot samples with diffusers' default
    ),  # fmt: skip
    "tdmpc": _Reader(fixed={}, ignored=frozenset(), dropped=(), preset={}),
}
#: The policy types read.
SUPPORTED = tuple(_READERS)


class LeRobotCheckpointError(ValueError):
    """A LeRobot checkpoint twinarm cannot read; the message names the file and the field at fault."""


def is_lerobot_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` is a policy folder written by LeRobot (its normalizer in processor files, no
    twinarm `normalization.safetensors`)."""
    d = Path(directory)
    return (d / CONFIG_NAME).is_file() and (d / PREPROCESSOR).is_file() and not (d / STATS_NAME).is_file()


def recorded_arm(directory: str | Path) -> str | None:
    """The twinarm arm whose recordings trained the LeRobot checkpoint in `directory`, when that dataset is on this
    machine: its train_config.json's `dataset.root`, or `dataset.repo_id` in LeRobot's local dataset folder, and
    that dataset's `robot_type`. None when any of it is missing (a Hub checkpoint, data kept elsewhere): the
    checkpoint itself does not say which arm it drives."""
    from twinarm.arms import arm_for_robot_type
    from twinarm.datasets_io.layout import INFO_PATH, lerobot_home

    try:
        dataset = json.loads((Path(directory) / "train_config.json").read_text()).get("dataset") or {}
        places = [Path(dataset["root"])] if isinstance(dataset.get("root"), str) else []
        if isinstance(dataset.get("repo_id"), str):
            places.append(lerobot_home() / dataset["repo_id"])
        info = next((p / INFO_PATH for p in places if (p / INFO_PATH).is_file()), None)
        robot = json.loads(info.read_text()).get("robot_type") if info is not None else None
    except (OSError, ValueError, AttributeError):
        return None
    arm = arm_for_robot_type(robot)
    return arm.name if arm is not None else None


def load_lerobot(
    directory: str | Path, arm: str = "so101", overrides: dict[str, Any] | None = None,
    rename: dict[str, str] | None = None, notes: bool = True,
) -> Policy:
    """The twinarm policy equal to the LeRobot checkpoint in `directory`, for `arm` (see the module's note on
    units); `overrides` set inference fields of twinarm's config, as `Policy.from_pretrained`'s do; `rename`
    maps LeRobot feature keys to twinarm's (a camera must be `observation.images.<camera>` of the env, e.g.
    LeRobot TD-MPC's `observation.image` -> `observation.images.front`), like LeRobot's own rename map; where
    the checkpoint's preprocessor renames an env camera onto such a camera feature (twinarm's TD-MPC exports do),
    that is the default. `notes`: print what is read otherwise than its files say (input features LeRobot
    leaves unnormalized for want of stats)."""
    from twinarm.agents.registry import get_policy_class

    src = Path(directory)
    raw = _read_json(src / CONFIG_NAME)
    kind = raw.get("type")
    if kind not in _READERS:
        raise LeRobotCheckpointError(f"{src / CONFIG_NAME}: policy type {kind!r}; twinarm reads LeRobot's "
                                     f"{', '.join(SUPPORTED)} checkpoints")  # fmt: skip
    klass = get_policy_class(kind)
    config = _config(raw, src / CONFIG_NAME, _READERS[kind], klass.config_class, arm)
    cameras = [k for k, f in config["input_features"].items() if f.kind == "VISUAL"]
    renamed = _renamed(config, {**_processor_renames(src, config), **dict(rename or {})}, src / CONFIG_NAME)
    klass.config_class.check_overrides(overrides or {})  # a ConfigOverrideError names the field and the fix
    stats = {renamed.get(k, k): v for k, v in _stats(src, config, notes).items()}
    config["input_features"] = {renamed.get(k, k): f for k, f in config["input_features"].items()}
    policy = klass(klass.config_class(**{**config, **dict(overrides or {})}), stats)
    state = load_file(str(src / WEIGHTS_NAME))
    if kind == "diffusion" and raw.get("use_separate_rgb_encoder_per_camera", True) and len(cameras) == 1:
        # One camera's own encoder (a one-element list, LeRobot's default) is twinarm's single encoder.
        state = {k.replace("diffusion.rgb_encoder.0.", "diffusion.rgb_encoder.", 1): v for k, v in state.items()}
    mapped = _weights(state, kind, _READERS[kind], policy, src / WEIGHTS_NAME)
    policy.load_state_dict(mapped, strict=False)
    return policy.eval()


def _renamed(config: dict[str, Any], rename: dict[str, str], path: Path) -> dict[str, str]:
    """`rename` checked against the checkpoint's input features; every camera must end up under IMAGE_PREFIX."""
    features = config["input_features"]
    unknown = sorted(set(rename) - set(features))
    if unknown:
        raise LeRobotCheckpointError(f"rename {unknown}: not input features of {path} ({', '.join(features)})")
    for key, feature in features.items():
        new = rename.get(key, key)
        if feature.kind == "VISUAL" and not new.startswith(IMAGE_PREFIX):
            raise LeRobotCheckpointError(
                f"{path}: camera feature {key!r} is not a key twinarm's envs provide ({IMAGE_PREFIX}<camera>): "
                f"rename it to the env camera it saw, e.g. eval --rename-feature {key}={IMAGE_PREFIX}front"
            )
    return rename


def _processor_renames(src: Path, config: dict[str, Any]) -> dict[str, str]:
    """Camera feature outside IMAGE_PREFIX -> the env camera (`observation.images.<camera>`) LeRobot's preprocessor
    renames onto it: its rename step read backwards, for the features twinarm could not feed otherwise."""
    out: dict[str, str] = {}
    for step in _read_json(src / PREPROCESSOR).get("steps", []):
        if step.get("registry_name") == "rename_observations_processor":
            out.update({new: old for old, new in (step.get("config") or {}).get("rename_map", {}).items()})
    features = config["input_features"]
    return {k: v for k, v in out.items() if k in features and features[k].kind == "VISUAL"
            and not k.startswith(IMAGE_PREFIX) and str(v).startswith(IMAGE_PREFIX)}  # fmt: skip


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LeRobotCheckpointError(f"{path}: {exc}") from exc


def _features(raw: dict[str, Any], path: Path, field: str) -> dict[str, Feature]:
    try:
        return {k: Feature(str(v["type"]), tuple(int(n) for n in v["shape"])) for k, v in raw[field].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise LeRobotCheckpointError(f"{path}: {field}: not LeRobot's {{key: {{type, shape}}}} form ({exc})") from exc


def _config(raw: dict[str, Any], path: Path, reader: _Reader, config_class: type, arm: str) -> dict[str, Any]:
    known = set(config_class.__dataclass_fields__)
    config: dict[str, Any] = {"arm": arm}
    for name, value in raw.items():
        if name in _RUNTIME_FIELDS or name in reader.ignored:
            continue
        if name in reader.fixed:
            if value != reader.fixed[name]:
                raise LeRobotCheckpointError(f"{path}: {name}={value!r}; twinarm's {raw['type']} supports only "
                                             f"{reader.fixed[name]!r}")  # fmt: skip
            continue
        if name in ("input_features", "output_features"):
            config[name] = _features(raw, path, name)
        elif name == "normalization_mapping":
            config[name] = {kind: str(mode).lower() for kind, mode in value.items()}
        elif name == "pretrained_backbone_weights":
            config[name] = None  # the checkpoint holds the trained backbone; nothing to download or load
        elif name in known:
            field = config_class.__dataclass_fields__[name]
            config[name] = tuple(value) if isinstance(value, list) and isinstance(field.default, tuple) else value
        else:
            raise LeRobotCheckpointError(f"{path}: field {name!r} has no counterpart in twinarm's {raw['type']}")
    return {**config, **reader.preset}


def _stats(src: Path, config: dict[str, Any], notes: bool = True) -> dict[str, dict[str, Any]]:
    """Per-feature stats from the checkpoint's normalizer and unnormalizer state files. An input feature its
    normalizer has no stats for (a checkpoint trained with LeRobot's `--rename_map` keeps the dataset's camera
    keys' stats, not the policy's) gets identity stats, as LeRobot leaves it unnormalized, with a printed note
    (`notes`); an action without stats, or no stats at all, is an error."""
    flat: dict[str, torch.Tensor] = {}
    for name in (PREPROCESSOR, POSTPROCESSOR):
        pipeline = _read_json(src / name) if (src / name).is_file() else {"steps": []}
        for step in pipeline.get("steps", []):
            if step.get("state_file") and "normalizer" in str(step.get("registry_name", "")):
                flat.update(load_file(str(src / step["state_file"])))
    stats: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        feature, _, stat = key.rpartition(".")
        stats.setdefault(feature, {})[stat] = value.numpy()
    features = {**config["input_features"], **config["output_features"]}
    modes = config.get("normalization_mapping", {})
    missing = [k for k, f in features.items() if k not in stats and modes.get(f.kind) != "identity"]
    skipped = [k for k in missing if k in config["input_features"]] if stats else []
    missing = [k for k in missing if k not in skipped]
    if missing:
        raise LeRobotCheckpointError(f"{src / PREPROCESSOR}: no normalization stats for {missing}")
    out = {k: stats[k] for k in features if k in stats}
    if skipped:  # LeRobot's normalizer passes a feature it has no stats for through as it is, in training and eval
        out.update({k: _identity_stats(features[k].shape) for k in skipped})
        if notes:
            print(_skipped_note(src, skipped, sorted(set(stats) - set(features))))
    return out


def _identity_stats(shape: tuple[int, ...]) -> dict[str, Any]:
    """Stats under which twinarm's normalizer leaves a feature as it is (exactly, in float32: mean 0 and std 1, or
    min -1 and max 1; an image's per channel), as twinarm's Normalizer starts before stats are loaded."""
    size = (shape[0], 1, 1) if len(shape) == 3 else shape
    return {"mean": np.zeros(size, np.float32), "std": np.ones(size, np.float32),
            "min": -np.ones(size, np.float32), "max": np.ones(size, np.float32)}  # fmt: skip


def _skipped_note(src: Path, skipped: list[str], others: list[str]) -> str:
    """The note for input features read unnormalized: which, why, and the training's rename map where saved."""
    train = src / "train_config.json"
    rename = None
    if train.is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            rename = json.loads(train.read_text()).get("rename_map")
    why = f"its stats are under {others}" if others else "it has no stats for them"
    said = f" (trained with rename_map {json.dumps(rename)}, {train.name})" if rename else ""
    return (f"normalization: {src}: {skipped} left unnormalized, as LeRobot runs this checkpoint (its "
            f"normalizer skips features without stats): {why}{said}")


def _weights(
    state: dict[str, torch.Tensor], kind: str, reader: _Reader, policy: Policy, path: Path
) -> dict[str, torch.Tensor]:
    """LeRobot's tensors under twinarm's names; LeRobotCheckpointError unless they fill every twinarm weight."""
    image_key = next(iter(policy.config.image_keys), None)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if any(re.match(p, key) for p in reader.dropped):
            continue
        out[twinarm_name(key, kind, image_key)] = value
    wanted = {k: v.shape for k, v in policy.state_dict().items() if not k.startswith(NORMALIZER_PREFIXES)}
    # A BatchNorm's step counter, on either side alone, is ignored, as LeRobot's from_pretrained does (its
    # FrozenBatchNorm2d drops it; twinarm's own exports of a batch_norm backbone wrote it before): it counts
    # training steps and changes no output.
    out = {k: v for k, v in out.items() if k in wanted or not k.endswith(BATCH_COUNTER)}
    wanted = {k: v for k, v in wanted.items() if k in out or not k.endswith(BATCH_COUNTER)}
    missing = sorted(set(wanted) - set(out))
    extra = sorted(set(out) - set(wanted))
    if missing or extra:
        raise LeRobotCheckpointError(f"{path}: its tensors do not make twinarm's {kind}: missing {missing[:5]}, "
                                     f"unexpected {extra[:5]}" + (" (and more)" if len(missing) + len(extra) > 10 else ""))  # fmt: skip
    wrong = [k for k, shape in wanted.items() if out[k].shape != shape]
    if wrong:
        raise LeRobotCheckpointError(f"{path}: {wrong[0]} has shape {tuple(out[wrong[0]].shape)}, twinarm's "
                                     f"{tuple(wanted[wrong[0]])}")  # fmt: skip
    return out
