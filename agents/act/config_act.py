"""ACT configuration; defaults follow LeRobot's `ACTConfig` (chunk 100, dim 512, 4 enc/1 dec, latent 32)."""

from __future__ import annotations

from dataclasses import dataclass, field

from twinarm.agents.policy import PolicyConfig, PolicyConfigError


@dataclass
class ACTConfig(PolicyConfig):
    """Action Chunking Transformer with a conditional VAE and a ResNet-18 image backbone."""

    chunk_size: int = 100
    """Number of future actions predicted in one forward pass."""
    n_action_steps: int = 100
    """Actions executed from each predicted chunk before predicting again (<= chunk_size)."""
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "mean_std", "STATE": "mean_std", "ENV": "mean_std", "ACTION": "mean_std"}
    )
    """Normalization mode per feature kind (LeRobot: mean/std everywhere)."""
    vision_backbone: str = "resnet18"
    """Image backbone; ResNet-18 written in plain torch, the only one offered."""
    pretrained_backbone_weights: str | None = None
    """Path to a local torchvision-named ResNet-18 state dict; None = random init (never downloaded)."""
    backbone_norm: str = "batch_norm"
    """Backbone normalization: `batch_norm` (trainable, for random init), `frozen_batch_norm` (LeRobot's
    choice with ImageNet weights) or `group_norm`."""
    pre_norm: bool = False
    """Pre-LayerNorm transformer layers instead of post-norm."""
    dim_model: int = 512
    """Transformer width."""
    n_heads: int = 8
    """Attention heads."""
    dim_feedforward: int = 3200
    """Hidden size of the transformer feed-forward blocks."""
    feedforward_activation: str = "relu"
    """Activation in the feed-forward blocks (`relu` or `gelu`)."""
    n_encoder_layers: int = 4
    """Transformer encoder layers."""
    n_decoder_layers: int = 1
    """Transformer decoder layers (LeRobot keeps 1, matching the original ACT's effective use)."""
    use_vae: bool = True
    """Train with the CVAE objective (a latent style variable inferred from the action chunk)."""
    latent_dim: int = 32
    """Size of the VAE latent."""
    n_vae_encoder_layers: int = 4
    """Transformer layers of the VAE encoder."""
    temporal_ensemble_coeff: float | None = None
    """If set, run inference every step and average overlapping chunks with weights exp(-coeff * i)
    (ACT's temporal ensembling, original value 0.01); needs n_action_steps == 1."""
    dropout: float = 0.1
    """Dropout in the transformer layers."""
    kl_weight: float = 10.0
    """Weight of the KL term of the VAE loss."""
    optimizer_lr: float = 1e-5
    """AdamW learning rate for everything but the backbone."""
    optimizer_weight_decay: float = 1e-4
    """AdamW weight decay."""
    optimizer_lr_backbone: float = 1e-5
    """AdamW learning rate of the image backbone."""

    type = "act"

    def validate(self) -> None:
        super().validate()
        if self.n_action_steps > self.chunk_size:
            raise PolicyConfigError(f"n_action_steps ({self.n_action_steps}) must be <= chunk_size ({self.chunk_size})")
        if self.temporal_ensemble_coeff is not None and self.n_action_steps != 1:
            raise PolicyConfigError("temporal ensembling needs n_action_steps == 1")
        if self.n_obs_steps != 1:
            raise PolicyConfigError("ACT conditions on a single observation step (n_obs_steps == 1)")
        if not self.image_keys and not self.has_env_state and not self.has_state:
            raise PolicyConfigError("ACT needs images, environment_state or state among its inputs")

    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))
