"""Packed world-model heads for TD-MPC planning (inference only, same numbers up to float32 rounding).

The dynamics, reward and Q-ensemble MLPs all read [z, a]: here their layers are stacked so each layer of
all seven heads is one batched matmul and layer norms run once over all heads (except on the CPU with packed
matmuls, below), Mish and ELU each run from one sigmoid (`layers.mish`, `layers.elu_`: ATen's sigmoid takes a fast
exp, its mish and ELU kernels do not; 3.8x and 1.5x faster here) and the Qs' tanh runs as a sigmoid with its
affine parts folded into the neighbouring layers. Large intermediates of the stacked path live in buffers
reused from call to call, so its steady state allocates (and page-faults) almost nothing.

On the CPU, each head runs on its own: layers 1 and 2 on oneDNN-packed weights (in float32 layer 2 ~20 %
faster than MKL's batched matmul over the stack on these (N, m) x (m, m) products, a plan 13 % faster; in bf16
under a `--precision bf16` autocast, packed in bf16), each norm with its own affine in one pass, the head's
rows in cache from layer 1 to layer 2. The values the CEM ranks samples by stay float32.

With an int8 engine (`agents.int8.enable_int8`, `twinarm eval --int8`) the m x m layers of every head and of
the policy prior run as int8 matmuls, one per head (fbgemm: ~4x the float rate on these shapes here), and
layer 1 of all heads as one int8 matmul.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.nn import functional as F

from twinarm.agents.int8 import MIN_WEIGHT, int8_linear, pack_linear
from twinarm.agents.layers import PACKED_LINEAR, elu_, mish, mish_, pack_linear_weight, packed_linear
from twinarm.agents.precision import cpu_compute_dtype

if TYPE_CHECKING:
    from twinarm.agents.tdmpc.tdmpc import WorldModel

def _layer_norm_(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """Layer norm over the last dim with a per-head affine (weight/bias broadcast over the middle dim)."""
    return torch.addcmul(bias, unit_layer_norm(x, eps), weight, out=x)


def unit_layer_norm(x: Tensor, eps: float) -> Tensor:
    """F.layer_norm over the last dim without an affine, the same numbers, given a unit one: ATen's CPU kernel
    normalizes in a scalar loop when weight and bias are None and in vector code when they are tensors (2.5x
    faster on a (7, 512, 512) map here, 280 us against 727; forward and backward 1.4x)."""
    n = x.shape[-1]
    return F.layer_norm(x, (n,), x.new_ones(n), x.new_zeros(n), eps)


class PackedHeads:
    """Stacked copies of a `WorldModel`'s dynamics, reward, Q and policy weights.

    Head order along the stacked dim: 0 dynamics, 1 reward, 2.. Q ensemble. Built from (and only valid
    for) the weights at construction time; `TDMPCPolicy` rebuilds it when any weight changes. With
    `int8_engine`, the m x m layers with at least `min_weight` entries are packed in int8 for that engine.
    """

    def __init__(self, model: WorldModel, int8_engine: str | None = None, min_weight: int = MIN_WEIGHT) -> None:
        dyn, rew, pi = model.dynamics, model.reward, model.pi_net
        heads = [dyn, rew, *model.qs]
        self.n_q = len(model.qs)
        self.latent_dim = model.cfg.latent_dim
        with torch.no_grad():
            # Layer 1 (z+a -> m) and its layer norm, all heads.
            self.w1 = torch.stack([h[0].weight for h in heads]).transpose(1, 2).contiguous()  # (K, in, m)
            self.b1 = torch.stack([h[0].bias for h in heads])[:, None].clone()  # (K, 1, m)
            self.g1 = torch.stack([h[1].weight for h in heads])[:, None].clone()
            self.be1 = torch.stack([h[1].bias for h in heads])[:, None].clone()
            # The Qs' tanh after layer 1 runs as one sigmoid pass: tanh(y) = 2 sigmoid(2y) - 1, the 2y folded into
            # their layer norm's affine and the 2s - 1 into their layer 2: W (2s - 1) + b = (2W) s + (b - W 1).
            self.g1[2:] *= 2.0
            self.be1[2:] *= 2.0
            w2 = [h[3].weight if k < 2 else 2.0 * h[3].weight for k, h in enumerate(heads)]
            b2 = [h[3].bias if k < 2 else h[3].bias - h[3].weight.sum(dim=1) for k, h in enumerate(heads)]
            # Layer 2 (m -> m); only dynamics and reward have a layer norm after it.
            self.w2 = torch.stack(w2).transpose(1, 2).contiguous()  # (K, m, m)
            self.b2 = torch.stack(b2)[:, None].clone()
            self.g2 = torch.stack([dyn[4].weight, rew[4].weight])[:, None].clone()
            self.be2 = torch.stack([dyn[4].bias, rew[4].bias])[:, None].clone()
            # Outputs: dynamics m -> z (+ layer norm, sigmoid); reward and each Q m -> 1, stacked.
            self.w3 = dyn[6].weight.t().contiguous()
            self.b3 = dyn[6].bias.clone()
            self.g3, self.be3 = dyn[7].weight.clone(), dyn[7].bias.clone()
            scalar = [rew[6], *(q[5] for q in model.qs)]
            self.wv = torch.stack([lin.weight for lin in scalar]).transpose(1, 2).contiguous()  # (1+Q, m, 1)
            self.bv = torch.stack([lin.bias for lin in scalar])[:, None].clone()  # (1+Q, 1, 1)
            # Policy prior.
            self.pi_layers = [(pi[i].weight.clone(), pi[i].bias.clone()) for i in (0, 1, 3, 4, 6)]
            # int8: layer 2 of each head and the prior's middle layer, one packed weight each; layer 1 of the
            # heads in use as one int8 matmul (seven narrow per-head calls made a plan slower than float).
            self.q2: list | None = None
            self.pi_q1 = None
            if int8_engine is not None and dyn[3].weight.numel() >= min_weight:
                self.q2 = [pack_linear(w, b, int8_engine) for w, b in zip(w2, b2, strict=True)]
                # Layer 1 of heads lo..hi-1 (all of them in a plan step, the Qs for a terminal value) as one
                # matmul, packed from w1/b1 on first use for each head range.
                self._q1: dict[tuple[int, int], object] = {}
                self._engine = int8_engine
            if int8_engine is not None and pi[3].weight.numel() >= min_weight:
                self.pi_q1 = pack_linear(pi[3].weight, pi[3].bias, int8_engine)
            # On the CPU: layers 1 and 2 of each head on oneDNN-packed weights (packed from w1 and w2 at first use,
            # per compute dtype); in float32 layer 2's (N, m) x (m, m) products run ~20 % faster than MKL's
            # batched matmul.
            self._packed2: dict[torch.dtype, tuple[list[Tensor], list[Tensor]]] = {}
        self.eps1 = {h[1].eps for h in heads}
        self.eps2 = {dyn[4].eps, rew[4].eps}
        if len(self.eps1) != 1 or len(self.eps2) != 1:
            raise ValueError("packed heads need one layer-norm eps per layer")
        self.eps = (self.eps1.pop(), self.eps2.pop(), dyn[7].eps, pi[1].eps, pi[4].eps)
        self._buf: dict[tuple[str, int, int], Tensor] = {}
        self._casts: dict[torch.dtype, tuple[Tensor, ...]] = {}

    def _buffer(self, name: str, heads: int, n: int, ref: Tensor) -> Tensor:
        key = (name, heads, n)
        buf = self._buf.get(key)
        if buf is None:
            buf = self._buf[key] = torch.empty(
                heads, n, self.w2.shape[-1], dtype=ref.dtype, device=ref.device
            )
        return buf

    def _hidden(self, z: Tensor, a: Tensor, lo: int, hi: int) -> Tensor | list[Tensor]:
        """Heads lo..hi-1 through layers 1 and 2 with activations: (hi - lo, N, m), a reused buffer, or, where
        the heads run one at a time (int8, or packed float32 weights on the CPU), one (N, m) tensor per head."""
        if self.q2 is not None:
            m = self.w2.shape[-1]
            h = int8_linear(torch.cat((z, a), dim=-1), self._layer1_int8(lo, hi))  # (N, (hi - lo) * m)
            return [
                self._head(h[:, (k - lo) * m : (k - lo + 1) * m], k, functools.partial(int8_linear, packed=q))
                for k, q in zip(range(lo, hi), self.q2[lo:hi], strict=True)
            ]
        packed = self._cpu_packs(z)
        if packed is not None:
            layer1, layer2 = packed
            dtype = cpu_compute_dtype()
            x = torch.cat((z, a), dim=-1).to(dtype)
            return [
                self._head(
                    packed_linear(x, layer1[k], self.b1[k, 0]),
                    k,
                    lambda h, k=k: packed_linear(h.to(dtype), layer2[k], self.b2[k, 0]),
                )
                for k in range(lo, hi)
            ]
        device = z.device.type
        if torch.is_autocast_enabled(device):  # e.g. bf16 on a GPU: the matmuls in its dtype, the rest float32
            with torch.autocast(device, enabled=False):
                return self._stacked(z, a, lo, hi, torch.get_autocast_dtype(device))
        return self._stacked(z, a, lo, hi, torch.float32)

    def _stacked(self, z: Tensor, a: Tensor, lo: int, hi: int, dtype: torch.dtype) -> Tensor:
        """Heads lo..hi-1 stacked: each layer of all of them one batched matmul in `dtype` (float32 into reused
        buffers; a lower precision, as under an autocast, on weights cast once), norms and activations in float32.
        (Head by head, a GPU's bf16 plan was launch-bound: 2.6x its float32 time on an H100.)"""
        n = z.shape[0]
        x = torch.cat((z, a), dim=-1).to(dtype).expand(hi - lo, -1, -1)
        if dtype == torch.float32:
            w1, b1, w2, b2 = self.w1, self.b1, self.w2, self.b2
            h = torch.baddbmm(b1[lo:hi], x, w1[lo:hi], out=self._buffer("h1", hi - lo, n, z))
        else:
            w1, b1, w2, b2 = self._cast(dtype)
            h = torch.baddbmm(b1[lo:hi], x, w1[lo:hi]).float()
        _layer_norm_(h, self.g1[lo:hi], self.be1[lo:hi], self.eps[0])
        n_mish = max(0, min(hi, 2) - lo)  # dynamics and reward use Mish, the Qs tanh (as a sigmoid, folded)
        if n_mish:
            mish_(h[:n_mish])
        if n_mish < hi - lo:
            h[n_mish:].sigmoid_()
        if dtype == torch.float32:
            o = torch.baddbmm(b2[lo:hi], h, w2[lo:hi], out=self._buffer("h2", hi - lo, n, z))
        else:
            o = torch.baddbmm(b2[lo:hi], h.to(dtype), w2[lo:hi]).float()
        if n_mish:
            _layer_norm_(o[:n_mish], self.g2[lo : lo + n_mish], self.be2[lo : lo + n_mish], self.eps[1])
            mish_(o[:n_mish])
        if n_mish < hi - lo:
            elu_(o[n_mish:])
        return o

    def _cast(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Layers 1 and 2 of all heads (weights, biases) in `dtype`, cast on first use."""
        cast = self._casts.get(dtype)
        if cast is None:
            cast = self._casts[dtype] = tuple(t.to(dtype) for t in (self.w1, self.b1, self.w2, self.b2))
        return cast

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_packed2": {}, "_casts": {}}  # oneDNN-packed tensors neither copy nor pickle

    def _cpu_packs(self, z: Tensor) -> tuple[list[Tensor], list[Tensor]] | None:
        """Layers 1 and 2 packed for oneDNN, one weight per head, in the CPU's compute dtype (float32, or bf16
        inside a bf16 autocast, `agents.precision`), where z (on the CPU) can use them."""
        if not (PACKED_LINEAR and z.device.type == "cpu" and z.dtype in (torch.float32, torch.bfloat16)):
            return None
        dtype = cpu_compute_dtype()
        packs = self._packed2.get(dtype)
        if packs is None:
            rows = z.shape[0]
            packs = self._packed2[dtype] = (
                [pack_linear_weight(w.t().to(dtype), rows) for w in self.w1],
                [pack_linear_weight(w.t().to(dtype), rows) for w in self.w2],
            )
        return packs

    def _head(self, h: Tensor, head: int, layer2: Callable[[Tensor], Tensor]) -> Tensor:
        """One head from its layer-1 pre-activation h (N, m): norm and activation, `layer2`, norm and activation
        (as `_hidden`'s stacked path). Head by head, each norm takes its own affine in the same pass and the
        head's rows stay in cache from norm to layer 2."""
        m = h.shape[-1]
        h = F.layer_norm(h, (m,), self.g1[head, 0], self.be1[head, 0], self.eps[0])
        h = mish_(h) if head < 2 else h.sigmoid_()
        o = layer2(h)
        if head < 2:
            return mish_(F.layer_norm(o, (m,), self.g2[head, 0], self.be2[head, 0], self.eps[1]))
        return elu_(o)

    def _layer1_int8(self, lo: int, hi: int) -> object:
        """Layer 1 of heads lo..hi-1 stacked along the output and packed in int8 (once per range)."""
        packed = self._q1.get((lo, hi))
        if packed is None:
            w = self.w1[lo:hi].transpose(1, 2).reshape(-1, self.w1.shape[1])  # heads' (m, in) weights, stacked
            packed = self._q1[(lo, hi)] = pack_linear(w, self.b1[lo:hi].reshape(-1), self._engine)
        return packed

    def _values(self, o: Tensor | list[Tensor], lo: int, hi: int) -> Tensor:
        """The scalar heads' outputs (hi - lo, N) from hidden states `o` of heads lo+1..hi (reward = 0, Q_i = i+1
        in the value-weight order)."""
        # Float32 values whatever the hidden states' dtype (autocast off): the CEM ranks and weights samples by them.
        if isinstance(o, Tensor):
            with torch.autocast(o.device.type, enabled=False):
                return torch.baddbmm(self.bv[lo:hi], o, self.wv[lo:hi]).squeeze(-1)
        with torch.autocast(o[0].device.type, enabled=False):
            rows = [torch.addmm(self.bv[j], x.float(), self.wv[j]).squeeze(-1) for j, x in zip(range(lo, hi), o, strict=True)]
        return torch.stack(rows)

    def step(self, z: Tensor, a: Tensor, with_q: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """Next latent (N, Z), reward (N,) and, if `with_q`, every Q head (Q, N) for latents z and actions a."""
        hi = 2 + self.n_q if with_q else 2
        o = self._hidden(z, a, 0, hi)
        z_next = torch.addmm(self.b3, o[0], self.w3)
        z_next = torch.sigmoid(F.layer_norm(z_next, z_next.shape[-1:], self.g3, self.be3, self.eps[2]))
        values = self._values(o[1:hi], 0, hi - 1)  # (1 [+ Q], N)
        return z_next, values[0], values[1:] if with_q else None

    def q_all(self, z: Tensor, a: Tensor) -> Tensor:
        """Every Q head (Q, N)."""
        o = self._hidden(z, a, 2, 2 + self.n_q)
        return self._values(o, 1, 1 + self.n_q)

    def pi(self, z: Tensor) -> Tensor:
        """Policy prior mean action tanh(pi_net(z)) (N, A)."""
        (w0, b0), (g0, c0), (w1, b1), (g1, c1), (w2, b2) = self.pi_layers
        h = mish(F.layer_norm(F.linear(z, w0, b0), (w0.shape[0],), g0, c0, self.eps[3]))
        h = int8_linear(h, self.pi_q1) if self.pi_q1 is not None else F.linear(h, w1, b1)
        h = mish(F.layer_norm(h, (w1.shape[0],), g1, c1, self.eps[4]))
        return torch.tanh(F.linear(h, w2, b2))
