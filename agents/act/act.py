"""ACT policy: ResNet-18 image tokens + state tokens -> transformer encoder -> decoder over a chunk of queries.

Training is a conditional VAE: a transformer encoder reads the state and the target action chunk and
infers a latent "style" z; at inference z = 0 (the prior mean). Loss = L1 on (unpadded) actions
+ kl_weight * KL(q(z | a, s) || N(0, I)).
"""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor, nn

from twinarm.agents.act.config_act import ACTConfig
from twinarm.agents.backbone import ResNet18, load_backbone_weights
from twinarm.agents.features import ACTION, ENV_STATE, STATE
from twinarm.agents.layers import DecoderLayer, EncoderLayer, sinusoid_2d, sinusoid_table
from twinarm.agents.packed import drop_float32_packs, float32_packed, without_float32_packs
from twinarm.agents.policy import Policy


class TemporalEnsembler:
    """Averages every chunk's prediction for the current step with weights exp(-coeff * age_rank).

    The first prediction made for a step gets weight 1, the next exp(-coeff), and so on (ACT's scheme:
    older predictions count more). Only running sums are kept, so memory is one chunk.
    """

    def __init__(self, coeff: float, chunk_size: int) -> None:
        self.coeff = coeff
        self.chunk_size = chunk_size
        self.reset()

    def reset(self) -> None:
        self.wsum: Tensor | None = None  # (B, chunk, A) weighted sum of predictions
        self.weights: Tensor | None = None  # (B, chunk, 1) sum of weights
        self.count: Tensor | None = None  # (chunk,) number of predictions so far per step

    def update(self, chunk: Tensor) -> Tensor:
        if self.wsum is None:
            self.wsum = torch.zeros_like(chunk)
            self.weights = torch.zeros_like(chunk[..., :1])
            self.count = torch.zeros(chunk.shape[1], dtype=chunk.dtype, device=chunk.device)
        assert self.weights is not None and self.count is not None
        w = torch.exp(-self.coeff * self.count)[None, :, None]
        self.wsum = self.wsum + w * chunk
        self.weights = self.weights + w
        self.count = self.count + 1
        action = self.wsum[:, 0] / self.weights[:, 0]
        # Shift the window by one step; the new last slot has no prediction yet.
        self.wsum = torch.cat((self.wsum[:, 1:], torch.zeros_like(self.wsum[:, :1])), dim=1)
        self.weights = torch.cat((self.weights[:, 1:], torch.zeros_like(self.weights[:, :1])), dim=1)
        self.count = torch.cat((self.count[1:], torch.zeros_like(self.count[:1])))
        return action


class ACTModel(nn.Module):
    """The network; works on normalized tensors."""

    def __init__(self, cfg: ACTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim_model
        layer_args = (d, cfg.n_heads, cfg.dim_feedforward, cfg.dropout, cfg.feedforward_activation, cfg.pre_norm)
        if cfg.use_vae:
            self.vae_cls = nn.Embedding(1, d)
            self.vae_state_proj = nn.Linear(cfg.state_dim, d) if cfg.has_state else None
            self.vae_action_proj = nn.Linear(cfg.action_dim, d)
            self.vae_encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(cfg.n_vae_encoder_layers))
            self.vae_latent_proj = nn.Linear(d, 2 * cfg.latent_dim)
            n_vae = 1 + int(cfg.has_state) + cfg.chunk_size
            self.register_buffer("vae_pos", sinusoid_table(n_vae, d)[None], persistent=False)
        if cfg.image_keys:
            self.backbone = ResNet18(cfg.backbone_norm)
            if cfg.pretrained_backbone_weights:
                load_backbone_weights(self.backbone, cfg.pretrained_backbone_weights)
            self.img_proj = nn.Conv2d(ResNet18.out_channels, d, 1)
        self.state_proj = nn.Linear(cfg.state_dim, d) if cfg.has_state else None
        self.env_state_proj = nn.Linear(cfg.env_state_dim, d) if cfg.has_env_state else None
        self.latent_proj = nn.Linear(cfg.latent_dim, d)
        n_1d = 1 + int(cfg.has_state) + int(cfg.has_env_state)
        self.pos_1d = nn.Embedding(n_1d, d)
        self.encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(cfg.n_encoder_layers))
        self.encoder_norm = nn.LayerNorm(d) if cfg.pre_norm else nn.Identity()
        self.decoder = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(cfg.n_decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.query_pos = nn.Embedding(cfg.chunk_size, d)
        self.action_head = nn.Linear(d, cfg.action_dim)
        for name, p in self.named_parameters():
            if p.dim() > 1 and not name.startswith("backbone."):
                nn.init.xavier_uniform_(p)
        self._pos2d: dict[tuple[int, int], Tensor] = {}

    def _image_pos(self, h: int, w: int, ref: Tensor) -> Tensor:
        key = (h, w)
        if key not in self._pos2d:
            self._pos2d[key] = sinusoid_2d(h, w, self.cfg.dim_model)
        return self._pos2d[key].to(ref)

    def _image_tokens(self, images: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Each camera's backbone tokens (B, h*w, d) and 2-D positions (h*w, d), in camera order. Cameras of one
        size go through the backbone as one batch; a dataset whose cameras differ in size (LeRobot records each
        at its own resolution) takes one call per size."""
        sizes = [tuple(im.shape[-2:]) for im in images]
        by_camera: dict[int, Tensor] = {}
        for size in dict.fromkeys(sizes):
            idx = [i for i, s in enumerate(sizes) if s == size]
            out = self.img_proj(self.backbone(torch.cat([images[i] for i in idx], dim=0)))  # (n*B, d, h, w)
            by_camera.update(zip(idx, out.chunk(len(idx), dim=0), strict=True))
        feats = [by_camera[i] for i in range(len(images))]
        tokens = [f.flatten(2).transpose(1, 2) for f in feats]
        return tokens, [self._image_pos(f.shape[-2], f.shape[-1], f) for f in feats]

    def encode_latent(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """z (B, latent) and, when training with the VAE, its posterior mean and log-variance."""
        cfg = self.cfg
        ref = next(iter(v for k, v in batch.items() if k in (STATE, ENV_STATE) or k.startswith("observation.images.")))
        bsz = ref.shape[0]
        if not (cfg.use_vae and self.training and ACTION in batch):
            return torch.zeros(bsz, cfg.latent_dim, device=ref.device, dtype=torch.float32), None, None
        tokens = [self.vae_cls.weight[None].expand(bsz, -1, -1)]
        if self.vae_state_proj is not None:
            tokens.append(self.vae_state_proj(batch[STATE])[:, None])
        tokens.append(self.vae_action_proj(batch[ACTION]))
        x = torch.cat(tokens, dim=1)
        n_prefix = x.shape[1] - cfg.chunk_size
        pad = batch.get("action_is_pad")
        mask = None
        if pad is not None:
            mask = torch.cat((torch.zeros(bsz, n_prefix, dtype=torch.bool, device=x.device), pad.bool()), dim=1)
        last = len(self.vae_encoder) - 1
        for i, layer in enumerate(self.vae_encoder):
            x = layer(x, self.vae_pos, key_padding_mask=mask, first_only=i == last)
        stats = self.vae_latent_proj(x[:, 0])
        mu, logvar = stats[:, : cfg.latent_dim], stats[:, cfg.latent_dim :]
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return z, mu, logvar

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        cfg = self.cfg
        z, mu, logvar = self.encode_latent(batch)
        bsz = z.shape[0]
        tokens = [self.latent_proj(z)[:, None]]
        if self.state_proj is not None:
            tokens.append(self.state_proj(batch[STATE])[:, None])
        if self.env_state_proj is not None:
            tokens.append(self.env_state_proj(batch[ENV_STATE])[:, None])
        pos = [self.pos_1d.weight[None].expand(bsz, -1, -1)]
        if cfg.image_keys:
            feats, p2ds = self._image_tokens([batch[k] for k in cfg.image_keys])
            tokens.extend(feats)
            pos.extend(p[None].expand(bsz, -1, -1) for p in p2ds)
        x = torch.cat(tokens, dim=1)
        pos_t = torch.cat(pos, dim=1)
        for layer in self.encoder:
            x = layer(x, pos_t)
        memory = self.encoder_norm(x)
        q_pos = self.query_pos.weight[None].expand(bsz, -1, -1)
        y = torch.zeros_like(q_pos)
        for i, layer in enumerate(self.decoder):
            y = layer(y, memory, q_pos, pos_t, zero_input=i == 0)
        return self.action_head(self.decoder_norm(y)), mu, logvar


class ACTPolicy(Policy):
    """ACT behind the shared policy API."""

    name = "act"
    config_class = ACTConfig

    def __init__(self, config: ACTConfig, stats: dict | None = None) -> None:
        super().__init__(config, stats)
        self.config: ACTConfig = config
        self.model = ACTModel(config)
        self.ensembler = (
            TemporalEnsembler(config.temporal_ensemble_coeff, config.chunk_size)
            if config.temporal_ensemble_coeff is not None
            else None
        )
        self._queue: deque[Tensor] = deque(maxlen=config.n_action_steps)

    def get_optim_params(self) -> list[dict]:
        backbone = [p for n, p in self.named_parameters() if n.startswith("model.backbone.") and p.requires_grad]
        rest = [p for n, p in self.named_parameters() if not n.startswith("model.backbone.") and p.requires_grad]
        groups: list[dict] = [{"params": rest}]
        if backbone:
            groups.append({"params": backbone, "lr": self.config.optimizer_lr_backbone})
        return groups

    def reset(self) -> None:
        self._queue.clear()
        if self.ensembler is not None:
            self.ensembler.reset()

    @torch.inference_mode()
    def predict_action_chunk(self, batch: dict[str, Tensor]) -> Tensor:
        """A full chunk (B, chunk_size, A) in dataset units (on CPU, its matmuls on packed float32 weights)."""
        self.check_inputs(batch)
        with float32_packed(self):
            chunk = self.model(self.normalize_inputs(batch))[0]
        return self.unnormalize_outputs({ACTION: chunk})[ACTION]

    def train(self, mode: bool = True) -> ACTPolicy:
        if mode:
            drop_float32_packs(self)  # training changes the weights: free the packed copies
        return super().train(mode)

    def __getstate__(self) -> dict:
        return without_float32_packs(super().__getstate__())

    @torch.inference_mode()
    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        if self.ensembler is not None:
            if self.ensembler.wsum is not None:  # its running sums hold earlier chunks of this many envs
                self.check_queued(batch, self.ensembler.wsum.shape[0])
            return self.ensembler.update(self.predict_action_chunk(batch))
        if not self._queue:
            chunk = self.predict_action_chunk(batch)[:, : self.config.n_action_steps]
            self._queue.extend(chunk.transpose(0, 1))
        else:
            self.check_queued(batch, self._queue[0].shape[0])
        return self._queue.popleft()

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        batch = self.normalize_targets(self.normalize_inputs(batch))
        pred, mu, logvar = self.model(batch)
        err = (pred - batch[ACTION]).abs()
        pad = batch.get("action_is_pad")
        if pad is not None:
            valid = (~pad.bool()).unsqueeze(-1).to(err)
            l1 = (err * valid).sum() / (valid.sum() * err.shape[-1]).clamp_min(1)
        else:
            l1 = err.mean()
        info = {"l1_loss": float(l1.detach())}
        loss = l1
        if mu is not None and logvar is not None:
            kld = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(-1).mean()
            info["kld_loss"] = float(kld.detach())
            loss = l1 + self.config.kl_weight * kld
        return loss, info
