"""TD-MPC policy: encoder -> latent dynamics/reward, Q-ensemble, V and a policy prior; actions come from
CEM planning in latent space. Losses (LeRobot's FOWM variant): latent consistency, reward, TD on Q with
a V bootstrap, expectile regression of V on the target Q, and an advantage-weighted policy loss.
"""

from __future__ import annotations

import copy
from collections import deque

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from twinarm.agents.features import ACTION, ENV_STATE, STATE
from twinarm.agents.int8 import MIN_WEIGHT
from twinarm.agents.layers import conv2d_relu, weights_key
from twinarm.agents.policy import Policy, PolicyConfigError
from twinarm.agents.tdmpc.config_tdmpc import TDMPCConfig
from twinarm.agents.tdmpc.fused import PackedHeads, unit_layer_norm
from twinarm.agents.tdmpc.sample_pool import SamplePool, pool_applies

REWARD = "next.reward"
DONE = "next.done"


def _mlp_ln(sizes: list[int], act: type[nn.Module], out_ln: bool = False) -> nn.Sequential:
    """Linear -> LayerNorm -> act blocks, plain final Linear (or Linear -> LayerNorm -> Sigmoid)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 2):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.LayerNorm(sizes[i + 1]), act()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    if out_ln:
        layers += [nn.LayerNorm(sizes[-1]), nn.Sigmoid()]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """One encoder per modality (image conv net, state MLP, env-state MLP); latents are averaged."""

    def __init__(self, cfg: TDMPCConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.image: nn.ModuleDict = nn.ModuleDict()
        for key in cfg.image_keys:
            c, h, w = cfg.input_features[key].shape
            hid = cfg.image_encoder_hidden_dim
            conv = nn.Sequential(
                nn.Conv2d(c, hid, 7, 2), nn.ReLU(),
                nn.Conv2d(hid, hid, 5, 2), nn.ReLU(),
                nn.Conv2d(hid, hid, 3, 2), nn.ReLU(),
                nn.Conv2d(hid, hid, 3, 2), nn.ReLU(),
            )  # fmt: skip
            if min(h, w) < 41:
                raise PolicyConfigError(
                    f"TD-MPC's image encoder needs images of at least 41x41 pixels, {key} is {h}x{w} (--image-size)"
                )
            with torch.no_grad():
                n_flat = conv(torch.zeros(1, c, h, w)).numel()
            self.image[key.replace(".", "_")] = nn.Sequential(
                conv,
                nn.Flatten(),
                nn.Linear(n_flat, cfg.latent_dim),
                nn.LayerNorm(cfg.latent_dim),
                nn.Sigmoid(),
            )
        hid = cfg.state_encoder_hidden_dim
        self.state = (
            nn.Sequential(
                nn.Linear(cfg.state_dim, hid),
                nn.ELU(),
                nn.Linear(hid, cfg.latent_dim),
                nn.LayerNorm(cfg.latent_dim),
                nn.Sigmoid(),
            )
            if cfg.has_state
            else None
        )
        self.env_state = (
            nn.Sequential(
                nn.Linear(cfg.env_state_dim, hid),
                nn.ELU(),
                nn.Linear(hid, cfg.latent_dim),
                nn.LayerNorm(cfg.latent_dim),
                nn.Sigmoid(),
            )
            if cfg.has_env_state
            else None
        )

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        feats: list[Tensor] = []
        for key in self.cfg.image_keys:
            x = obs[key]
            lead = x.shape[:-3]
            feats.append(
                _image_latent(self.image[key.replace(".", "_")], x.reshape(-1, *x.shape[-3:])).reshape(
                    *lead, -1
                )
            )
        if self.state is not None:
            feats.append(self.state(obs[STATE]))
        if self.env_state is not None:
            feats.append(self.env_state(obs[ENV_STATE]))
        return torch.stack(feats).mean(0)


def _image_latent(net: nn.Sequential, x: Tensor) -> Tensor:
    """`net(x)` for an image encoder (conv/ReLU pairs, then flatten, linear, norm, sigmoid), run channels-last
    with each ReLU fused into its convolution where autograd is off (`layers.conv2d_relu`)."""
    x = x.contiguous(memory_format=torch.channels_last)
    convs = net[0]
    for i in range(0, len(convs), 2):
        x = conv2d_relu(x, convs[i])
    for layer in list(net)[1:]:
        x = layer(x)
    return x


class WorldModel(nn.Module):
    def __init__(self, cfg: TDMPCConfig) -> None:
        super().__init__()
        self.cfg = cfg
        z, a, m = cfg.latent_dim, cfg.action_dim, cfg.mlp_dim
        self.encoder = Encoder(cfg)
        self.dynamics = _mlp_ln([z + a, m, m, z], nn.Mish, out_ln=True)
        self.reward = _mlp_ln([z + a, m, m, 1], nn.Mish)
        self.pi_net = _mlp_ln([z, m, m, a], nn.Mish)
        self.qs = nn.ModuleList(
            nn.Sequential(
                nn.Linear(z + a, m), nn.LayerNorm(m), nn.Tanh(), nn.Linear(m, m), nn.ELU(), nn.Linear(m, 1)
            )
            for _ in range(cfg.q_ensemble_size)
        )
        self.v = nn.Sequential(
            nn.Linear(z, m), nn.LayerNorm(m), nn.Tanh(), nn.Linear(m, m), nn.ELU(), nn.Linear(m, 1)
        )
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.orthogonal_(mod.weight)
                nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Conv2d):
                nn.init.orthogonal_(mod.weight, nn.init.calculate_gain("relu"))
                nn.init.zeros_(mod.bias)
        # Zero-init the reward and Q output layers (TD-MPC's choice: predictions start at 0).
        for head in [self.reward, *self.qs]:
            nn.init.zeros_(head[-1].weight)

    def next(self, z: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        za = torch.cat((z, a), dim=-1)
        return self.dynamics(za), self.reward(za).squeeze(-1)

    def rollout(self, z: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Latents (H+1, B, Z) from z along actions (H, B, A) and the rewards (H, B) on the way: what `next`
        gives step by step, with the reward head run once over all H steps (one H*B-row matmul per layer,
        forward and backward, instead of H small ones; 3 % of a training step here)."""
        zs = [z]
        for a in actions:
            zs.append(self.dynamics(torch.cat((zs[-1], a), dim=-1)))
        z_all = torch.stack(zs)
        return z_all, self.reward(torch.cat((z_all[:-1], actions), dim=-1)).squeeze(-1)

    def q_all(self, z: Tensor, a: Tensor) -> Tensor:
        """Every Q head, (Q, *lead). The heads run as one batched matmul per layer over their stacked
        weights (gradients flow back through the stacking), not one small module call per head. Each product
        takes the weights as stored, (Q, out, in), on the left of the rows: their gradients then come back in
        the parameters' own layout, where weights on the right came back transposed and autograd copied each
        head's gradient into place (fwd+bwd of a 40-row training call 6.5 ms instead of 7.6)."""
        za = torch.cat((z, a), dim=-1)
        lead = za.shape[:-1]
        qs = self.qs
        xt = za.reshape(-1, za.shape[-1]).t().expand(len(qs), -1, -1)  # (Q, in, N)
        w1 = torch.stack([q[0].weight for q in qs])
        h = torch.baddbmm(torch.stack([q[0].bias for q in qs])[:, :, None], w1, xt).transpose(1, 2)  # (Q, N, m)
        ln = qs[0][1]
        h = unit_layer_norm(h, ln.eps)
        h = torch.tanh(
            torch.addcmul(
                torch.stack([q[1].bias for q in qs])[:, None],
                h,
                torch.stack([q[1].weight for q in qs])[:, None],
            )
        )
        w2 = torch.stack([q[3].weight for q in qs])
        h = F.elu(torch.baddbmm(torch.stack([q[3].bias for q in qs])[:, :, None], w2, h.transpose(1, 2)))
        w3 = torch.stack([q[5].weight for q in qs])  # (Q, 1, m)
        out = torch.baddbmm(torch.stack([q[5].bias for q in qs])[:, :, None], w3, h)  # (Q, 1, N)
        return out.reshape(len(qs), *lead)

    def value(self, z: Tensor) -> Tensor:
        return self.v(z).squeeze(-1)

    def pi(self, z: Tensor, std: float = 0.0) -> Tensor:
        return add_policy_noise(torch.tanh(self.pi_net(z)), std)


def add_policy_noise(a: Tensor, std: float) -> Tensor:
    """Policy-prior exploration: Gaussian noise clipped to +-0.3, then the action clipped to [-1, 1]."""
    if std > 0:
        a = (a + (torch.randn_like(a) * std).clamp(-0.3, 0.3)).clamp(-1, 1)
    return a


def random_shift(x: Tensor, ratio: float) -> Tensor:
    """DrQ augmentation: pad by `ratio * max(h, w)` with edge values, crop back at a random offset per sample.
    The offsets are whole pixels, so the crop is a slice: DrQ's bilinear `grid_sample` on the same draws
    lands on the same pixels (to ~1e-5, its coordinate rounding) at 3.5x the cost here."""
    b, c, h, w = x.shape
    pad = int(round(ratio * max(h, w)))
    if pad == 0:
        return x
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    shift = torch.randint(0, 2 * pad + 1, (b, 2), device=x.device).tolist()  # (x, y) per sample
    return torch.stack([x[i, :, sy : sy + h, sx : sx + w] for i, (sx, sy) in enumerate(shift)])


def _time_major_channels_last(x: Tensor) -> Tensor:
    """(B, T, C, h, w) -> (T, B, C, h, w) over channels-last storage in one copy, so every slice the encoders
    take (the first step, the next steps) flattens to a channels-last batch without another copy."""
    return x.permute(1, 0, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


class TDMPCPolicy(Policy):
    """TD-MPC behind the shared policy API; `forward` takes (B, horizon+1) observation sequences."""

    name = "tdmpc"
    config_class = TDMPCConfig

    def __init__(self, config: TDMPCConfig, stats: dict | None = None) -> None:
        super().__init__(config, stats)
        self.config: TDMPCConfig = config
        self.model = WorldModel(config)
        self.model_target = copy.deepcopy(self.model).requires_grad_(False)
        self._prev_mean: Tensor | None = None
        self._queue: deque[Tensor] = deque()
        self.explore = False
        """Add exploration noise to planned actions (set by the online training loop)."""
        self.fused_planning = True
        """Plan with packed copies of the heads (`fused.PackedHeads`); False runs the modules one by one."""
        self._packed: PackedHeads | None = None
        self._packed_key: tuple[int, ...] = ()
        self._int8: tuple[str, int] | None = None
        self._samples: SamplePool | None = None  # int8 plans on CPU: the CEM samples evaluated per thread

    def enable_int8_planning(self, engine: str, min_weight: int = MIN_WEIGHT) -> dict[str, int]:
        """Plan with int8 copies of the heads' m x m layers of at least `min_weight` entries
        (`agents.int8.enable_int8` calls this); training and checkpoints stay float32. Returns what was
        quantized."""
        self.fused_planning = True
        self._int8 = (engine, min_weight)
        self._packed = None
        heads = self._heads()
        assert heads is not None
        # layer 2 of each head, the prior's middle layer, and layer 1 of all heads as one matmul
        n = len(heads.q2) + 1 if heads.q2 is not None else 0
        return {"backbones": 0, "linear_layers": n + (heads.pi_q1 is not None)}

    def get_optim_params(self) -> list[dict]:
        return [{"params": list(self.model.parameters())}]

    def reset(self) -> None:
        self._prev_mean = None
        self._queue.clear()

    def _obs(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: batch[k] for k in self.config.input_features}

    # ----- acting -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        if self._queue:
            self.check_queued(batch, self._queue[0].shape[0])
        else:
            self.check_inputs(batch)
        if not self._queue:
            obs = self.normalize_inputs(self._obs(batch))
            z = self.model.encoder(obs)
            if self.config.use_mpc:
                action = self.plan(z)
            else:
                action = self.model.pi(z, self.config.min_std if self.explore else 0.0)
            action = self.unnormalize_outputs({ACTION: action})[ACTION]
            self._queue.extend([action] * self.config.n_action_repeats)
        return self._queue.popleft()

    def _heads(self) -> PackedHeads | None:
        """The packed planning heads for the current weights (rebuilt after any weight change), or None."""
        if not self.fused_planning:
            return None
        key = weights_key(self.model)
        if self._packed is None or key != self._packed_key:
            engine, min_weight = self._int8 or (None, MIN_WEIGHT)
            self._packed = PackedHeads(self.model, int8_engine=engine, min_weight=min_weight)
            self._packed_key = key
        return self._packed

    @torch.inference_mode()
    def estimate_value(self, z: Tensor, actions: Tensor, q_pair: Tensor | None = None) -> Tensor:
        """Return of action sequences (H, N, A) from latents (N, Z), with an uncertainty penalty (without
        one, the terminal value is the lower of two Q heads: `q_pair`, or two drawn at random)."""
        cfg = self.config
        heads = self._heads()
        penalize = cfg.uncertainty_regularizer_coeff > 0
        ret = torch.zeros(z.shape[0], device=z.device)
        disc = 1.0
        for t in range(actions.shape[0]):
            if heads is not None:
                z, r, q = heads.step(z, actions[t], with_q=penalize)
            else:
                q = self.model.q_all(z, actions[t]) if penalize else None
                z, r = self.model.next(z, actions[t])
            if q is not None:
                ret = ret - disc * cfg.uncertainty_regularizer_coeff * q.std(0)
            ret = ret + disc * r
            disc *= cfg.discount
        if heads is not None:
            q_end = heads.q_all(z, heads.pi(z))
        else:
            q_end = self.model.q_all(z, self.model.pi(z))
        if cfg.uncertainty_regularizer_coeff > 0:
            return ret + disc * (q_end.mean(0) - cfg.uncertainty_regularizer_coeff * q_end.std(0))
        idx = torch.randperm(cfg.q_ensemble_size, device=z.device)[:2] if q_pair is None else q_pair
        return ret + disc * q_end[idx].min(0).values

    def _sample_pool(self, rows: int, device: torch.device) -> SamplePool | None:
        """The worker pool an int8 plan on CPU evaluates its `rows` Gaussian samples on, or None."""
        threads = torch.get_num_threads()
        if self._int8 is None or not self.fused_planning or not pool_applies(rows, device, threads):
            return None
        if self._samples is None or not self._samples.usable(threads):
            if self._samples is not None:
                self._samples.shutdown()
            self._samples = SamplePool(threads)
        return self._samples

    def _sample_values(self, z: Tensor, actions: Tensor, pool: SamplePool | None) -> Tensor:
        """`estimate_value` of the CEM's Gaussian samples, on `pool` when given (one chunk per worker; any
        random Q pair drawn here, once, as the unsplit call would)."""
        if pool is None:
            return self.estimate_value(z, actions)
        self._heads()  # packed before the workers read them
        q_pair = None
        if self.config.uncertainty_regularizer_coeff <= 0:
            q_pair = torch.randperm(self.config.q_ensemble_size, device=z.device)[:2]
        return pool.rows(lambda zc, ac: self.estimate_value(zc, ac, q_pair), z, actions)

    @torch.inference_mode()
    def plan(self, z: Tensor) -> Tensor:
        """CEM in latent space; returns the first action (B, A) in [-1, 1] for each latent in z (B, Z). An int8
        plan on CPU evaluates its Gaussian samples on a `SamplePool`, one chunk per thread, and runs the rest
        on this thread alone, so no idle intra-op thread competes with the workers (`sample_pool` says why)."""
        pool = self._sample_pool(z.shape[0] * self.config.n_gaussian_samples, z.device)
        if pool is None:
            return self._plan(z, None)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._plan(z, pool)
        finally:
            torch.set_num_threads(threads)

    def _plan(self, z: Tensor, pool: SamplePool | None) -> Tensor:
        cfg = self.config
        b, h, a_dim = z.shape[0], cfg.horizon, cfg.action_dim
        n_g, n_pi = cfg.n_gaussian_samples, cfg.n_pi_samples
        z_gauss = z.repeat_interleave(n_g, dim=0)  # (B*n_g, Z), sample-major within each batch row
        pi_actions = torch.empty(h, b, n_pi, a_dim, device=z.device)
        pi_value = torch.empty(b, 0, device=z.device)
        if n_pi > 0:
            heads = self._heads()
            zp = z.repeat_interleave(n_pi, dim=0)
            for t in range(h):
                if heads is not None:
                    pi_actions[t] = add_policy_noise(heads.pi(zp), cfg.min_std).reshape(b, n_pi, a_dim)
                    zp = heads.step(zp, pi_actions[t].reshape(b * n_pi, a_dim), with_q=False)[0]
                else:
                    pi_actions[t] = self.model.pi(zp, cfg.min_std).reshape(b, n_pi, a_dim)
                    zp = self.model.next(zp, pi_actions[t].reshape(b * n_pi, a_dim))[0]
            # The policy trajectories are fixed for this plan: score them once, not every CEM iteration.
            z_pi = z.repeat_interleave(n_pi, dim=0)
            pi_value = self.estimate_value(z_pi, pi_actions.reshape(h, b * n_pi, a_dim)).reshape(b, n_pi)
        mean = torch.zeros(h, b, a_dim, device=z.device)
        if self._prev_mean is not None and self._prev_mean.shape[1] == b:
            mean[:-1] = self._prev_mean[1:]
        std = torch.full((h, b, a_dim), cfg.max_std, device=z.device)
        for _ in range(cfg.cem_iterations):
            noise = torch.randn(h, b, n_g, a_dim, device=z.device)
            gauss = (mean[:, :, None] + std[:, :, None] * noise).clamp(-1, 1)
            actions = torch.cat((gauss, pi_actions), dim=2)  # (H, B, N, A)
            g_value = self._sample_values(z_gauss, gauss.reshape(h, b * n_g, a_dim), pool).reshape(b, n_g)
            value = torch.nan_to_num(torch.cat((g_value, pi_value), dim=1), nan=-1e9)
            elite_value, elite_idx = value.topk(cfg.n_elites, dim=1)  # (B, E)
            idx = elite_idx[None, :, :, None].expand(h, -1, -1, a_dim)
            elites = actions.gather(2, idx)  # (H, B, E, A)
            score = torch.softmax(cfg.elite_weighting_temperature * elite_value, dim=1)  # (B, E)
            w = score[None, :, :, None]
            new_mean = (w * elites).sum(2)
            std = ((w * (elites - new_mean[:, :, None]) ** 2).sum(2)).sqrt().clamp(cfg.min_std, cfg.max_std)
            mean = cfg.gaussian_mean_momentum * mean + (1 - cfg.gaussian_mean_momentum) * new_mean
        # Pick one elite per row, proportionally to its score, and act with its first action.
        choice = torch.multinomial(score, 1).squeeze(1)  # (B,)
        first = elites[0, torch.arange(b, device=z.device), choice]  # (B, A)
        self._prev_mean = mean
        if self.explore:
            first = (first + std[0] * torch.randn_like(first)).clamp(-1, 1)
        return first

    # ----- learning ---------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        cfg = self.config
        batch = self.normalize_targets(self.normalize_inputs(batch))
        obs = self._obs(batch)
        images = {}
        for key in cfg.image_keys:
            x = obs.pop(key)  # (B, H+1, C, h, w)
            shifted = random_shift(x.flatten(0, 1), cfg.max_random_shift_ratio).reshape(x.shape)
            images[key] = _time_major_channels_last(shifted)
        actions = batch[ACTION].transpose(0, 1)  # (H, B, A)
        reward = batch[REWARD].transpose(0, 1)  # (H, B)
        h = actions.shape[0]
        not_done = 1 - batch[DONE].transpose(0, 1).float() if DONE in batch else torch.ones_like(reward)
        # A step after a terminal one has no meaning; mask it out of every loss.
        valid = torch.cumprod(torch.cat((torch.ones_like(not_done[:1]), not_done[:-1])), dim=0)
        valid = valid * ~self._padded(batch, h, actions.shape[1]).to(valid.device)  # past the episode's last frame (LeRobot's masks)
        obs_t = {**{k: v.transpose(0, 1) for k, v in obs.items()}, **images}  # (H+1, B, ...)
        z = self.model.encoder({k: v[0] for k, v in obs_t.items()})
        zs, rs = self.model.rollout(z, actions)  # (H+1, B, Z), (H, B)
        with torch.no_grad():
            next_obs = {k: v[1:] for k, v in obs_t.items()}
            z_targets = self.model_target.encoder(next_obs)
            q_targets = reward + cfg.discount * not_done * self.model.value(self.model.encoder(next_obs))
            target_q = self.model_target.q_all(zs[:-1].detach(), actions).min(0).values
        v_preds = self.model.value(zs[:-1].detach())
        exp_adv = torch.exp((target_q - v_preds.detach()) * cfg.advantage_scaling).clamp(max=100.0)
        decay = cfg.temporal_decay_coeff ** torch.arange(h, device=zs.device, dtype=zs.dtype)[:, None] * valid
        consistency = (decay * F.mse_loss(zs[1:], z_targets, reduction="none").mean(-1)).sum(0).mean()
        reward_loss = (decay * F.mse_loss(rs, reward, reduction="none")).sum(0).mean()
        q_preds = self.model.q_all(zs[:-1], actions)  # (Q, H, B)
        q_loss = (
            (decay * F.mse_loss(q_preds, q_targets[None].expand_as(q_preds), reduction="none").sum(0))
            .sum(0)
            .mean()
        )
        diff = target_q - v_preds
        expectile = torch.where(diff > 0, cfg.expectile_weight, 1 - cfg.expectile_weight)
        v_loss = (decay * expectile * diff.pow(2)).sum(0).mean()
        pi_err = (self.model.pi(zs[:-1].detach()) - actions).pow(2).sum(-1)
        pi_loss = (decay * exp_adv * pi_err).sum(0).mean()
        loss = (
            cfg.consistency_coeff * consistency
            + cfg.reward_coeff * reward_loss
            + cfg.value_coeff * (q_loss + v_loss)
            + cfg.pi_coeff * pi_loss
        )
        info = {
            "consistency_loss": float(consistency.detach()),
            "reward_loss": float(reward_loss.detach()),
            "q_loss": float(q_loss.detach()),
            "v_loss": float(v_loss.detach()),
            "pi_loss": float(pi_loss.detach()),
        }
        return loss, info

    @staticmethod
    def _padded(batch: dict[str, Tensor], h: int, b: int) -> Tensor:
        """(H, B) True where step t of a dataset sample runs past its episode's end: the reader repeats the last
        frame there and flags it `<key>_is_pad` (the action, the reward, or the observation after the action).
        Without `next.done` in the dataset those repeats were learnt from as real steps. The replay buffer's
        batches have no flags (it samples within episodes)."""
        pad = None
        for key, flags in batch.items():
            if not key.endswith("_is_pad") or not isinstance(flags, Tensor) or flags.ndim != 2:
                continue
            f = flags[:, 1:] if flags.shape[1] == h + 1 else flags  # an observation's: the one after each action
            pad = f if pad is None else pad | f
        return (torch.zeros(b, h, dtype=torch.bool) if pad is None else pad.bool()).transpose(0, 1)

    @torch.no_grad()
    def update_target(self) -> None:
        """EMA of the online model into the target model (call after every optimizer step)."""
        m = self.config.target_model_momentum
        torch._foreach_lerp_(list(self.model_target.parameters()), list(self.model.parameters()), 1 - m)

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_samples": None}  # worker threads neither copy nor pickle
