"""Diffusion Policy: images -> ResNet-18 + spatial softmax, concatenated with states into a global
condition for a FiLM-conditioned 1-D U-Net that denoises a horizon of actions (DDPM loss, DDPM/DDIM
sampling). The first `n_obs_steps - 1` actions of the horizon overlap past observations and are skipped.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import deque
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from twinarm.agents.backbone import ResNet18, load_backbone_weights
from twinarm.agents.diffusion.config_diffusion import DiffusionConfig
from twinarm.agents.diffusion.sampling_plan import SamplingPlan, SamplingRun
from twinarm.agents.diffusion.scheduler import NoiseScheduler
from twinarm.agents.features import ACTION, ENV_STATE, STATE
from twinarm.agents.layers import conv1d_gemm, weights_key
from twinarm.agents.packed import float32_packing_applies
from twinarm.agents.policy import Policy
from twinarm.agents.precision import cpu_compute_dtype


class SpatialSoftmax(nn.Module):
    """Keypoints from a feature map: a 1x1 conv to K maps, softmax over space, expected (x, y) each."""

    def __init__(self, channels: int, num_kp: int) -> None:
        super().__init__()
        self.kp = nn.Conv2d(channels, num_kp, 1)
        self._grid: dict[tuple[int, int], Tensor] = {}

    def grid(self, h: int, w: int) -> Tensor:
        """(h * w, 2) pixel coordinates (x, y) in [-1, 1], row-major (LeRobot's `pos_grid`)."""
        if (h, w) not in self._grid:
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
            self._grid[(h, w)] = torch.stack((xs.reshape(-1), ys.reshape(-1)), dim=-1)
        return self._grid[(h, w)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.kp(x)
        b, k, h, w = x.shape
        attn = F.softmax(x.reshape(b, k, h * w), dim=-1)
        return (attn @ self.grid(h, w).to(attn)).reshape(b, 2 * k)


class RgbEncoder(nn.Module):
    """Crop -> ResNet-18 trunk -> spatial softmax -> linear + ReLU to a 2K-D feature per image."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNet18("group_norm" if cfg.use_group_norm else "batch_norm")
        if cfg.pretrained_backbone_weights:
            load_backbone_weights(self.backbone, cfg.pretrained_backbone_weights)
        self.pool = SpatialSoftmax(ResNet18.out_channels, cfg.spatial_softmax_num_keypoints)
        self.feature_dim = 2 * cfg.spatial_softmax_num_keypoints
        self.out = nn.Linear(self.feature_dim, self.feature_dim)

    def crop(self, x: Tensor) -> Tensor:
        if self.cfg.crop_shape is None:
            return x
        ch, cw = self.cfg.crop_shape
        h, w = x.shape[-2:]
        if self.training and self.cfg.crop_is_random:
            top = int(torch.randint(0, h - ch + 1, ()))
            left = int(torch.randint(0, w - cw + 1, ()))
        else:
            top, left = (h - ch) // 2, (w - cw) // 2
        return x[..., top : top + ch, left : left + cw]

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.out(self.pool(self.backbone(self.crop(x)))))


#: Groups of the U-Net's final conv block's group norm (LeRobot's, fixed; see `UNet1D`).
FINAL_GROUPS = 8


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    arg = t.float()[:, None] * freq[None]
    return torch.cat((arg.sin(), arg.cos()), dim=-1)


def _conv(module: nn.Module, x: Tensor, run: SamplingRun | None = None) -> Tensor:
    """A U-Net convolution. Under autograd, 1-D convolutions run as im2col + matmul (`layers.conv1d_gemm`,
    whose backward is much faster on CPU than oneDNN's); sampling takes the run's packed weights where it
    has them, else the module (see `_native_conv1d`)."""
    if run is not None and run.pack:
        return run.conv(module, x)
    if torch.is_grad_enabled() and isinstance(module, nn.Conv1d):
        return conv1d_gemm(x, module)
    return module(x)


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, groups: int) -> None:
        super().__init__(nn.Conv1d(cin, cout, k, padding=k // 2), nn.GroupNorm(groups, cout), nn.Mish())

    def forward(self, x: Tensor, run: SamplingRun | None = None) -> Tensor:
        conv, norm, act = self
        y = norm(_conv(conv, x, run))
        return run.mish(y) if run is not None else act(y)


class CondResBlock(nn.Module):
    """Two conv blocks with FiLM conditioning (scale and bias from the condition) in between."""

    def __init__(self, cin: int, cout: int, cond_dim: int, k: int, groups: int, scale: bool) -> None:
        super().__init__()
        self.conv1 = ConvBlock(cin, cout, k, groups)
        self.conv2 = ConvBlock(cout, cout, k, groups)
        self.scale = scale
        self.cond = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, cout * (2 if scale else 1)))
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.cout = cout

    def forward(self, x: Tensor, cond: Tensor | None, run: SamplingRun | None = None) -> Tensor:
        out = self.conv1(x, run)
        film = run.film(self) if run is not None else self.cond(cond)[..., None]
        if self.scale:
            out = film[:, : self.cout] * out + film[:, self.cout :]
        else:
            out = out + film
        return self.conv2(out, run) + _conv(self.residual, x, run)


class UNet1D(nn.Module):
    """The conditional U-Net over (B, action_dim, horizon)."""

    def __init__(self, cfg: DiffusionConfig, global_cond_dim: int) -> None:
        super().__init__()
        e = cfg.diffusion_step_embed_dim
        self.embed_dim = e
        self.time_mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.Mish(), nn.Linear(4 * e, e))
        cond_dim = e + global_cond_dim
        k, g, s = cfg.kernel_size, cfg.n_groups, cfg.use_film_scale_modulation
        dims = [cfg.action_dim, *cfg.down_dims]
        pairs = list(zip(dims[:-1], dims[1:], strict=True))
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(
                nn.ModuleList(
                    (
                        CondResBlock(cin, cout, cond_dim, k, g, s),
                        CondResBlock(cout, cout, cond_dim, k, g, s),
                        nn.Identity() if last else nn.Conv1d(cout, cout, 3, 2, 1),
                    )
                )
            )
        top = cfg.down_dims[-1]
        self.mid = nn.ModuleList((CondResBlock(top, top, cond_dim, k, g, s), CondResBlock(top, top, cond_dim, k, g, s)))
        self.up = nn.ModuleList()
        for cout, cin in reversed(pairs[1:]):
            self.up.append(
                nn.ModuleList(
                    (
                        CondResBlock(2 * cin, cout, cond_dim, k, g, s),
                        CondResBlock(cout, cout, cond_dim, k, g, s),
                        nn.ConvTranspose1d(cout, cout, 4, 2, 1),
                    )
                )
            )
        first = cfg.down_dims[0]
        # LeRobot's final block normalizes in 8 groups whatever n_groups says (its conv block's default): the
        # same here, so its checkpoints are this network at every n_groups.
        self.final = nn.Sequential(ConvBlock(first, first, k, FINAL_GROUPS), nn.Conv1d(first, cfg.action_dim, 1))

    def condition(self, t: Tensor, global_cond: Tensor) -> Tensor:
        """What the residual blocks' FiLM layers read, (..., embed + G), from t (...) and global_cond (..., G)."""
        embedded = self.time_mlp(timestep_embedding(t.reshape(-1), self.embed_dim)).view(*t.shape, -1)
        return torch.cat((embedded, global_cond), dim=-1)

    def res_blocks(self) -> list[CondResBlock]:
        return [m for m in self.modules() if isinstance(m, CondResBlock)]

    def forward(self, x: Tensor, t: Tensor, global_cond: Tensor, run: SamplingRun | None = None) -> Tensor:
        """x (B, horizon, A), t (B,), global_cond (B, G) -> (B, horizon, A). With a `run`, the FiLM terms come
        from it (t and global_cond are not read)."""
        cond = None if run is not None else self.condition(t, global_cond)
        h = x.transpose(1, 2)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, cond, run), cond, run)
            skips.append(h)
            h = _conv(down, h, run)
        for res in self.mid:
            h = res(h, cond, run)
        for res1, res2, up in self.up:
            h = torch.cat((h, skips.pop()), dim=1)
            h = _conv(up, res2(res1(h, cond, run), cond, run), run)
        return _conv(self.final[1], self.final[0](h, run), run).transpose(1, 2)


class DiffusionModel(nn.Module):
    """Observation encoder + U-Net + noise scheduler; works on normalized tensors."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        per_step = cfg.state_dim + cfg.env_state_dim
        n_cams = len(cfg.image_keys)
        if n_cams > 1 and cfg.use_separate_rgb_encoder_per_camera:
            self.rgbs = nn.ModuleList(RgbEncoder(cfg) for _ in range(n_cams))  # in image_keys order
            per_step += self.rgbs[0].feature_dim * n_cams
        elif n_cams:
            self.rgb = RgbEncoder(cfg)
            per_step += self.rgb.feature_dim * n_cams
        self.unet = UNet1D(cfg, per_step * cfg.n_obs_steps)
        self.scheduler = NoiseScheduler(
            cfg.num_train_timesteps,
            cfg.beta_schedule,
            cfg.beta_start,
            cfg.beta_end,
            cfg.prediction_type,
            cfg.clip_sample,
            cfg.clip_sample_range,
            cfg.use_clipped_model_output,
        )
        self._plan: SamplingPlan | None = None

    def global_cond(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, n_obs, ...) observations -> (B, n_obs * per_step_features)."""
        cfg = self.cfg
        parts: list[Tensor] = []
        if cfg.has_state:
            parts.append(batch[STATE])
        if cfg.image_keys and hasattr(self, "rgbs"):  # each camera through its own encoder, features side by side
            b, n = batch[cfg.image_keys[0]].shape[:2]
            parts.extend(enc(batch[k].flatten(0, 1)).reshape(b, n, -1) for enc, k in zip(self.rgbs, cfg.image_keys, strict=True))
        elif cfg.image_keys:
            imgs = torch.stack([batch[k] for k in cfg.image_keys], dim=2)  # (B, n_obs, n_cam, C, H, W)
            b, n, c = imgs.shape[:3]
            feats = self.rgb(imgs.flatten(0, 2)).reshape(b, n, c * self.rgb.feature_dim)
            parts.append(feats)
        if cfg.has_env_state:
            parts.append(batch[ENV_STATE])
        return torch.cat(parts, dim=-1).flatten(1)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        cond = self.global_cond(batch)
        x0 = batch[ACTION]
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.scheduler.T, (x0.shape[0],), device=x0.device)
        pred = self.unet(self.scheduler.add_noise(x0, noise, t), t, cond)
        target = noise if self.cfg.prediction_type == "epsilon" else x0
        err = F.mse_loss(pred, target, reduction="none")
        pad = batch.get("action_is_pad")
        if self.cfg.do_mask_loss_for_padding and pad is not None:
            valid = (~pad.bool()).unsqueeze(-1).to(err)
            return (err * valid).sum() / (valid.sum() * err.shape[-1]).clamp_min(1)
        return err.mean()

    def sample(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None, use_plan: bool = True
    ) -> Tensor:
        """Denoise a full horizon (B, horizon, A) from Gaussian noise. `use_plan=False` runs the plain modules
        step by step (the reference the sampling plan is checked against)."""
        cfg = self.cfg
        cond = self.global_cond(batch)
        b = cond.shape[0]
        x = torch.randn((b, cfg.horizon, cfg.action_dim), generator=generator, device=cond.device)
        steps = self.scheduler.timesteps(cfg.num_inference_steps or cfg.num_train_timesteps)
        run = None
        if use_plan:  # every step's FiLM terms at once
            t_all = torch.tensor(steps, device=x.device, dtype=torch.long)[:, None].expand(-1, b)
            conditions = self.unet.condition(t_all, cond.expand(len(steps), -1, -1))
            run = self.sampling_plan(float32_packing_applies(x)).start(self.unet.res_blocks(), conditions)
        with _native_conv1d(x.device):
            for i, t in enumerate(steps):
                t_prev = steps[i + 1] if i + 1 < len(steps) else -1
                if run is not None:
                    run.step = i
                out = self.unet(x, torch.full((b,), t, device=x.device, dtype=torch.long), cond, run)
                x = self.scheduler.step(out, t, t_prev, x, cfg.noise_scheduler_type, generator)
        return x

    def sampling_plan(self, pack: bool) -> SamplingPlan:
        """The U-Net's sampling plan; a packing one is rebuilt when the U-Net's weights or the CPU's compute dtype
        (bf16 inside a bf16 autocast) have changed."""
        plan = self._plan
        dtype = cpu_compute_dtype() if pack else torch.float32
        if plan is None or (plan.pack, plan.dtype) != (pack, dtype) or (pack and plan.key != weights_key(self.unet)):
            self._plan = None  # drop old packed weights before packing new ones
            self._plan = SamplingPlan(self.unet, pack, dtype)
        return self._plan

    def train(self, mode: bool = True) -> DiffusionModel:
        if mode:
            self._plan = None  # training changes the weights: free the packed copies (as large as the U-Net)
        return super().train(mode)

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_plan": None}  # packed oneDNN tensors neither copy nor pickle


@contextlib.contextmanager
def _native_conv1d(device: torch.device) -> Iterator[None]:
    """On CPU, run the U-Net's 1-D convolutions on ATen's im2col+GEMM kernels instead of oneDNN.

    At small batch and short horizons oneDNN re-lays-out the (large) weights on every call, which makes
    sampling several times slower; the GEMM path reads each weight once. Used for sampling only
    (no backward runs inside), so training keeps the default kernels.
    """
    if device.type != "cpu":
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


class DiffusionPolicy(Policy):
    """Diffusion Policy behind the shared policy API."""

    name = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, stats: dict | None = None) -> None:
        super().__init__(config, stats)
        self.config: DiffusionConfig = config
        self.model = DiffusionModel(config)
        self._obs: deque[dict[str, Tensor]] = deque(maxlen=config.n_obs_steps)
        self._actions: deque[Tensor] = deque()

    def get_optim_params(self) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "betas": self.config.optimizer_betas}]

    def reset(self) -> None:
        self._obs.clear()
        self._actions.clear()

    def _obs_keys(self) -> list[str]:
        return list(self.config.input_features)

    def with_obs_axis(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """`batch` with its observations as (B, n_obs_steps, ...), as the model reads them. With n_obs_steps == 1 an
        observation may come without that axis, (B, ...): a training batch read without observation deltas (LeRobot's
        `[0]` gives the axis, twinarm's loop asks for none at one step), or one env step's observation
        (`predict_action_chunk` from the prefetcher or int8 calibration): the axis of length 1 is added. With more
        steps a batch lacking it is refused, naming the input."""
        out = dict(batch)
        n = self.config.n_obs_steps
        for key, feat in self.config.input_features.items():
            x = batch.get(key)
            if not isinstance(x, Tensor) or x.ndim != len(feat.shape) + 1:
                continue
            if n != 1:
                raise ValueError(f"{key}: shape {tuple(x.shape)} has no observation-step axis; with n_obs_steps={n} "
                                 f"Diffusion needs (B, {n}, {', '.join(map(str, feat.shape))})")  # fmt: skip
            out[key] = x.unsqueeze(1)
        return out

    @torch.inference_mode()
    def predict_action_chunk(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Executable actions (B, n_action_steps, A) in dataset units from stacked observations (B, n_obs, ...)
        (with n_obs_steps == 1, (B, ...) too: `with_obs_axis`)."""
        horizon = self.model.sample(self.normalize_inputs(self.with_obs_axis(batch)), generator)
        start = self.config.n_obs_steps - 1
        actions = horizon[:, start : start + self.config.n_action_steps]
        return self.unnormalize_outputs({ACTION: actions})[ACTION]

    @torch.inference_mode()
    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        if self._obs:  # the observation history, and the queue, are of this many envs
            self.check_queued(batch, next(iter(self._obs[-1].values())).shape[0])
        else:
            self.check_inputs(batch)
        current = {k: batch[k] for k in self._obs_keys()}
        if not self._obs:
            for _ in range(self.config.n_obs_steps):
                self._obs.append(current)
        else:
            self._obs.append(current)
        if not self._actions:
            stacked = {k: torch.stack([o[k] for o in self._obs], dim=1) for k in self._obs_keys()}
            self._actions.extend(self.predict_action_chunk(stacked).transpose(0, 1))
        return self._actions.popleft()

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        batch = self.normalize_targets(self.normalize_inputs(self.with_obs_axis(batch)))
        loss = self.model.loss(batch)
        return loss, {"mse_loss": float(loss.detach())}
