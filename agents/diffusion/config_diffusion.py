"""Diffusion Policy configuration; defaults follow LeRobot's `DiffusionConfig`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twinarm.agents.policy import PolicyConfig, PolicyConfigError


@dataclass
class DiffusionConfig(PolicyConfig):
    """Conditional 1-D U-Net over an action horizon, conditioned on `n_obs_steps` observations."""

    n_obs_steps: int = 2
    """Observation steps the policy conditions on (current one and the ones before)."""
    horizon: int = 64
    """Length of the denoised action sequence (starts at the first observation step)."""
    n_action_steps: int = 32
    """Actions executed from each generated sequence before generating again."""
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "mean_std", "STATE": "min_max", "ENV": "min_max", "ACTION": "min_max"}
    )
    """Normalization mode per feature kind (actions and states to [-1, 1], as LeRobot)."""
    vision_backbone: str = "resnet18"
    """Image backbone; ResNet-18 written in plain torch."""
    pretrained_backbone_weights: str | None = None
    """Path to a local torchvision-named ResNet-18 state dict; None = random init (never downloaded)."""
    use_group_norm: bool = True
    """Replace the backbone's batch norms by group norms (needed for random init + small batches)."""
    crop_shape: tuple[int, int] | None = None
    """(h, w) crop of the images before the backbone; None keeps full frames."""
    crop_is_random: bool = True
    """Random crops while training (centre crop at inference)."""
    use_separate_rgb_encoder_per_camera: bool = True
    """One image encoder per camera (LeRobot's default) rather than one shared by all; with one camera the same."""
    spatial_softmax_num_keypoints: int = 32
    """Keypoints of the spatial-softmax pooling after the backbone (image feature = 2x this)."""
    down_dims: tuple[int, ...] = (512, 1024, 2048)
    """U-Net channel widths per resolution level."""
    kernel_size: int = 5
    """1-D convolution kernel size."""
    n_groups: int = 8
    """Group-norm groups in the U-Net blocks."""
    diffusion_step_embed_dim: int = 128
    """Size of the diffusion-timestep embedding."""
    use_film_scale_modulation: bool = True
    """FiLM with scale and bias (False: bias only)."""
    noise_scheduler_type: str = "DDPM"
    """Sampler used at inference: `DDPM` or `DDIM` (training is always DDPM's noise-prediction loss)."""
    num_train_timesteps: int = 100
    """Diffusion steps of the forward process."""
    beta_schedule: str = "squaredcos_cap_v2"
    """Noise schedule: `squaredcos_cap_v2` (cosine) or `linear`."""
    beta_start: float = 0.0001
    """First beta of the linear schedule."""
    beta_end: float = 0.02
    """Last beta of the linear schedule."""
    prediction_type: str = "epsilon"
    """What the network predicts: `epsilon` (noise) or `sample` (clean actions)."""
    clip_sample: bool = True
    """Clip the predicted clean sample to [-clip_sample_range, clip_sample_range] while sampling."""
    clip_sample_range: float = 1.0
    """Clip bound (actions are min-max normalized to [-1, 1])."""
    use_clipped_model_output: bool = True
    """DDIM takes its noise estimate from the clipped clean sample (diffusers' `use_clipped_model_output=True`);
    False takes the model's output as it is, diffusers' default, which LeRobot samples with (checkpoints read
    from LeRobot set it so). twinarm's results were measured with True."""
    num_inference_steps: int | None = None
    """Denoising steps at inference; None = num_train_timesteps."""
    do_mask_loss_for_padding: bool = False
    """Ignore padded actions (past the episode end) in the loss."""
    optimizer_lr: float = 1e-4
    """AdamW learning rate."""
    optimizer_betas: tuple[float, float] = (0.95, 0.999)
    """AdamW betas."""
    optimizer_weight_decay: float = 1e-6
    """AdamW weight decay."""

    type = "diffusion"

    def validate(self) -> None:
        super().validate()
        if not self.image_keys and not self.has_env_state and not self.has_state:
            raise PolicyConfigError("Diffusion Policy needs images, environment_state or state among its inputs")
        if self.n_action_steps > self.horizon - self.n_obs_steps + 1:
            raise PolicyConfigError("n_action_steps must be <= horizon - n_obs_steps + 1")
        downsample = 2 ** (len(self.down_dims) - 1)
        if self.horizon % downsample:
            raise PolicyConfigError(f"horizon ({self.horizon}) must be a multiple of {downsample} for this U-Net depth")
        if self.noise_scheduler_type not in ("DDPM", "DDIM"):
            raise PolicyConfigError("noise_scheduler_type must be DDPM or DDIM")
        shapes = {k: tuple(self.input_features[k].shape) for k in self.image_keys}
        if self.crop_shape is not None:
            self._check_crop(shapes)
        if len(set(shapes.values())) > 1:  # as LeRobot's, which stacks every camera in one tensor
            said = ", ".join(f"{k.rsplit('.', 1)[-1]} {s[1]}x{s[2]}" for k, s in shapes.items())
            raise PolicyConfigError(f"Diffusion Policy needs every camera at one image size; the data has {said}: record at "
                             "one --image-size, drop a camera (`twinarm dataset remove-feature`), or train ACT, "
                             "which takes cameras of different sizes")  # fmt: skip

    def _check_crop(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """`crop_shape` is two positive sizes within every camera's image (LeRobot's `validate_features`): a larger
        crop would fail at the first training step and slice off-centre at inference."""
        crop = tuple(self.crop_shape or ())
        if len(crop) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in crop):
            raise PolicyConfigError(f"crop_shape={list(crop)}: expected two positive whole numbers [height, width] "
                                    "(or null for no crop)")  # fmt: skip
        over = {k: s for k, s in shapes.items() if crop[0] > s[1] or crop[1] > s[2]}
        if over:
            said = ", ".join(f"{k} is {s[1]}x{s[2]}" for k, s in over.items())
            raise PolicyConfigError(f"crop_shape={list(crop)} (height, width) is larger than the images ({said}, "
                                    "height x width): set a crop within them, or crop_shape=null")  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DiffusionConfig:
        """A config saved before `use_separate_rgb_encoder_per_camera` existed shared one encoder: read it so."""
        return super().from_dict({"use_separate_rgb_encoder_per_camera": False, **d})

    def observation_delta_indices(self) -> list[int]:
        return list(range(1 - self.n_obs_steps, 1))

    def action_delta_indices(self) -> list[int]:
        return list(range(1 - self.n_obs_steps, 1 - self.n_obs_steps + self.horizon))
