"""TD-MPC configuration; defaults follow LeRobot's `TDMPCConfig` (latent 50, mlp 512, 5 Qs, CEM 6x512/50)."""

from __future__ import annotations

from dataclasses import dataclass, field

from twinarm.agents.policy import PolicyConfig, PolicyConfigError


@dataclass
class TDMPCConfig(PolicyConfig):
    """Latent dynamics + reward + Q-ensemble + V + policy prior, planned with CEM over a short horizon."""

    n_action_repeats: int = 2
    """Each planned action is applied this many env steps."""
    horizon: int = 5
    """Planning and training horizon (steps of latent rollout)."""
    n_action_steps: int = 1
    """Actions used from each plan (MPC replans every step when 1)."""
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "identity", "STATE": "min_max", "ENV": "identity", "ACTION": "min_max"}
    )
    """Normalization per feature kind. Actions must be min-max (the policy acts in [-1, 1]); twinarm
    also min-max normalizes joint states (LeRobot's identity assumes metres, ours are degrees)."""
    image_encoder_hidden_dim: int = 32
    """Channels of the convolutional image encoder."""
    state_encoder_hidden_dim: int = 256
    """Hidden size of the state (and environment-state) encoders."""
    latent_dim: int = 50
    """Size of the latent state."""
    q_ensemble_size: int = 5
    """Number of Q heads."""
    mlp_dim: int = 512
    """Hidden size of the dynamics, reward, policy, Q and V networks."""
    discount: float = 0.9
    """Reward discount."""
    use_mpc: bool = True
    """Plan with CEM (False: act with the policy prior alone)."""
    cem_iterations: int = 6
    """CEM refinement iterations per planning step."""
    max_std: float = 2.0
    """Initial (and maximum) std of the CEM sampling distribution."""
    min_std: float = 0.05
    """Minimum CEM std; also the noise of policy-prior trajectories and of exploration."""
    n_gaussian_samples: int = 512
    """Action sequences sampled from the CEM Gaussian per iteration."""
    n_pi_samples: int = 51
    """Action sequences rolled out with the policy prior per planning step."""
    uncertainty_regularizer_coeff: float = 1.0
    """Penalty on Q-ensemble disagreement when scoring trajectories."""
    n_elites: int = 50
    """Top trajectories refitting the CEM Gaussian."""
    elite_weighting_temperature: float = 0.5
    """Softmax temperature on elite returns."""
    gaussian_mean_momentum: float = 0.1
    """Weight of the previous mean when refitting the CEM mean."""
    max_random_shift_ratio: float = 0.0476
    """Random-shift image augmentation, as a fraction of the image size."""
    reward_coeff: float = 0.5
    """Weight of the reward loss."""
    expectile_weight: float = 0.9
    """Expectile of the V regression (IQL)."""
    value_coeff: float = 0.1
    """Weight of the Q and V losses."""
    consistency_coeff: float = 20.0
    """Weight of the latent consistency loss."""
    advantage_scaling: float = 3.0
    """Inverse temperature of the advantage-weighted policy loss."""
    pi_coeff: float = 0.5
    """Weight of the policy loss."""
    temporal_decay_coeff: float = 0.5
    """Per-step decay of the loss weights along the horizon."""
    target_model_momentum: float = 0.995
    """EMA momentum of the target network."""
    optimizer_lr: float = 3e-4
    """Adam learning rate."""
    grad_clip_norm: float = 10.0
    """Gradient norm clip."""

    type = "tdmpc"

    def validate(self) -> None:
        super().validate()
        if self.n_elites > self.n_gaussian_samples + self.n_pi_samples:
            raise PolicyConfigError("n_elites must be <= n_gaussian_samples + n_pi_samples")
        if self.n_action_steps != 1:
            raise PolicyConfigError("TD-MPC replans every step (n_action_steps == 1)")
        if self.normalization_mapping.get("ACTION") != "min_max":
            raise PolicyConfigError("TD-MPC needs min_max action normalization (it acts in [-1, 1])")

    def observation_delta_indices(self) -> list[int]:
        return list(range(self.horizon + 1))

    def action_delta_indices(self) -> list[int]:
        return list(range(self.horizon))
