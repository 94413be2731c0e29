"""DDPM noise schedule with DDPM (ancestral) and DDIM (deterministic) samplers, in plain torch."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def make_betas(schedule: str, steps: int, beta_start: float, beta_end: float) -> Tensor:
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    if schedule == "squaredcos_cap_v2":

        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor(
            [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)],
            dtype=torch.float64,
        )
    raise ValueError(f"unknown beta schedule {schedule!r}")


class NoiseScheduler:
    """The forward process `q(x_t | x_0)` and reverse steps for a strided subset of timesteps."""

    def __init__(
        self,
        num_train_timesteps: int = 100,
        beta_schedule: str = "squaredcos_cap_v2",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: str = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        use_clipped_model_output: bool = True,
    ) -> None:
        if prediction_type not in ("epsilon", "sample"):
            raise ValueError("prediction_type must be 'epsilon' or 'sample'")
        self.T = num_train_timesteps
        self.alphas_cumprod = torch.cumprod(1 - make_betas(beta_schedule, self.T, beta_start, beta_end), 0)
        self.prediction_type = prediction_type
        self.clip_sample = clip_sample
        self.clip_sample_range = clip_sample_range
        self.use_clipped_model_output = use_clipped_model_output

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        abar = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def timesteps(self, num_inference_steps: int) -> list[int]:
        """Evenly strided timesteps, last first (`leading` spacing: 0, r, 2r, ... reversed)."""
        if not 1 <= num_inference_steps <= self.T:
            raise ValueError(f"num_inference_steps must be in [1, {self.T}]")
        ratio = self.T // num_inference_steps
        return [i * ratio for i in range(num_inference_steps)][::-1]

    def _x0_eps(self, model_out: Tensor, x_t: Tensor, abar: float) -> tuple[Tensor, Tensor]:
        """The clean-sample estimate (clipped with `clip_sample`) and the noise estimate DDIM steps with: from the
        clipped clean sample with `use_clipped_model_output` (diffusers' option of that name), else from the
        model's output as it is (diffusers' default, what LeRobot samples with)."""
        a, s = math.sqrt(abar), math.sqrt(1 - abar)
        x0 = (x_t - s * model_out) / a if self.prediction_type == "epsilon" else model_out
        if not self.use_clipped_model_output:
            eps = model_out if self.prediction_type == "epsilon" else (x_t - a * x0) / s
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        if self.use_clipped_model_output:
            eps = (x_t - a * x0) / s
        return x0, eps

    def step(
        self,
        model_out: Tensor,
        t: int,
        t_prev: int,
        x_t: Tensor,
        kind: str,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One reverse step from timestep `t` to `t_prev` (-1 = the clean sample)."""
        abar_t = float(self.alphas_cumprod[t])
        abar_prev = float(self.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
        x0, eps = self._x0_eps(model_out, x_t, abar_t)
        if kind == "DDIM":
            return math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps
        beta = 1 - abar_t / abar_prev
        c0 = math.sqrt(abar_prev) * beta / (1 - abar_t)
        ct = math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar_t)
        mean = c0 * x0 + ct * x_t
        if t_prev < 0:
            return mean
        var = max((1 - abar_prev) / (1 - abar_t) * beta, 1e-20)
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return mean + math.sqrt(var) * noise
