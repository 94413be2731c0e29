"""Building blocks shared by the policies: DETR-style transformer layers and sinusoidal embeddings."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook

from twinarm.agents.precision import cpu_compute_dtype

#: Optimizer steps taken in this process. Fused optimizers (AdamW(fused=True)) update weights in place
#: without bumping their version counters, so caches of derived weights also key on this count.
_optimizer_steps = 0


def _count_optimizer_step(*_: object) -> None:
    global _optimizer_steps
    _optimizer_steps += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def weights_key(module: nn.Module, optimizer_steps: bool = True) -> tuple[int, ...]:
    """A key that changes whenever `module`'s parameters or buffers may have changed: in-place edits bump
    version counters, replaced tensors change data pointers, and any optimizer step counts (see above).
    Edits through `.data` bypass all three; derived-weight caches keyed on this would miss them.
    `optimizer_steps=False` leaves out the process-wide step count (for caches that must not be dropped
    whenever some other model trains; a fused optimizer stepping this module then goes unseen).
    Inference tensors (weights made inside `torch.inference_mode()`, e.g. a policy loaded there) have no version
    counter: only their data pointers count (they cannot be trained; in-place edits inside inference mode go
    unseen, like edits through `.data`)."""
    key = [_optimizer_steps] if optimizer_steps else []
    for t in (*module.parameters(), *module.buffers()):
        key += (-1 if t.is_inference() else t._version, t.data_ptr())
    return tuple(key)


#: oneDNN convolution with a fused ReLU post-op (an internal op also used by torch.compile's CPU backend).
_CONV_RELU = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
#: Whether `conv2d_train` takes weight gradients from matmuls. On an AVX2 EPYC oneDNN's weight-gradient kernels
#: ran at a third to half of its forward speed and the matmuls won (paired A/B: 5 % off ACT's training step); on
#: an AVX-512 EPYC oneDNN's own were faster (the matmul path took ACT's step 5 % longer), so it is left to them.
GEMM_WEIGHT_GRAD = torch.backends.cpu.get_cpu_capability() != "AVX512"


def conv2d_relu(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """relu(conv(x)). Outside autograd on CPU this is one oneDNN call with the ReLU fused into the
    convolution (the same values, one pass less over the output), in bf16 inside a bf16 autocast (as autocast
    would run the convolution); otherwise the plain two ops."""
    dtype = cpu_compute_dtype()
    fused = (
        _CONV_RELU
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, dtype)
        and isinstance(conv.padding, tuple)
        and conv.padding_mode == "zeros"
        and not (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad))
    )
    if fused:
        bias = None if conv.bias is None else conv.bias.to(dtype)
        return torch.ops.mkldnn._convolution_pointwise(
            x.to(dtype), conv.weight.to(dtype), bias, conv.padding, conv.stride, conv.dilation, conv.groups, "relu",
            [], "",
        )  # fmt: skip
    return F.relu(conv(x))


def mish(x: Tensor) -> Tensor:
    """Mish x * tanh(softplus(x)) from one sigmoid: with p = sigmoid(x), tanh(softplus(x)) = t / (2 - t) for
    t = p (2 - p). The same function to float32 rounding (a few ulps) and finite everywhere ATen's is; ATen's
    sigmoid uses its fast exp, so this runs 2.8-4x faster than ATen's mish kernel on CPU at every size tried here
    (a (563, 512) map: 144 us against 547) and ~1.5x faster than the one-exp form e^x (e^x + 2) it replaced."""
    return _tanh_softplus(x).mul_(x)


def _tanh_softplus(x: Tensor) -> Tensor:
    """tanh(softplus(x)) as t / (2 - t), t = p (2 - p), p = sigmoid(x): Mish's factor, a new tensor."""
    p = torch.sigmoid(x)
    u = p.sub(2.0).mul_(p)  # -t
    return u.div_(torch.rsub(u, -2.0))  # -t / (-2 + t)


def elu_(x: Tensor) -> Tensor:
    """In-place ELU (alpha 1) from one sigmoid: max(x, e^y - 1) with y = min(x, 0) and e^y - 1 = 1 / sigmoid(-y)
    - 2. ATen's ELU evaluates expm1 to 1 ulp; this runs ~1.5x faster on CPU (a (563, 512) map: 126 us against
    193) and differs from it by at most ~2.5e-7 absolute (float32 spacing at 2), near x = 0."""
    s = x.neg().clamp_(min=0.0).sigmoid_()
    return torch.maximum(x, s.reciprocal_().sub_(2.0), out=x)


def mish_(x: Tensor) -> Tensor:
    """In-place `mish` (the same numbers)."""
    return x.mul_(_tanh_softplus(x))


#: oneDNN's float32 matmul on a weight re-laid-out once in its blocked format (internal ops, the ones
#: torch.compile's CPU freezing uses). At a few rows it runs well above MKL's GEMM on a plain weight: a
#: (16 x 10240) @ (10240 x 2048) product, Diffusion's widest U-Net layer at batch 1, in 4-5 ms instead of 6.7.
PACKED_LINEAR = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
)


def pack_linear_weight(weight: Tensor, rows: int) -> Tensor:
    """A (out, in) float32 weight in oneDNN's layout for `packed_linear`, tuned for inputs of `rows` rows (any
    row count works). An opaque tensor: it serves `packed_linear` only and is not updated with `weight`."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), rows)


def packed_linear(x: Tensor, packed: Tensor, bias: Tensor | None) -> Tensor:
    """x W^T + b for a `pack_linear_weight` weight; x (..., in), float32 on CPU, no autograd."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def conv1d_gemm(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """conv(x) on CPU as im2col + one matmul over all batch rows (the same values to float32 rounding).

    oneDNN's 1-D convolution backward runs at a fraction of GEMM speed for the U-Net's wide, short layers
    (2048 channels over 16 steps: 2.2x slower forward+backward than this), and its forward is slow at batch 1.
    The output is a (B, C_out, L) view of a (B, L, C_out) result. Other devices, grouped, dilated or
    non-zero-padded convolutions use the module itself.
    """
    if (
        x.device.type != "cpu"
        or conv.groups != 1
        or conv.dilation != (1,)
        or conv.padding_mode != "zeros"
        or isinstance(conv.padding, str)
    ):
        return conv(x)
    return conv1d_as_matmul(x, conv.weight, conv.bias, conv.stride[0], conv.padding[0])


def conv1d_as_matmul(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, pad: int) -> Tensor:
    """A zero-padded, ungrouped, undilated 1-D convolution as im2col + one `F.linear(cols, W, b)` (autograd
    through both); a (B, C_out, L) view of a (B, L, C_out) result."""
    c_out, c_in, k = weight.shape
    if k == 1 and pad == 0 and stride == 1:
        return F.linear(x.transpose(1, 2), weight.view(c_out, c_in), bias).transpose(1, 2)
    cols = (F.pad(x, (pad, pad)) if pad else x).unfold(2, k, stride)  # (B, C_in, L_out, k)
    b, _, length, _ = cols.shape
    cols = cols.permute(0, 2, 1, 3).reshape(b * length, c_in * k)
    out = F.linear(cols, weight.reshape(c_out, c_in * k), bias)
    return out.view(b, length, c_out).transpose(1, 2)


def conv1d_rows(x: Tensor, k: int, stride: int, pad: int) -> tuple[Tensor, int]:
    """Inference im2col of x (B, C_in, L) for a zero-padded 1-D convolution: contiguous rows (B * L_out,
    k * C_in) in tap-major order (every channel of tap 0, then of tap 1, ...), and L_out. Over a time-major
    copy of x each row is k consecutive time steps, so this is a row copy, not unfold + permute's element
    gather (14 us against 340 at 2048 channels x 16 steps, k = 5). Multiply by `tap_major(weight)`."""
    b, c_in, length = x.shape
    xt = x.transpose(1, 2)  # (B, L, C_in)
    if k == 1 and stride == 1 and pad == 0:
        return xt.reshape(b * length, c_in).contiguous(), length
    xp = F.pad(xt, (0, 0, pad, pad)).contiguous()  # (B, L + 2 pad, C_in)
    out_len = (length + 2 * pad - k) // stride + 1
    window = xp.as_strided((b, out_len, k * c_in), (xp.stride(0), stride * c_in, 1))  # overlapping rows
    return window.reshape(b * out_len, -1).contiguous(), out_len


def tap_major(weight: Tensor) -> Tensor:
    """A (C_out, C_in, k) convolution weight as the (C_out, k * C_in) matrix that `conv1d_rows` rows multiply."""
    c_out, c_in, k = weight.shape
    return weight.detach().permute(0, 2, 1).reshape(c_out, k * c_in)


class _Conv2dGemmWeightGrad(torch.autograd.Function):
    """conv2d whose weight gradient is im2col + matmul (input gradient and forward stay oneDNN's)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding = ctx.conf
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad,
                x,
                weight,
                None,
                [stride] * 2,
                [padding] * 2,
                [1, 1],
                False,
                [0, 0],
                1,
                [True, False, False],
            )[0]
        if ctx.needs_input_grad[1]:
            grad_w = _conv2d_weight_grad(grad, x, weight.shape, stride, padding)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


#: Widest input for which the per-tap weight gradient beats im2col (ResNet-18 at 240x320, batch 8, AVX2:
#: 64 channels 41 vs 46 ms (oneDNN 55), 128: 25 vs 31 ms; at 256 they tie and at 512 im2col wins, 25 vs 41 ms).
_TAPS_MAX_CHANNELS = 128


def _conv2d_weight_grad(grad: Tensor, x: Tensor, shape: torch.Size, stride: int, padding: int) -> Tensor:
    """d(loss)/d(weight) = grad^T @ im2col(x), over channels-last views, a few images per matmul so the
    column buffer stays small (~8 MB). Stride-1 layers with <= 128 input channels take `_weight_grad_taps`."""
    c_out, c_in, k, _ = shape
    if stride == 1 and c_in <= _TAPS_MAX_CHANNELS:
        return _weight_grad_taps(grad, x, k, padding)
    xp = (F.pad(x, (padding,) * 4) if padding else x).permute(0, 2, 3, 1)  # (B, H, W, C_in) view
    g = grad.permute(0, 2, 3, 1)  # (B, H_out, W_out, C_out) view
    chunk = max(1, (2 << 20) // (g.shape[1] * g.shape[2] * k * k * c_in))
    out: Tensor | None = None
    for start in range(0, x.shape[0], chunk):
        # (b, H_out, W_out, C_in, kh, kw) windows, then one column row per output pixel
        windows = xp[start : start + chunk].unfold(1, k, stride).unfold(2, k, stride)
        cols = windows.permute(0, 1, 2, 4, 5, 3).reshape(-1, k * k * c_in)
        g_t = g[start : start + chunk].reshape(-1, c_out).t()
        out = g_t @ cols if out is None else out.addmm_(g_t, cols)
    assert out is not None
    return out.view(c_out, k, k, c_in).permute(0, 3, 1, 2)


def _weight_grad_taps(grad: Tensor, x: Tensor, k: int, padding: int) -> Tensor:
    """Stride-1 weight gradient with no column buffer: one batched matmul per kernel tap.

    With x zero-padded and flattened per image over rows of the padded width Wp, the input under tap (i, j)
    for output pixel (y, x) sits at flat row y * Wp + x + i * Wp + j, so each tap's operand is a plain slice
    of that buffer. grad gets k - 1 zero columns (up to width Wp), so the entries a slice wraps onto from the
    next row add nothing.
    """
    b, c_in, h, w = x.shape
    c_out, h_out, w_out = grad.shape[1], grad.shape[2], grad.shape[3]
    wp = w + 2 * padding
    # One extra bottom row: the last tap's slice runs k - 1 entries past the padded image.
    xf = F.pad(x.permute(0, 2, 3, 1), (0, 0, padding, padding, padding, padding + 1)).reshape(b, -1, c_in)
    gf = F.pad(grad.permute(0, 2, 3, 1), (0, 0, 0, wp - w_out)).reshape(b, h_out * wp, c_out).transpose(1, 2)
    n = h_out * wp
    out = torch.empty(k, k, c_out, c_in, dtype=grad.dtype, device=grad.device)
    for i in range(k):
        for j in range(k):
            off = i * wp + j
            torch.sum(torch.bmm(gf, xf[:, off : off + n]), dim=0, out=out[i, j])
    return out.permute(2, 3, 0, 1)


def conv2d_train(x: Tensor, weight: Tensor, bias: Tensor | None, conv: nn.Conv2d) -> Tensor:
    """F.conv2d(x, weight, bias) with `conv`'s geometry. Under autograd on CPU, convolutions with >= 64
    input channels take their weight gradient from matmuls (`_conv2d_weight_grad`) where GEMM_WEIGHT_GRAD:
    oneDNN's weight-gradient kernels run at a third to half of its forward speed on these layers (AVX2), the
    matmuls at 1.3-2x theirs. Same values to float32 rounding."""
    k, stride, pad = conv.kernel_size[0], conv.stride[0], conv.padding
    gemm = (
        GEMM_WEIGHT_GRAD
        and torch.is_grad_enabled()
        and weight.requires_grad
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and conv.groups == 1
        and conv.dilation == (1, 1)
        and conv.kernel_size == (k, k)
        and conv.stride == (stride, stride)
        and isinstance(pad, tuple)
        and pad == (pad[0], pad[0])
        and conv.padding_mode == "zeros"
        and conv.in_channels >= 64
    )
    if gemm:
        return _Conv2dGemmWeightGrad.apply(x, weight, bias, stride, pad[0])
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def sinusoid_table(n_positions: int, dim: int) -> Tensor:
    """The fixed 1-D sinusoidal position table of "Attention is all you need", shape (n, dim)."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


def sinusoid_2d(height: int, width: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """DETR's 2-D sine position embedding for a (height, width) feature map, shape (h*w, dim).

    Half the channels encode the row, half the column; coordinates are normalized to (0, 2*pi].
    """
    half = dim // 2
    y = torch.arange(1, height + 1, dtype=torch.float32)[:, None].expand(height, width)
    x = torch.arange(1, width + 1, dtype=torch.float32)[None, :].expand(height, width)
    y = y / height * 2 * math.pi
    x = x / width * 2 * math.pi
    idx = torch.arange(half, dtype=torch.float32)
    freq = temperature ** (2 * (idx // 2) / half)
    px = x[..., None] / freq
    py = y[..., None] / freq
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=-1).flatten(-2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=-1).flatten(-2)
    return torch.cat((py, px), dim=-1).reshape(height * width, dim)


class Dropout(nn.Module):
    """Dropout drawing 16 random bits per element from 64-bit draws (a quarter of the RNG calls of
    `nn.Dropout`'s Bernoulli sampling) and applying them as a float 0/1 mask: a multiply forward and
    backward, several times faster on CPU than `where` on a boolean mask. The drop probability is p
    rounded to a multiple of 2**-16, and kept values are scaled by 1 / (1 - p) as usual."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.scale = 1.0 / (1.0 - p)
        self._threshold = int(round(p * 65536)) - 32768

    @property
    def active(self) -> bool:
        return self.training and self.p > 0.0

    def keep_mask(self, like: Tensor) -> Tensor:
        """A fresh mask shaped like `like`, in its dtype: 1 (keep) with probability 1 - p, else 0.

        `random_` over the full int64 range draws raw 64-bit words (randint's range of 2**64 - 1 takes a
        slower, modulo path), and the comparison writes floats directly (a bool result is slower to
        write and then to convert or select with)."""
        n = like.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device).random_(-(2**63), None)
        bits = words.view(torch.int16)[:n].view(like.shape)
        out = torch.empty(like.shape, dtype=like.dtype, device=like.device)
        return torch.ge(bits, self._threshold, out=out)

    def forward(self, x: Tensor) -> Tensor:
        if not self.active:
            return x
        return x * self.keep_mask(x).mul_(self.scale)


def _linear_dropout(x: Tensor, linear: nn.Linear, drop: Dropout | None, in_scale: float = 1.0) -> Tensor:
    """drop(linear(in_scale * x)). In training both scales ride on the dropout mask, which is as large as
    the output: drop(linear(s * x)) = (mask * s / (1 - p)) * (x W^T + b / s), so neither the (large)
    input nor the weight takes an extra pass forward or backward."""
    if drop is None or not drop.active:
        w = linear.weight if in_scale == 1.0 else linear.weight * in_scale
        return F.linear(x, w, linear.bias)
    bias = linear.bias if linear.bias is None or in_scale == 1.0 else linear.bias / in_scale
    y = F.linear(x, linear.weight, bias)
    return y * drop.keep_mask(y).mul_(in_scale * drop.scale)


def attention_block(
    mha: nn.MultiheadAttention,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None = None,
    drop: Dropout | None = None,
) -> Tensor:
    """drop(out_proj(attention)) with `mha`'s parameters, batch first, as in DETR's layers: the same
    function as `drop(mha(q, k, v, key_padding_mask, need_weights=False)[0])` where `drop` also stands for
    the attention-probability dropout (DETR uses one rate for both).

    Faster than the module on CPU: q and k share one projection matmul when they are the same tensor;
    training drops attention probabilities with `Dropout`'s cheap bits instead of Bernoulli sampling and
    folds both dropout scales into the output projection; inference runs the fused (flash) kernel.
    """
    d, heads = mha.embed_dim, mha.num_heads
    w, b = mha.in_proj_weight, mha.in_proj_bias
    if w is None or not mha.batch_first or mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError("attention_block needs a batch-first MultiheadAttention with packed in_proj")

    # One `split` of the packed weight per call (not a slice per projection): its backward writes the packed
    # gradient in one pass, where each slice's backward zero-fills and adds a full-size gradient.
    sizes = [2 * d, d] if q is k else ([d, 2 * d] if k is v else [d, d, d])
    ws, bs = w.split(sizes), (None,) * len(sizes) if b is None else b.split(sizes)
    if q is k:
        qp, kp = F.linear(q, ws[0], bs[0]).split(d, dim=-1)
        vp = F.linear(v, ws[1], bs[1])
    elif k is v:
        qp = F.linear(q, ws[0], bs[0])
        kp, vp = F.linear(k, ws[1], bs[1]).split(d, dim=-1)
    else:
        qp, kp, vp = (F.linear(x, wi, bi) for x, wi, bi in zip((q, k, v), ws, bs, strict=True))
    bsz, tq, hd = q.shape[0], q.shape[1], d // heads
    qh = qp.unflatten(-1, (heads, hd)).transpose(1, 2)  # (B, heads, Tq, hd)
    kh = kp.unflatten(-1, (heads, hd)).transpose(1, 2)
    vh = vp.unflatten(-1, (heads, hd)).transpose(1, 2)
    in_scale = 1.0
    if drop is not None and drop.active:
        scores = torch.matmul(qh * hd**-0.5, kh.transpose(-2, -1))  # (B, heads, Tq, Tk)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        probs = scores.softmax(dim=-1)
        out = torch.matmul(probs * drop.keep_mask(probs), vh)
        in_scale = drop.scale
    else:
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    out = out.transpose(1, 2).reshape(bsz, tq, d)
    return _linear_dropout(out, mha.out_proj, drop, in_scale)


def _feed_forward(x: Tensor, linear1: nn.Linear, act: nn.Module, linear2: nn.Linear, drop: Dropout) -> Tensor:
    """drop(linear2(drop(act(linear1(x))))). In training with ReLU, ReLU and the inner dropout are one
    0/1 mask (keep and positive) applied by one multiply forward and backward, and both dropout scales
    ride on the output's dropout mask (`_linear_dropout`): the hidden tensor, the widest of the layer,
    skips the ReLU, scale and ReLU-backward passes."""
    if not drop.active:
        return linear2(act(linear1(x)))
    hidden = linear1(x)
    keep = drop.keep_mask(hidden)
    if isinstance(act, nn.ReLU):
        keep.mul_(torch.gt(hidden, 0, out=torch.empty_like(keep)))
    else:
        hidden = act(hidden)
    return _linear_dropout(hidden * keep, linear2, drop, in_scale=drop.scale)


def activation(name: str) -> nn.Module:
    table = {"relu": nn.ReLU, "gelu": nn.GELU, "mish": nn.Mish, "elu": nn.ELU}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(table)}")
    return table[name]()


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward; position embeddings are added to queries and keys only."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float, act: str, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ff)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)
        self.act = activation(act)
        self.pre_norm = pre_norm

    def forward(
        self,
        x: Tensor,
        pos: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        first_only: bool = False,
    ) -> Tensor:
        """`first_only`: return only token 0's output (it still attends to every token), which is all a
        CLS-token readout needs from the last layer; the other queries and their feed-forwards are skipped."""
        h = self.norm1(x) if self.pre_norm else x
        qk = h if pos is None else h + pos
        q = qk[:, :1] if first_only else qk
        if first_only:
            x = x[:, :1]
        x = x + attention_block(self.self_attn, q, qk, h, key_padding_mask, self.dropout)
        if not self.pre_norm:
            x = self.norm1(x)
        h = self.norm2(x) if self.pre_norm else x
        x = x + _feed_forward(h, self.linear1, self.act, self.linear2, self.dropout)
        return x if self.pre_norm else self.norm2(x)


class DecoderLayer(nn.Module):
    """Self-attention over queries, cross-attention into the encoder memory, feed-forward."""

    def __init__(self, dim: int, heads: int, ff: int, dropout: float, act: str, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ff)
        self.linear2 = nn.Linear(ff, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)
        self.act = activation(act)
        self.pre_norm = pre_norm

    def forward(
        self, x: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor, zero_input: bool = False
    ) -> Tensor:
        """`zero_input`: x is all zeros (ACT's first decoder layer), see `_constant_input_self_attention`."""
        h = self.norm1(x) if self.pre_norm else x
        if zero_input and (query_pos.shape[0] == 1 or query_pos.stride(0) == 0):
            x = x + self._constant_input_self_attention(h[0, 0], query_pos[0], x.shape[0])
        else:
            qk = h + query_pos
            x = x + attention_block(self.self_attn, qk, qk, h, None, self.dropout)
        if not self.pre_norm:
            x = self.norm1(x)
        h = self.norm2(x) if self.pre_norm else x
        x = x + attention_block(
            self.cross_attn, h + query_pos, memory + memory_pos, memory, None, self.dropout
        )
        if not self.pre_norm:
            x = self.norm2(x)
        h = self.norm3(x) if self.pre_norm else x
        x = x + _feed_forward(h, self.linear1, self.act, self.linear2, self.dropout)
        return x if self.pre_norm else self.norm3(x)

    def _constant_input_self_attention(self, h_row: Tensor, query_pos: Tensor, bsz: int) -> Tensor:
        """drop(self_attn(...)) when every input row is `h_row` and the query positions are the same for the
        whole batch: every value row is then the same vector v, so head k's output for query i is
        s_ki * v_k with s_ki the sum of query i's (dropped-out) attention probabilities, which is 1 without
        dropout. The attention map is computed once (T x T per head) instead of per batch element, and
        the value and output projections act on one row; gradients flow to every parameter as before."""
        attn, d = self.self_attn, h_row.shape[-1]
        heads = attn.num_heads
        w_qk, w_v = attn.in_proj_weight.split([2 * d, d])
        b_qk, b_v = (None, None) if attn.in_proj_bias is None else attn.in_proj_bias.split([2 * d, d])
        v_row = F.linear(h_row, w_v, b_v)
        # Head k's output column block of out_proj applied to v_k: (heads, d).
        per_head = (attn.out_proj.weight.view(d, heads, d // heads) * v_row.view(heads, -1)).sum(-1).t()
        drop = self.dropout
        tq = query_pos.shape[0]
        if not drop.active:
            out = per_head.sum(0) + (0 if attn.out_proj.bias is None else attn.out_proj.bias)
            return out.expand(bsz, tq, d)
        qk = F.linear(h_row + query_pos, w_qk, b_qk)
        qh, kh = qk.unflatten(-1, (2, heads, d // heads)).permute(1, 2, 0, 3)  # 2 x (heads, T, hd)
        probs = (
            torch.matmul(qh * (d // heads) ** -0.5, kh.transpose(-2, -1)).softmax(-1).expand(bsz, -1, -1, -1)
        )
        sums = (probs * drop.keep_mask(probs)).sum(-1)  # (B, heads, T)
        bias = None if attn.out_proj.bias is None else attn.out_proj.bias * drop.scale
        out = torch.matmul(sums.transpose(1, 2), per_head * (drop.scale * drop.scale))
        if bias is not None:
            out = out + bias
        return out * drop.keep_mask(out)


def mlp(sizes: list[int], act: str = "relu", final_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or final_act:
            layers.append(activation(act))
    return nn.Sequential(*layers)
