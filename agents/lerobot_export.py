"""twinarm policies saved as LeRobot checkpoints: the reverse of `lerobot_checkpoint`, so a policy trained in
twinarm loads with LeRobot 0.6's `PreTrainedPolicy.from_pretrained` and `make_pre_post_processors(...,
pretrained_path=...)` (its evaluation, async inference server, the Hub).

Written: `config.json` with the fields LeRobot 0.6.1 knows (LeRobot-only ones set to what twinarm's network is),
`model.safetensors` under LeRobot's parameter names, and the pre/post-processor pipelines with the normalization
stats. Each twinarm weight's LeRobot name is checked to read back to it (`lerobot_checkpoint`'s mapping).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from twinarm.agents.lerobot_checkpoint import (
    POSTPROCESSOR,
    PREPROCESSOR,
    TDMPC_IMAGE_KEY,
    LeRobotCheckpointError,
)
from twinarm.agents.lerobot_names import lerobot_name, twinarm_name
from twinarm.agents.policy import CONFIG_NAME, NORMALIZER_PREFIXES, WEIGHTS_NAME, Policy

#: The Diffusion config field whose True value (DDIM only) LeRobot cannot sample with.
CLIPPED_DDIM = "use_clipped_model_output"
NORMALIZER_STATE = "policy_preprocessor_step_3_normalizer_processor.safetensors"
UNNORMALIZER_STATE = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
EPS = 1e-8  # LeRobot's normalizer epsilon, the same as twinarm's

#: The policy config fields of LeRobot 0.6.1 (from configs it saved), per type; twinarm writes those it shares.
LEROBOT_FIELDS = {
    "act": {"chunk_size", "dim_feedforward", "dim_model", "dropout", "feedforward_activation", "kl_weight",
            "latent_dim", "n_action_steps", "n_decoder_layers", "n_encoder_layers", "n_heads", "n_obs_steps",
            "n_vae_encoder_layers", "optimizer_lr", "optimizer_lr_backbone", "optimizer_weight_decay", "pre_norm",
            "temporal_ensemble_coeff", "use_vae", "vision_backbone"},
    "diffusion": {"beta_end", "beta_schedule", "beta_start", "clip_sample", "clip_sample_range", "crop_is_random",
                  "crop_shape", "diffusion_step_embed_dim", "do_mask_loss_for_padding", "down_dims", "horizon",
                  "kernel_size", "n_action_steps", "n_groups", "n_obs_steps", "noise_scheduler_type",
                  "num_inference_steps", "num_train_timesteps", "optimizer_betas", "optimizer_lr",
                  "optimizer_weight_decay", "prediction_type", "spatial_softmax_num_keypoints",
                  "use_film_scale_modulation", "use_group_norm", "vision_backbone"},
    "tdmpc": {"advantage_scaling", "cem_iterations", "consistency_coeff", "discount", "elite_weighting_temperature",
              "expectile_weight", "gaussian_mean_momentum", "horizon", "image_encoder_hidden_dim", "latent_dim",
              "max_random_shift_ratio", "max_std", "min_std", "mlp_dim", "n_action_repeats", "n_action_steps",
              "n_elites", "n_gaussian_samples", "n_obs_steps", "n_pi_samples", "optimizer_lr", "pi_coeff",
              "q_ensemble_size", "reward_coeff", "state_encoder_hidden_dim", "target_model_momentum",
              "temporal_decay_coeff", "uncertainty_regularizer_coeff", "use_mpc", "value_coeff"},
}  # fmt: skip
#: LeRobot-only fields, written with the value that makes LeRobot build twinarm's network (the weights are in
#: the checkpoint: nothing to download).
LEROBOT_PRESETS = {
    "act": {"pretrained_backbone_weights": None, "replace_final_stride_with_dilation": False},
    "diffusion": {"pretrained_backbone_weights": None, "resize_shape": None, "crop_ratio": 1.0},
    "tdmpc": {},
}  # fmt: skip
#: twinarm buffers LeRobot's network of that type does not have, left out so the export's tensors are exactly
#: LeRobot's: ACT's backbone uses FrozenBatchNorm2d, which keeps no `num_batches_tracked` (twinarm's default
#: `backbone_norm=batch_norm` does; it only counts training steps and changes no output).
NOT_IN_LEROBOT = {"act": re.compile(r"(^|\.)num_batches_tracked$")}


def save_lerobot(policy: Policy, directory: str | Path, lerobot_ddim: bool = False) -> Path:
    """Write `policy` into `directory` as LeRobot 0.6 saves a `pretrained_model/`; returns the directory.

    LeRobot samples Diffusion's DDIM with the noise estimate as the model gave it: a DDIM policy with
    `use_clipped_model_output=True` (twinarm's default) is refused unless set to False first, or switched to
    LeRobot's sampler by `lerobot_ddim` (which sets it on `policy`), since LeRobot would otherwise sample a
    (slightly) different policy. DDPM (twinarm's default scheduler) steps from the clean-sample estimate alone, in
    twinarm as in diffusers' DDPMScheduler (whose step has no such option), so it is exported whatever the flag. LeRobot 0.6's TD-MPC plans only from a camera keyed
    `observation.image` (under any other name its `select_action` fails), so TD-MPC's camera is written under
    that key, and the preprocessor's rename step maps the env's camera onto it (as LeRobot's own rename map)."""
    kind = policy.name
    if kind not in LEROBOT_FIELDS:
        raise LeRobotCheckpointError(f"{kind!r}: LeRobot checkpoints are written for {', '.join(LEROBOT_FIELDS)}")
    cfg = policy.config
    if kind == "diffusion" and lerobot_ddim:
        cfg.use_clipped_model_output = False
    if kind == "diffusion" and cfg.noise_scheduler_type == "DDIM" and cfg.use_clipped_model_output:
        raise LeRobotCheckpointError(
            f"DDIM with {CLIPPED_DDIM}=True (twinarm's default): twinarm's DDIM takes its noise estimate from the "
            "clipped clean sample, LeRobot's from the model's output as it is, so LeRobot would sample a (slightly) "
            "different policy"
        )
    rename = {cfg.image_keys[0]: TDMPC_IMAGE_KEY} if kind == "tdmpc" and cfg.image_keys else {}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    features = {rename.get(k, k): {"type": f.kind, "shape": list(f.shape)} for k, f in cfg.input_features.items()}
    actions = {k: {"type": f.kind, "shape": list(f.shape)} for k, f in cfg.output_features.items()}
    norm_map = {kind_: str(mode).upper() for kind_, mode in cfg.normalization_mapping.items()}
    raw: dict[str, Any] = {"type": kind, "n_obs_steps": cfg.n_obs_steps, "input_features": features,
                           "output_features": actions, "device": "cpu", "use_amp": False,
                           "normalization_mapping": norm_map}  # fmt: skip
    for name in sorted(LEROBOT_FIELDS[kind]):
        value = getattr(cfg, name)
        raw[name] = list(value) if isinstance(value, tuple) else value
    raw.update(LEROBOT_PRESETS[kind])
    if kind == "diffusion":  # one camera: one encoder either way, named as LeRobot's shared one
        raw["use_separate_rgb_encoder_per_camera"] = hasattr(policy.model, "rgbs")
    (out / CONFIG_NAME).write_text(json.dumps(raw, indent=4) + "\n")
    image_key = next(iter(cfg.image_keys), None)
    state = {
        _lerobot_key(key, kind, image_key): value.detach().cpu().contiguous()
        for key, value in policy.state_dict().items()
        if not key.startswith(NORMALIZER_PREFIXES) and not (kind in NOT_IN_LEROBOT and NOT_IN_LEROBOT[kind].search(key))
    }
    state.update(_fixed_buffers(policy))
    save_file(state, str(out / WEIGHTS_NAME))
    _save_processors(out, policy, features, actions, norm_map, rename)
    return out


def _lerobot_key(key: str, kind: str, image_key: str | None) -> str:
    """LeRobot's name for twinarm's `key`, checked to read back to it."""
    name = lerobot_name(key, kind, image_key)
    back = twinarm_name(name, kind, image_key)
    if back != key:
        raise LeRobotCheckpointError(f"{key}: no LeRobot name reads back to it ({name!r} reads as {back!r})")
    return name


def _fixed_buffers(policy: Policy) -> dict[str, torch.Tensor]:
    """Buffers LeRobot saves that twinarm computes when needed (so a strict LeRobot load finds every key)."""
    if policy.name == "act" and policy.config.use_vae:
        return {"model.vae_encoder_pos_enc": policy.model.vae_pos.detach().cpu().contiguous()}
    if policy.name == "diffusion" and policy.config.image_keys:
        separate = hasattr(policy.model, "rgbs")
        encoders = {f"diffusion.rgb_encoder.{i}.": rgb for i, rgb in enumerate(policy.model.rgbs)} if separate \
            else {"diffusion.rgb_encoder.": policy.model.rgb}  # fmt: skip
        c, h, w = policy.config.input_features[policy.config.image_keys[0]].shape
        if policy.config.crop_shape is not None:
            h, w = policy.config.crop_shape
        rgb = next(iter(encoders.values()))
        with torch.no_grad():
            fh, fw = rgb.backbone.trunk(torch.zeros(1, c, h, w)).shape[-2:]  # the feature map's size
        return {f"{prefix}pool.pos_grid": enc.pool.grid(fh, fw).clone() for prefix, enc in encoders.items()}
    return {}


def _save_processors(
    out: Path, policy: Policy, features: dict[str, Any], actions: dict[str, Any], norm_map: dict[str, str],
    rename: dict[str, str],
) -> None:
    stats = {}
    for key, value in policy.normalization_stats().items():
        feature, _, stat = key.rpartition(".")
        stats[f"{rename.get(feature, feature)}.{stat}"] = value.detach().cpu().contiguous()
    normalizer = {"eps": EPS, "features": {**features, **actions}, "norm_map": norm_map}
    pre = {"name": "policy_preprocessor", "steps": [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": rename}},
        {"registry_name": "to_batch_processor", "config": {}},
        {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
        {"registry_name": "normalizer_processor", "config": normalizer, "state_file": NORMALIZER_STATE},
    ]}  # fmt: skip
    post = {"name": "policy_postprocessor", "steps": [
        {"registry_name": "unnormalizer_processor", "config": {**normalizer, "features": actions},
         "state_file": UNNORMALIZER_STATE},
        {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
    ]}  # fmt: skip
    (out / PREPROCESSOR).write_text(json.dumps(pre, indent=2) + "\n")
    (out / POSTPROCESSOR).write_text(json.dumps(post, indent=2) + "\n")
    save_file(stats, str(out / NORMALIZER_STATE))
    save_file(stats, str(out / UNNORMALIZER_STATE))

