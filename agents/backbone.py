"""ResNet-18 image backbone in plain torch (no torchvision), random init by default.

Module names follow torchvision's, so an ImageNet state dict saved locally can be loaded with
`load_backbone_weights(path)`; nothing is ever downloaded. In eval mode the batch norms are folded
into the convolutions (a cached, fused copy), and frozen batch norms are folded in training too;
inputs run channels-last for oneDNN's fast kernels (except group-norm training, faster in NCHW). On the CPU,
float32 inference runs on convolution weights packed once for oneDNN (`_PackedTrunk`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from twinarm.agents.layers import conv2d_train, weights_key
from twinarm.agents.precision import cpu_compute_dtype

NORMS = ("batch_norm", "frozen_batch_norm", "group_norm")
_PACKED_CONV = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_reorder_convolution_weight")
    and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
)
#: Input shapes whose packed trunks a backbone keeps (each holds a copy of the weights).
_PACKED_SHAPES = 4


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms (buffers, not parameters), as in DETR/ACT."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def conv_norm(conv: nn.Conv2d, norm: nn.Module, x: Tensor) -> Tensor:
    """norm(conv(x)); a frozen batch norm is folded into the convolution's weight and bias instead (the same
    function up to float32 rounding, with gradients to the conv weight through the fold), which saves a
    full read and write of the activation forward and backward."""
    if isinstance(norm, FrozenBatchNorm2d):
        scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
        bias = norm.bias - norm.running_mean * scale
        return conv2d_train(x, conv.weight * scale[:, None, None, None], bias, conv)
    return norm(conv2d_train(x, conv.weight, conv.bias, conv))


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch_norm":
        return nn.BatchNorm2d(channels)
    if kind == "frozen_batch_norm":
        return FrozenBatchNorm2d(channels)
    if kind == "group_norm":
        return nn.GroupNorm(max(1, channels // 16), channels)
    raise ValueError(f"backbone norm must be one of {NORMS}, got {kind!r}")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = make_norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = make_norm(norm, cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), make_norm(norm, cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(conv_norm(self.conv1, self.bn1, x), inplace=True)
        out = conv_norm(self.conv2, self.bn2, out)
        identity = x if self.downsample is None else conv_norm(self.downsample[0], self.downsample[1], x)
        return F.relu(out + identity, inplace=True)


class ResNet18(nn.Module):
    """ResNet-18 trunk up to `layer4` (stride 32, 512 channels); no pooling or classifier head."""

    out_channels = 512

    def __init__(self, norm: str = "batch_norm") -> None:
        super().__init__()
        self.norm = norm
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = make_norm(norm, 64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (64, 128, 256, 512)
        cin = 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(
                self,
                f"layer{i + 1}",
                nn.Sequential(BasicBlock(cin, w, stride, norm), BasicBlock(w, w, 1, norm)),
            )
            cin = w
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero the last norm of each residual branch so the random-init net starts near identity.
        for m in self.modules():
            if isinstance(m, BasicBlock) and isinstance(m.bn2, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.zeros_(m.bn2.weight)
        self._fused: nn.Module | None = None
        self._fused_key: tuple[int, ...] = ()
        self._int8: nn.Module | None = None
        self._int8_key: tuple[int, ...] = ()
        self._packed: dict[tuple[tuple[int, ...], torch.dtype], _PackedTrunk] = {}
        self._packed_key: tuple[int, ...] = ()

    @property
    def foldable(self) -> bool:
        """Whether each norm can be folded into its convolution for inference (batch norms; not group norms)."""
        return self.norm != "group_norm"

    def trunk(self, x: Tensor) -> Tensor:
        # relu(maxpool(.)) == maxpool(relu(.)) (ReLU is monotone; the same gradients too): the ReLU and its
        # backward then run on the pooled map, a quarter of the stem's largest activation.
        x = F.relu(self.maxpool(conv_norm(self.conv1, self.bn1, x)), inplace=True)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.norm == "group_norm":
            # Group norm's CPU kernels are slower channels-last: training runs ~5% faster in NCHW.
            return self.trunk(x.contiguous())
        x = x.contiguous(memory_format=torch.channels_last)
        if self.training:
            return self.trunk(x)
        if self.foldable and self._int8 is not None and x.device.type == "cpu":
            if weights_key(self, optimizer_steps=False) != self._int8_key:
                raise RuntimeError("this backbone's weights changed after it was quantized to int8 (see "
                                   "agents.int8): quantize again from the new float weights")
            return self._int8(x)
        if _packs_convs(x):
            return self._packed_trunk(x)(x)
        return self._fused_trunk()(x) if self.foldable else self.trunk(x)

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_packed": {}}  # packed oneDNN tensors neither copy nor pickle

    def set_int8_trunk(self, trunk: nn.Module) -> None:
        """Use `trunk` (this net quantized, see `agents.int8`) for CPU inference; it is tied to the current
        weights (their tensors and versions; optimizer steps elsewhere in the process do not count)."""
        object.__setattr__(self, "_int8", trunk)
        self._int8_key = weights_key(self, optimizer_steps=False)

    # ----- inference: batch norm folded into the convolutions -----------------------------------
    def _fused_trunk(self) -> nn.Module:
        key = weights_key(self)
        if self._fused is None or key != self._fused_key:
            object.__setattr__(self, "_fused", fold_batch_norms(self))
            self._fused_key = key
        assert self._fused is not None
        return self._fused

    def _packed_trunk(self, x: Tensor) -> _PackedTrunk:
        """The packed trunk for x's shape (oneDNN picks its weight layout for an input size) and the compute
        dtype (bf16 inside a CPU bf16 autocast), rebuilt when the weights change: the folded trunk's
        convolutions, or with group norms this net's own."""
        key = weights_key(self)
        if key != self._packed_key:
            self._packed.clear()
            self._packed_key = key
        dtype = cpu_compute_dtype()
        shape_key = (tuple(x.shape), dtype)
        packed = self._packed.get(shape_key)
        if packed is None:
            if len(self._packed) >= _PACKED_SHAPES:
                self._packed.clear()
            source = self._fused_trunk() if self.foldable else self
            packed = self._packed[shape_key] = _PackedTrunk(source, tuple(x.shape), dtype)
        return packed


def _fold_conv(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    eps = bn.eps
    scale = bn.weight * (bn.running_var + eps).rsqrt()
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
    return fused.to(device=conv.weight.device, memory_format=torch.channels_last).requires_grad_(False)


class _FusedBlock(nn.Module):
    def __init__(self, block: BasicBlock) -> None:
        super().__init__()
        self.conv1 = _fold_conv(block.conv1, block.bn1)
        self.conv2 = _fold_conv(block.conv2, block.bn2)
        self.down = None if block.downsample is None else _fold_conv(block.downsample[0], block.downsample[1])

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(F.relu(self.conv1(x), inplace=True))
        return F.relu(out + (x if self.down is None else self.down(x)), inplace=True)


def _packs_convs(x: Tensor) -> bool:
    """Whether inference on x runs the packed trunk: float32 on the CPU outside autograd, with oneDNN's packed
    convolutions available. (Unlike the packed linear layers, this runs under torch function modes too:
    `eval --int8` swaps a folded trunk for its quantized one before this point, and quantizes no group-norm
    trunk.)"""
    return _PACKED_CONV and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()


class _PackedTrunk:
    """A ResNet-18 trunk on convolution weights packed once in oneDNN's layout for one input shape (unpacked,
    oneDNN re-lays every weight out at every call). From a folded trunk (`fold_batch_norms`) each ReLU and each
    residual add + ReLU is done by its convolution (oneDNN post-ops): ACT's 240x320 frame 26 ms instead of 31
    here. From a group-norm net the norms run between the packed convolutions: Diffusion's two frames 58 ms
    instead of 73. The same numbers as the unpacked trunks."""

    def __init__(self, source: nn.Module, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        folded = isinstance(source, nn.Sequential)  # `fold_batch_norms`' output, else a ResNet18
        relu = "relu" if folded else "none"
        if folded:
            stem, self.stem_norm, blocks = source[0], None, list(source)[3:]
        else:
            layers = [getattr(source, f"layer{i}") for i in range(1, 5)]
            stem, self.stem_norm, blocks = source.conv1, source.bn1, [b for layer in layers for b in layer]
        self.maxpool = source[1] if folded else source.maxpool
        self.stem, shape = self._pack(stem, shape, dtype)
        shape = _out_shape(shape, shape[1], self.maxpool.kernel_size, self.maxpool.stride, self.maxpool.padding)
        self.blocks = []
        for block in blocks:
            conv1, inner = self._pack(block.conv1, shape, dtype, relu)
            down_conv = block.down if folded else block.downsample and block.downsample[0]
            down = None if down_conv is None else self._pack(down_conv, shape, dtype)[0]
            conv2, shape = self._pack(block.conv2, inner, dtype, relu)
            norms = None if folded else (block.bn1, block.bn2, block.downsample and block.downsample[1])
            self.blocks.append((conv1, down, conv2, norms))

    @staticmethod
    def _pack(
        conv: nn.Conv2d, shape: tuple[int, ...], dtype: torch.dtype, relu: str = "none"
    ) -> tuple[tuple, tuple[int, ...]]:
        """conv's packed arguments for inputs of this shape, and its output's shape."""
        geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        weight = torch.ops.mkldnn._reorder_convolution_weight(conv.weight.detach().to(dtype), *geometry, list(shape))
        bias = None if conv.bias is None else conv.bias.detach().to(dtype)
        out = _out_shape(shape, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
        return (weight, bias, *geometry, relu), out

    @staticmethod
    def _conv(packed: tuple, x: Tensor, add: Tensor | None = None) -> Tensor:
        weight, bias, padding, stride, dilation, groups, relu = packed
        if add is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, padding, stride, dilation, groups, relu, [], ""
            )
        return torch.ops.mkldnn._convolution_pointwise(
            x, add, weight, bias, padding, stride, dilation, groups, "add", None, relu, [], ""
        )

    def __call__(self, x: Tensor) -> Tensor:
        x = self._conv(self.stem, x.to(self.dtype))
        if self.stem_norm is not None:
            x = self.stem_norm(x)
        x = F.relu(self.maxpool(x))
        for conv1, down, conv2, norms in self.blocks:
            if norms is None:  # folded: the convolutions apply their ReLU and the residual add themselves
                identity = x if down is None else self._conv(down, x)
                x = self._conv(conv2, self._conv(conv1, x), identity)
                continue
            norm1, norm2, down_norm = norms
            identity = x if down is None else down_norm(self._conv(down, x))
            out = norm2(self._conv(conv2, F.relu(norm1(self._conv(conv1, x)), inplace=True)))
            x = F.relu(out.add_(identity), inplace=True)
        return x


_Geometry = int | tuple[int, ...]


def _out_shape(
    shape: tuple[int, ...],
    channels: int,
    kernel: _Geometry,
    stride: _Geometry,
    padding: _Geometry,
    dilation: _Geometry = 1,
) -> tuple[int, ...]:
    """(N, channels, H', W') of a convolution or pooling with this geometry (ints or pairs) over `shape`."""
    pair = [v if isinstance(v, tuple) else (v, v) for v in (kernel, stride, padding, dilation)]
    size = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in zip(shape[2:], *pair, strict=True)]
    return (shape[0], channels, *size)


def fold_batch_norms(net: ResNet18) -> nn.Module:
    """The trunk as plain convolutions, each batch norm folded into the convolution before it (inference)."""
    blocks: list[nn.Module] = [_fold_conv(net.conv1, net.bn1), net.maxpool, nn.ReLU(inplace=True)]
    for i in range(1, 5):
        blocks += [_FusedBlock(b) for b in getattr(net, f"layer{i}")]
    return nn.Sequential(*blocks).eval()


def load_backbone_weights(net: ResNet18, path: str | Path) -> None:
    """Load torchvision-named ResNet-18 weights from a local `.pth`/`.safetensors` file (fc is ignored)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {
        k: v for k, v in state.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"backbone weights {path}: missing {missing[:5]}, unexpected {unexpected[:5]}")
