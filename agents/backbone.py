"""ResNet-18 image backbone in plain torch (no torchvision), random init by default.

Module names follow torchvision's, so an ImageNet state dict saved locally can be loaded with
`load_backbone_weights(path)`; nothing is ever downloaded. In eval mode the batch norms are folded
into the convolutions (a cached, fused copy), and frozen batch norms are folded in training too;
inputs run channels-last for oneDNN's fast kernels (except group-norm training, faster in NCHW).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from twinarm.agents.layers import conv2d_train, weights_key

NORMS = ("batch_norm", "frozen_batch_norm", "group_norm")


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
        if not self.training and self.foldable:
            if self._int8 is not None and x.device.type == "cpu":
                if weights_key(self, optimizer_steps=False) != self._int8_key:
                    raise RuntimeError("this backbone's weights changed after it was quantized to int8 (see "
                                       "agents.int8): quantize again from the new float weights")
                return self._int8(x)
            return self._fused_trunk()(x)
        return self.trunk(x)

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
