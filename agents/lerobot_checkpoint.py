"""LeRobot checkpoints in twinarm: a `pretrained_model/` folder written by LeRobot (0.6: `config.json`,
`model.safetensors`, the normalizer's stats in `policy_preprocessor_step_*_normalizer_processor.safetensors`)
loaded as the twinarm policy with the same architecture, weights and normalization, so a policy trained with
LeRobot is evaluated in twinarm's sim and deployed through its real envs unchanged.

ACT's networks are the same on both sides (parameter for parameter); only the names differ. Units: LeRobot
checkpoints work in their dataset's units, and twinarm maps those to the arm's joints by the arm spec's
conversion (degrees, gripper 0..100): a policy trained on data recorded in other units (LeRobot's default
-100..100 range for body joints) would be driven wrongly, so `--arm` must name an arm whose units the data used.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from twinarm.agents.features import Feature
from twinarm.agents.policy import CONFIG_NAME, STATS_NAME, WEIGHTS_NAME, Policy

PREPROCESSOR = "policy_preprocessor.json"
#: The policy types read so far.
SUPPORTED = ("act",)

#: LeRobot ACT parameter names -> twinarm's, first match wins (applied to the name after "model.").
_ACT_NAMES = [
    (r"^vae_encoder_cls_embed\.", "vae_cls."),
    (r"^vae_encoder_robot_state_input_proj\.", "vae_state_proj."),
    (r"^vae_encoder_action_input_proj\.", "vae_action_proj."),
    (r"^vae_encoder_latent_output_proj\.", "vae_latent_proj."),
    (r"^vae_encoder\.layers\.(\d+)\.", r"vae_encoder.\1."),
    (r"^encoder\.layers\.(\d+)\.", r"encoder.\1."),
    (r"^encoder\.norm\.", "encoder_norm."),
    (r"^decoder\.layers\.(\d+)\.multihead_attn\.", r"decoder.\1.cross_attn."),
    (r"^decoder\.layers\.(\d+)\.", r"decoder.\1."),
    (r"^decoder\.norm\.", "decoder_norm."),
    (r"^encoder_robot_state_input_proj\.", "state_proj."),
    (r"^encoder_env_state_input_proj\.", "env_state_proj."),
    (r"^encoder_latent_input_proj\.", "latent_proj."),
    (r"^encoder_img_feat_input_proj\.", "img_proj."),
    (r"^encoder_1d_feature_pos_embed\.", "pos_1d."),
    (r"^decoder_pos_embed\.", "query_pos."),
]
#: LeRobot ACT buffers twinarm recomputes (fixed sinusoids), dropped on import.
_ACT_DROPPED = ("vae_encoder_pos_enc",)
#: LeRobot ACT config fields with no twinarm counterpart, and the only value twinarm can honour.
_ACT_FIXED = {"replace_final_stride_with_dilation": False}
#: LeRobot fields about where and how it ran or was published: not part of the policy.
_RUNTIME_FIELDS = {"device", "use_amp", "use_peft", "push_to_hub", "repo_id", "private", "tags", "license",
                   "pretrained_path", "pretrained_revision"}  # fmt: skip


class LeRobotCheckpointError(ValueError):
    """A LeRobot checkpoint twinarm cannot read; the message names the file and the field at fault."""


def is_lerobot_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` is a policy folder written by LeRobot (its normalizer in processor files, no
    twinarm `normalization.safetensors`)."""
    d = Path(directory)
    return (d / CONFIG_NAME).is_file() and (d / PREPROCESSOR).is_file() and not (d / STATS_NAME).is_file()


def load_lerobot(directory: str | Path, arm: str = "so101", overrides: dict[str, Any] | None = None) -> Policy:
    """The twinarm policy equal to the LeRobot checkpoint in `directory`, for `arm` (see the module's note on
    units); `overrides` set inference fields of twinarm's config, as `Policy.from_pretrained`'s do."""
    src = Path(directory)
    raw = _read_json(src / CONFIG_NAME)
    kind = raw.get("type")
    if kind not in SUPPORTED:
        raise LeRobotCheckpointError(f"{src / CONFIG_NAME}: policy type {kind!r}; twinarm reads LeRobot's "
                                     f"{', '.join(SUPPORTED)} checkpoints")  # fmt: skip
    from twinarm.agents.registry import make_policy

    config = _act_config(raw, src / CONFIG_NAME, arm)
    from twinarm.agents.act.config_act import ACTConfig

    unknown = sorted(set(overrides or {}) - set(ACTConfig.__dataclass_fields__))
    if unknown:
        raise LeRobotCheckpointError(f"overrides {unknown}: no such field in twinarm's ACT config")
    policy = make_policy(kind, stats=_stats(src, config), **{**config, **dict(overrides or {})})
    state = load_file(str(src / WEIGHTS_NAME))
    policy.model.load_state_dict(_act_weights(state, src / WEIGHTS_NAME), strict=True)
    return policy.eval()


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


def _act_config(raw: dict[str, Any], path: Path, arm: str) -> dict[str, Any]:
    from twinarm.agents.act.config_act import ACTConfig

    known = set(ACTConfig.__dataclass_fields__)
    config: dict[str, Any] = {"arm": arm, "backbone_norm": "frozen_batch_norm"}  # LeRobot's ACT freezes them
    for name, value in raw.items():
        if name in ("type", *_RUNTIME_FIELDS):
            continue
        if name in _ACT_FIXED:
            if value != _ACT_FIXED[name]:
                raise LeRobotCheckpointError(f"{path}: {name}={value!r}; twinarm's ACT supports only "
                                             f"{_ACT_FIXED[name]!r}")  # fmt: skip
            continue
        if name in ("input_features", "output_features"):
            config[name] = _features(raw, path, name)
        elif name == "normalization_mapping":
            config[name] = {kind: str(mode).lower() for kind, mode in value.items()}
        elif name in known:
            config[name] = value
        else:
            raise LeRobotCheckpointError(f"{path}: field {name!r} has no counterpart in twinarm's ACT")
    return config


def _stats(src: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-feature stats from the checkpoint's normalizer and unnormalizer state files."""
    flat: dict[str, torch.Tensor] = {}
    for name in (PREPROCESSOR, "policy_postprocessor.json"):
        pipeline = _read_json(src / name) if (src / name).is_file() else {"steps": []}
        for step in pipeline.get("steps", []):
            if step.get("state_file") and "normalizer" in str(step.get("registry_name", "")):
                flat.update(load_file(str(src / step["state_file"])))
    stats: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        feature, _, stat = key.rpartition(".")
        stats.setdefault(feature, {})[stat] = value.numpy()
    wanted = [*config["input_features"], *config["output_features"]]
    missing = [k for k in wanted if k not in stats]
    if missing:
        raise LeRobotCheckpointError(f"{src / PREPROCESSOR}: no normalization stats for {missing}")
    return {k: stats[k] for k in wanted}


def _act_weights(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith("model."):
            raise LeRobotCheckpointError(f"{path}: unexpected tensor {key!r} (LeRobot's ACT keeps all under model.)")
        name = key.removeprefix("model.")
        if name in _ACT_DROPPED:
            continue
        for pattern, repl in _ACT_NAMES:
            if re.match(pattern, name):
                name = re.sub(pattern, repl, name)
                break
        out[name] = value
    return out
