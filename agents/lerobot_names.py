"""LeRobot's parameter names <-> twinarm's for ACT, Diffusion Policy and TD-MPC: one table of name pairs per
policy, read in either direction (`lerobot_checkpoint` reads LeRobot checkpoints, `lerobot_export` writes them).

Each pair is a pair of prefix templates, LeRobot's first: `{n}` stands for a number, `{m}` for the online or
target model (`model` / `model_target`), the same on both sides. The first pair whose template matches a name's
start renames it; names no pair matches are the same on both sides (ResNet-18 inside ACT, the action head).
"""

from __future__ import annotations

import re
from functools import cache

_ACT = [
    ("model.vae_encoder_cls_embed.", "model.vae_cls."),
    ("model.vae_encoder_robot_state_input_proj.", "model.vae_state_proj."),
    ("model.vae_encoder_action_input_proj.", "model.vae_action_proj."),
    ("model.vae_encoder_latent_output_proj.", "model.vae_latent_proj."),
    ("model.vae_encoder.layers.{n}.", "model.vae_encoder.{n}."),
    ("model.encoder.layers.{n}.", "model.encoder.{n}."),
    ("model.encoder.norm.", "model.encoder_norm."),
    ("model.decoder.layers.{n}.multihead_attn.", "model.decoder.{n}.cross_attn."),
    ("model.decoder.layers.{n}.", "model.decoder.{n}."),
    ("model.decoder.norm.", "model.decoder_norm."),
    ("model.encoder_robot_state_input_proj.", "model.state_proj."),
    ("model.encoder_env_state_input_proj.", "model.env_state_proj."),
    ("model.encoder_latent_input_proj.", "model.latent_proj."),
    ("model.encoder_img_feat_input_proj.", "model.img_proj."),
    ("model.encoder_1d_feature_pos_embed.", "model.pos_1d."),
    ("model.decoder_pos_embed.", "model.query_pos."),
]
_DIFFUSION = [
    ("diffusion.unet.diffusion_step_encoder.1.", "model.unet.time_mlp.0."),
    ("diffusion.unet.diffusion_step_encoder.3.", "model.unet.time_mlp.2."),
    ("diffusion.unet.final_conv.0.block.", "model.unet.final.0."),
    ("diffusion.unet.final_conv.", "model.unet.final."),
    ("diffusion.unet.down_modules.", "model.unet.down."),
    ("diffusion.unet.mid_modules.", "model.unet.mid."),
    ("diffusion.unet.up_modules.", "model.unet.up."),
    # torchvision's ResNet children, kept by LeRobot as an nn.Sequential, and twinarm's module names.
    ("diffusion.rgb_encoder.backbone.0.", "model.rgb.backbone.conv1."),
    ("diffusion.rgb_encoder.backbone.1.", "model.rgb.backbone.bn1."),
    ("diffusion.rgb_encoder.backbone.4.", "model.rgb.backbone.layer1."),
    ("diffusion.rgb_encoder.backbone.5.", "model.rgb.backbone.layer2."),
    ("diffusion.rgb_encoder.backbone.6.", "model.rgb.backbone.layer3."),
    ("diffusion.rgb_encoder.backbone.7.", "model.rgb.backbone.layer4."),
    ("diffusion.rgb_encoder.pool.nets.", "model.rgb.pool.kp."),
    ("diffusion.rgb_encoder.out.", "model.rgb.out."),
    # One encoder per camera (LeRobot's `use_separate_rgb_encoder_per_camera`, two cameras or more).
    ("diffusion.rgb_encoder.{n}.backbone.0.", "model.rgbs.{n}.backbone.conv1."),
    ("diffusion.rgb_encoder.{n}.backbone.1.", "model.rgbs.{n}.backbone.bn1."),
    ("diffusion.rgb_encoder.{n}.backbone.4.", "model.rgbs.{n}.backbone.layer1."),
    ("diffusion.rgb_encoder.{n}.backbone.5.", "model.rgbs.{n}.backbone.layer2."),
    ("diffusion.rgb_encoder.{n}.backbone.6.", "model.rgbs.{n}.backbone.layer3."),
    ("diffusion.rgb_encoder.{n}.backbone.7.", "model.rgbs.{n}.backbone.layer4."),
    ("diffusion.rgb_encoder.{n}.pool.nets.", "model.rgbs.{n}.pool.kp."),
    ("diffusion.rgb_encoder.{n}.out.", "model.rgbs.{n}.out."),
]
#: Inside the U-Net's residual blocks, after the renames above (anywhere in the name, not only its start).
_DIFFUSION_BLOCKS = [(".conv1.block.", ".conv1."), (".conv2.block.", ".conv2."), (".cond_encoder.", ".cond."),
                     (".residual_conv.", ".residual.")]  # fmt: skip
_TDMPC = [
    ("{m}._encoder.state_enc_layers.", "{m}.encoder.state."),
    ("{m}._encoder.env_state_enc_layers.", "{m}.encoder.env_state."),
    ("{m}._dynamics.", "{m}.dynamics."),
    ("{m}._reward.", "{m}.reward."),
    ("{m}._pi.", "{m}.pi_net."),
    ("{m}._Qs.", "{m}.qs."),
    ("{m}._V.", "{m}.v."),
]


def _tdmpc_camera(image_key: str) -> list[tuple[str, str]]:
    """LeRobot's one flat Sequential (4 convolutions with ReLUs, flatten, linear, norm, sigmoid) and twinarm's
    (the convolutions, flatten, linear, norm) for the camera `image_key`."""
    twin = f"{{m}}.encoder.image.{image_key.replace('.', '_')}."
    return [("{m}._encoder.image_enc_layers.9.", twin + "2."), ("{m}._encoder.image_enc_layers.10.", twin + "3."),
            ("{m}._encoder.image_enc_layers.{n}.", twin + "0.{n}.")]  # fmt: skip


def _pattern(template: str) -> str:
    return "^" + re.escape(template).replace(r"\{n\}", r"(\d+)").replace(r"\{m\}", "(model|model_target)")


def _replacement(template: str) -> str:
    count = iter(range(1, 10))
    return re.sub(r"\{[nm]\}", lambda _: f"\\{next(count)}", template)


@cache
def _rules(kind: str, image_key: str | None, to_lerobot: bool) -> tuple[tuple[re.Pattern[str], str], ...]:
    pairs = {"act": _ACT, "diffusion": _DIFFUSION, "tdmpc": _TDMPC}[kind]
    if kind == "tdmpc" and image_key is not None:
        pairs = [*_tdmpc_camera(image_key), *pairs]
    return tuple(
        (re.compile(_pattern(b if to_lerobot else a)), _replacement(a if to_lerobot else b)) for a, b in pairs
    )


def _renamed(key: str, kind: str, image_key: str | None, to_lerobot: bool) -> str:
    for pattern, repl in _rules(kind, image_key, to_lerobot):
        if pattern.match(key):
            key = pattern.sub(repl, key, count=1)
            break
    if kind == "diffusion" and key.startswith("model.unet." if not to_lerobot else "diffusion.unet."):
        for lerobot, twinarm in _DIFFUSION_BLOCKS:
            key = key.replace(twinarm, lerobot) if to_lerobot else key.replace(lerobot, twinarm)
    return key


def twinarm_name(key: str, kind: str, image_key: str | None = None) -> str:
    """twinarm's name for LeRobot's parameter `key` of a `kind` policy (`image_key`: TD-MPC's camera)."""
    return _renamed(key, kind, image_key, to_lerobot=False)


def lerobot_name(key: str, kind: str, image_key: str | None = None) -> str:
    """LeRobot's name for twinarm's parameter `key` of a `kind` policy (`image_key`: TD-MPC's camera)."""
    return _renamed(key, kind, image_key, to_lerobot=True)
