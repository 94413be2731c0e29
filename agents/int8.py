"""Int8 inference on CPU: a trained policy runs its large matmuls and ResNet-18 backbone in 8-bit integers.

Opt-in and inference only; training and checkpoints stay float32. Large matmuls (linear layers, 1-D
convolutions) are quantized dynamically (int8 weights per output channel, activations quantized per call, so
no calibration is needed); the backbone's convolutions, with batch norm folded in, are quantized statically,
their activation ranges observed on calibration frames (frames from the policy's own dataset). On this AVX2
CPU a LeRobot-size ACT chunk takes 56 ms instead of ~90 and Diffusion's 0.8-0.9 s instead of ~1.4
(benchmarks/policy_speed.py). Actions move by a fraction of a degree; check success in sim before deploying
a quantized policy (`twinarm eval --int8`, benchmarks/policy_results.py int8).
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from twinarm.agents.backbone import ResNet18, fold_batch_norms
from twinarm.agents.packed import PackedLinears, under_packed

#: Matmuls whose weight has fewer entries stay float32: below ~256x512, quantizing the activations costs
#: more than the int8 matmul saves on this CPU (fbgemm vs MKL at 1-256 rows: 512x512 takes 0.56-0.8x the
#: float time, 256x256 0.9-3x). The action head and state projections, far smaller, are never quantized.
MIN_WEIGHT = 256 * 512
#: Calibration frames used to fix each backbone activation's int8 range.
DEFAULT_CALIBRATION_FRAMES = 32


class Int8Unavailable(RuntimeError):
    """This torch build or device cannot run int8 inference."""


def int8_engines() -> tuple[str, str]:
    """(engine for the linear layers, engine for the backbone's convolutions), or raise `Int8Unavailable`.

    fbgemm (through `x86`) runs these matmuls fastest here (oneDNN's take 1.3-1.6x as long); oneDNN's
    convolutions ran up to 9 % faster than fbgemm's in one A/B and, without fbgemm's 7-bit activations,
    closer to float. Packed weights keep the kernels of the engine they were packed under."""
    engines = torch.backends.quantized.supported_engines
    linear = next((name for name in ("x86", "fbgemm", "onednn") if name in engines), None)
    if linear is None:
        raise Int8Unavailable(f"this torch build has no x86 int8 engine (it offers {engines}); run in float32")
    return linear, "onednn" if "onednn" in engines else linear


def pack_linear(weight: Tensor, bias: Tensor | None, engine: str) -> Any:
    """Per-output-channel int8 weights (out, in), prepacked for `engine`'s dynamic int8 matmul
    (`int8_linear`)."""
    if torch.backends.quantized.engine != engine:
        torch.backends.quantized.engine = engine
    w = weight.detach().contiguous()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # quantized tensor constructors warn of their future
        qw = torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(qw, None if bias is None else bias.detach().contiguous())


def int8_linear(x: Tensor, packed: Any) -> Tensor:
    """x W^T + b for a `pack_linear` weight on rows x (N, in): activations quantized per call, 7-bit
    (reduce_range: AVX2's int16 accumulation cannot saturate)."""
    return torch.ops.quantized.linear_dynamic(x, packed, True)


def _quantize_trunk(net: ResNet18, images: list[Tensor], engine: str) -> nn.Module:
    """The backbone's folded float trunk, statically quantized (FX graph mode) with activation ranges
    observed on `images`."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's FX quantization warns of its move to torchao
        trunk = fold_batch_norms(net)
        example = images[0].contiguous(memory_format=torch.channels_last)
        observed = prepare_fx(trunk, get_default_qconfig_mapping(engine), example_inputs=(example,))
        for x in images:
            observed(x.contiguous(memory_format=torch.channels_last))
        return convert_fx(observed)


def _calibration_images(policy: nn.Module, batches: Iterable[Mapping[str, Tensor]]) -> dict[ResNet18, list[Tensor]]:
    """Run the float policy on `batches` and keep what each foldable backbone receives."""
    nets = _backbones(policy)
    seen: dict[ResNet18, list[Tensor]] = {m: [] for m in nets}
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen[mod].append(args[0].detach().clone())) for m in nets]
    try:
        with torch.inference_mode():
            for batch in batches:
                policy.reset()
                policy.predict_action_chunk(dict(batch))
    finally:
        for h in hooks:
            h.remove()
        policy.reset()
    return seen


def _backbones(policy: nn.Module) -> list[ResNet18]:
    """The policy's ResNet-18s that int8 quantizes: those whose norms fold into their convolutions."""
    return [m for m in policy.modules() if isinstance(m, ResNet18) and m.foldable]


def needs_calibration(policy: nn.Module) -> bool:
    """Whether `enable_int8` needs calibration batches: the policy has a ResNet-18 with foldable norms."""
    return bool(_backbones(policy))


def enable_int8(
    policy: Any, calibration: Iterable[Mapping[str, Tensor]] = (), min_weight: int = MIN_WEIGHT
) -> dict[str, int]:
    """Switch `policy` (on CPU, in eval mode) to int8 inference, in place; return what was quantized.

    `calibration`: a few observation batches in dataset units, as `predict_action_chunk` takes them (for
    example frames of the policy's training dataset); they fix the backbone's activation ranges. A policy
    without a foldable ResNet-18 (state-only, or group-norm backbones) needs none. `min_weight`: the smallest
    weight (entries) quantized; lower it to check the accuracy of small models, which gain no speed from it.
    """
    if policy.device.type != "cpu":
        raise Int8Unavailable(f"int8 inference runs on CPU; this policy is on {policy.device}")
    linear_engine, conv_engine = int8_engines()
    policy.eval()
    own = getattr(policy, "enable_int8_planning", None)
    if own is not None:  # TD-MPC: its planner's packed heads take int8 weights themselves
        return own(linear_engine, min_weight)
    nets = _backbones(policy)
    quantized = 0
    if nets:
        seen = _calibration_images(policy, calibration)
        missing = [n for n in nets if not seen[n]]
        if missing:
            raise ValueError(
                "int8: the image backbone needs calibration frames (observation batches with camera images), "
                "e.g. frames of the policy's training dataset"
            )
        for net in nets:
            torch.backends.quantized.engine = conv_engine
            net.set_int8_trunk(_quantize_trunk(net, seen[net], conv_engine))
            quantized += 1
    linears = PackedLinears(
        policy,
        pack=lambda w, b, rows: pack_linear(w, b, linear_engine),
        apply=lambda x, packed, b: int8_linear(x, packed),
        min_weight=min_weight,
        optimizer_steps=False,  # int8 is tied to the weights it was asked for (see ResNet18.set_int8_trunk)
    )
    for name in ("select_action", "predict_action_chunk"):
        method = getattr(type(policy), name, None)
        if method is not None:
            setattr(policy, name, under_packed(functools.partial(method, policy), linears))
    large = functools.partial(_is_large_matmul, min_weight=min_weight)
    return {"backbones": quantized, "linear_layers": sum(map(large, policy.modules()))}


def _is_large_matmul(m: nn.Module, min_weight: int = MIN_WEIGHT) -> bool:
    """A layer the int8 path takes: nn.Linear, or a 1-D convolution (im2col + matmul), with a weight of at
    least MIN_WEIGHT entries. (A packed attention projection counts as one layer.)"""
    if isinstance(m, nn.Linear | nn.Conv1d):
        return m.weight.numel() >= min_weight
    return False


def calibration_batches(
    policy: Any, dataset: str | Path, frames: int = DEFAULT_CALIBRATION_FRAMES, batch_size: int = 8
) -> list[dict[str, Tensor]]:
    """`frames` observations spread evenly over a LeRobot dataset, as batches `predict_action_chunk` takes
    (images resized to the policy's input size; repeated over the observation steps it stacks)."""
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    reader = LeRobotDatasetReader(dataset)
    inputs = policy.config.input_features
    missing = [k for k in inputs if k not in reader.features]
    if missing:
        raise ValueError(f"int8 calibration: dataset {reader.root} has no {missing} (the policy's inputs)")
    n = min(max(1, frames), len(reader))
    rows = np.linspace(0, len(reader) - 1, n).round().astype(np.int64)
    n_obs = int(getattr(policy.config, "n_obs_steps", 1))
    out = []
    for start in range(0, n, batch_size):
        raw = reader.get_batch(rows[start : start + batch_size])
        batch = {}
        for key, feat in inputs.items():
            x = torch.as_tensor(raw[key], dtype=torch.float32)
            if len(feat.shape) == 3 and tuple(x.shape[-2:]) != tuple(feat.shape[-2:]):
                x = F.interpolate(x, size=tuple(feat.shape[-2:]), mode="bilinear", antialias=True, align_corners=False)
            batch[key] = x[:, None].expand(-1, n_obs, *x.shape[1:]) if n_obs > 1 else x
        out.append(batch)
    return out


def training_dataset(checkpoint: str | Path) -> str | None:
    """The dataset a checkpoint was trained on, from the run's train_config.json (a checkpoint sits in
    `<run>/checkpoints/<step>/pretrained_model`); the first one when it was co-trained; None if unknown."""
    from twinarm.agents.train_config import dataset_roots

    here = Path(checkpoint).resolve()
    for folder in (here, *list(here.parents)[:3]):
        cfg = folder / "train_config.json"
        if cfg.is_file():
            dataset = json.loads(cfg.read_text()).get("dataset")
            if isinstance(dataset, dict):  # LeRobot's train_config.json: {"repo_id": ..., "root": ...}
                dataset = dataset.get("root") or dataset.get("repo_id")
            roots = dataset_roots(dataset)
            return roots[0] if roots else None
    return None
