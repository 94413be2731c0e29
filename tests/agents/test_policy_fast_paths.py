"""The speed paths (packed TD-MPC planning heads, fused conv+ReLU, folded batch norms) give the same numbers
as the plain modules, to float32 rounding, and follow weight updates and checkpoints."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from tests.agents.conftest import synthetic_batch, synthetic_stats, tiny_config
from twinarm.agents.backbone import ResNet18
from twinarm.agents.layers import PACKED_LINEAR, conv1d_gemm, conv2d_relu, conv2d_train, elu_, mish, mish_
from twinarm.agents.policy import Policy
from twinarm.agents.registry import make_policy
from twinarm.agents.tdmpc import fused
from twinarm.agents.tdmpc.tdmpc import _time_major_channels_last, random_shift


def _perturb(module: nn.Module, scale: float = 0.05) -> None:
    """Non-trivial weights everywhere (zero-initialised heads would make every comparison trivially equal)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


# ----- TD-MPC ---------------------------------------------------------------------------------------------
def _tdmpc(**overrides: object):
    torch.manual_seed(0)
    cfg = tiny_config("tdmpc", with_image=True, **overrides)
    policy = make_policy("tdmpc", cfg, synthetic_stats(True))
    _perturb(policy.model)
    return policy.eval()


def test_fast_mish_matches_aten() -> None:
    x = torch.cat((torch.linspace(-30, 30, 20001), torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4])))
    torch.testing.assert_close(mish(x), F.mish(x), rtol=2e-6, atol=2e-7)
    y = x.clone()
    assert mish_(y) is y and torch.equal(y, mish(x))


def test_fast_elu_matches_aten() -> None:
    x = torch.cat((torch.linspace(-30, 30, 20001), torch.tensor([-1e4, -100.0, -1e-6, 0.0, 1e-6, 100.0, 1e4])))
    y = x.clone()
    assert elu_(y) is y
    torch.testing.assert_close(y, F.elu(x), rtol=1e-6, atol=3e-7)
    assert torch.equal(y[x >= 0], x[x >= 0])  # the positive side passes through untouched


def test_packed_heads_on_onednn_weights_match_the_stacked_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU, float32 plans run layers 1 and 2 of each head on oneDNN-packed weights, one head at a time;
    the stacked batched matmuls (other devices, or no packed matmul) give the same numbers."""
    if not fused.PACKED_LINEAR:
        pytest.skip("this torch has no packed oneDNN matmul")
    policy = _tdmpc()
    heads = fused.PackedHeads(policy.model)
    z, a = torch.rand(37, policy.model.cfg.latent_dim), torch.rand(37, policy.model.cfg.action_dim) * 2 - 1
    with torch.inference_mode():
        packed = heads.step(z, a, with_q=True)
        assert [len(layer) for layer in heads._packed2[torch.float32]] == [2 + policy.model.cfg.q_ensemble_size] * 2
        monkeypatch.setattr(fused, "PACKED_LINEAR", False)
        stacked = heads.step(z, a, with_q=True)
    for x, y in zip(packed, stacked, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("coeff", [1.0, 0.0])
def test_packed_heads_match_world_model(coeff: float) -> None:
    policy = _tdmpc(uncertainty_regularizer_coeff=coeff)
    model, heads = policy.model, fused.PackedHeads(policy.model)
    z, a = torch.rand(37, model.cfg.latent_dim), torch.rand(37, model.cfg.action_dim) * 2 - 1
    with torch.inference_mode():
        z_next, r, q = heads.step(z, a, with_q=True)
        ref_z, ref_r = model.next(z, a)
        torch.testing.assert_close(z_next, ref_z, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r, ref_r, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(q, model.q_all(z, a), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(heads.q_all(z, a), model.q_all(z, a), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(heads.pi(z), model.pi(z), rtol=1e-5, atol=1e-6)
        assert heads.step(z, a, with_q=False)[2] is None
        # Values of whole trajectories, through the policy's own estimate.
        actions = torch.rand(model.cfg.horizon, 37, model.cfg.action_dim) * 2 - 1
        torch.manual_seed(3)
        fast = policy.estimate_value(z, actions)
        policy.fused_planning = False
        torch.manual_seed(3)
        slow = policy.estimate_value(z, actions)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_stacked_q_ensemble_matches_the_heads_in_value_and_gradient() -> None:
    model = _tdmpc().model
    z = torch.rand(3, 4, model.cfg.latent_dim, requires_grad=True)
    a = torch.rand(3, 4, model.cfg.action_dim) * 2 - 1
    za = torch.cat((z, a), dim=-1)
    params = [z, *model.qs.parameters()]
    fast = model.q_all(z, a)
    slow = torch.stack([q(za).squeeze(-1) for q in model.qs])
    assert fast.shape == (len(model.qs), 3, 4)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    w = torch.randn_like(fast)
    for g_fast, g_slow in zip(
        torch.autograd.grad((fast * w).sum(), params),
        torch.autograd.grad((slow * w).sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-5, atol=1e-5)
    # The heads' layer-2 gradients arrive in the parameters' layout: autograd keeps them as views of the one
    # stacked gradient instead of copying each head's into a tensor of its own.
    model.q_all(z, a).sum().backward()
    storages = {q[3].weight.grad.untyped_storage().data_ptr() for q in model.qs}
    assert len(storages) == 1


def test_unit_layer_norm_is_the_plain_layer_norm() -> None:
    x = torch.randn(3, 37, 512) * 4 + 1
    assert torch.equal(fused.unit_layer_norm(x, 1e-5), F.layer_norm(x, (512,), eps=1e-5))


def _drq_shift(x: Tensor, ratio: float) -> Tensor:
    """DrQ's random shift as DrQ (and LeRobot) write it: replicate pad, then bilinear grid_sample at a whole-pixel
    offset per sample drawn the same way."""
    b, c, h, w = x.shape
    pad = int(round(ratio * max(h, w)))
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    eps_h, eps_w = 1.0 / (h + 2 * pad), 1.0 / (w + 2 * pad)
    ar_h = torch.linspace(-1 + eps_h, 1 - eps_h, h + 2 * pad)[:h]
    ar_w = torch.linspace(-1 + eps_w, 1 - eps_w, w + 2 * pad)[:w]
    grid = torch.stack(torch.meshgrid(ar_h, ar_w, indexing="ij")[::-1], dim=-1)[None].expand(b, -1, -1, -1)
    shift = torch.randint(0, 2 * pad + 1, (b, 1, 1, 2)).to(x.dtype) * torch.tensor([2 * eps_w, 2 * eps_h])
    return F.grid_sample(x, grid + shift, padding_mode="zeros", align_corners=False)


def test_random_shift_crops_what_drqs_grid_sample_samples() -> None:
    x = torch.rand(16, 3, 84, 84)
    torch.manual_seed(5)
    ours = random_shift(x, 0.0476)
    torch.manual_seed(5)
    drq = _drq_shift(x, 0.0476)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, drq, rtol=0, atol=1e-4)
    assert not torch.equal(ours, x)  # 16 samples: some offset is not the centre
    assert random_shift(x, 0.0) is x


def test_rollout_matches_stepping_the_world_model_in_value_and_gradient() -> None:
    model = _tdmpc().model
    _perturb(model)
    z0 = torch.rand(4, model.cfg.latent_dim, requires_grad=True)
    actions = torch.rand(3, 4, model.cfg.action_dim) * 2 - 1
    params = [z0, *model.dynamics.parameters(), *model.reward.parameters()]
    zs, rs = model.rollout(z0, actions)
    z, z_steps, r_steps = z0, [z0], []
    for a in actions:
        z, r = model.next(z, a)
        z_steps.append(z)
        r_steps.append(r)
    slow_z, slow_r = torch.stack(z_steps), torch.stack(r_steps)
    assert zs.shape == (4, 4, model.cfg.latent_dim) and rs.shape == (3, 4)
    torch.testing.assert_close(zs, slow_z, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rs, slow_r, rtol=1e-5, atol=1e-6)
    wz, wr = torch.randn_like(zs), torch.randn_like(rs)
    for g_fast, g_slow in zip(
        torch.autograd.grad((zs * wz).sum() + (rs * wr).sum(), params),
        torch.autograd.grad((slow_z * wz).sum() + (slow_r * wr).sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-5, atol=1e-5)


def test_training_images_go_time_major_in_one_channels_last_copy() -> None:
    x = torch.rand(2, 4, 3, 8, 10)  # (B, T, C, h, w)
    y = _time_major_channels_last(x)
    assert torch.equal(y, x.transpose(0, 1))
    nxt = y[1:].reshape(-1, 3, 8, 10)  # what the encoders see for the next steps
    assert nxt.data_ptr() == y[1:].data_ptr()  # a view, no copy
    assert nxt.is_contiguous(memory_format=torch.channels_last)
    assert y[0].is_contiguous(memory_format=torch.channels_last)


def test_fused_planning_picks_the_same_actions() -> None:
    policy = _tdmpc()
    batch = synthetic_batch(policy.config, n=3, seed=1)
    obs = {k: batch[k][:, 0] for k in policy.config.input_features}
    runs = []
    for fused_planning in (True, False):
        policy.fused_planning = fused_planning
        policy.reset()
        torch.manual_seed(11)
        runs.append(torch.stack([policy.select_action(obs) for _ in range(4)]))
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-5, atol=1e-5)


def test_packed_heads_follow_weight_updates_and_checkpoints(tmp_path: Path) -> None:
    policy = _tdmpc()
    cfg = policy.config
    z = torch.rand(5, cfg.latent_dim)
    a = torch.rand(5, cfg.action_dim) * 2 - 1
    with torch.inference_mode():
        before = policy._heads().q_all(z, a)
    # An optimizer step changes the weights in place: the planner must see the new ones.
    policy.train()
    opt = torch.optim.AdamW(policy.get_optim_params(), lr=1e-2, fused=True)
    loss, _ = policy(synthetic_batch(cfg, n=4))
    loss.backward()
    opt.step()
    policy.eval()
    with torch.inference_mode():
        after = policy._heads().q_all(z, a)
        assert not torch.allclose(before, after)
        torch.testing.assert_close(after, policy.model.q_all(z, a), rtol=1e-5, atol=1e-6)
    # A loaded checkpoint plans exactly like the policy that saved it.
    policy.save_pretrained(tmp_path / "ckpt")
    loaded = Policy.from_pretrained(tmp_path / "ckpt")
    with torch.inference_mode():
        assert torch.equal(loaded._heads().q_all(z, a), policy._heads().q_all(z, a))


# ----- convolutions ---------------------------------------------------------------------------------------
def test_conv2d_relu_matches_conv_then_relu() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 5, 2)
    x = torch.randn(4, 3, 21, 23)
    with torch.no_grad():
        ref = F.relu(conv(x))
        torch.testing.assert_close(conv2d_relu(x, conv), ref, rtol=1e-5, atol=1e-6)
        xc = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(conv2d_relu(xc, conv), ref, rtol=1e-5, atol=1e-6)
    # With autograd on it takes the differentiable path.
    out = conv2d_relu(x, conv)
    out.sum().backward()
    assert conv.weight.grad is not None


@pytest.mark.parametrize(("k", "stride", "padding"), [(5, 1, 2), (3, 2, 1), (1, 1, 0), (4, 1, 0)])
def test_conv1d_gemm_matches_conv1d_in_value_and_gradient(k: int, stride: int, padding: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv1d(12, 20, k, stride, padding)
    x = torch.randn(3, 12, 16, requires_grad=True)
    g = torch.randn_like(conv(x))
    fast = conv1d_gemm(x, conv)
    assert fast.shape == g.shape
    grads_fast = torch.autograd.grad(fast, (x, conv.weight, conv.bias), g)
    slow = conv(x)
    grads_slow = torch.autograd.grad(slow, (x, conv.weight, conv.bias), g)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_diffusion_unet_training_path_matches_sampling_path() -> None:
    """Under autograd the U-Net's 1-D convolutions run as im2col + matmul; outside it, as modules."""
    torch.manual_seed(0)
    policy = make_policy("diffusion", tiny_config("diffusion"), synthetic_stats())
    _perturb(policy.model.unet, 0.02)
    unet = policy.model.unet
    cfg = policy.config
    x = torch.randn(2, cfg.horizon, cfg.action_dim)
    t = torch.tensor([3, 17])
    global_dim = unet.down[0][0].cond[1].in_features - cfg.diffusion_step_embed_dim
    cond = torch.randn(2, global_dim)
    with torch.enable_grad():
        fast = unet(x, t, cond)
    with torch.no_grad():
        slow = unet(x, t, cond)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def _diffusion(**overrides: object):
    torch.manual_seed(0)
    policy = make_policy("diffusion", tiny_config("diffusion", **overrides), synthetic_stats())
    _perturb(policy.model.unet, 0.02)
    return policy.eval()


def _sample(policy, plan: bool, n: int = 2) -> Tensor:
    """A denoised horizon from fixed noise, with or without the sampling plan."""
    batch = policy.normalize_inputs(synthetic_batch(policy.config, n=n))
    with torch.inference_mode():
        return policy.model.sample(batch, torch.Generator().manual_seed(5), use_plan=plan)


@pytest.mark.skipif(not PACKED_LINEAR, reason="this torch build has no oneDNN packed matmul")
@pytest.mark.parametrize("scheduler", ["DDIM", "DDPM"])
def test_diffusion_sampling_plan_matches_the_modules(scheduler: str) -> None:
    """Packed convolutions (k=3 and k=1, strided down, transposed up) and the FiLM terms of every step computed
    up front give the modules' horizon; the plan is built once and kept while the weights stay."""
    policy = _diffusion(noise_scheduler_type=scheduler, num_inference_steps=4 if scheduler == "DDIM" else None)
    planned = _sample(policy, plan=True)
    plan = policy.model._plan
    assert plan is not None and len(plan._packed) == sum(
        isinstance(m, nn.Conv1d | nn.ConvTranspose1d) for m in policy.model.unet.modules()
    )
    torch.testing.assert_close(planned, _sample(policy, plan=False), rtol=1e-5, atol=1e-5)
    _sample(policy, plan=True)
    assert policy.model._plan is plan
    with torch.no_grad():  # under autograd's no_grad (not inference mode) the plan packs too
        torch.testing.assert_close(policy.model.sample(policy.normalize_inputs(synthetic_batch(policy.config, n=2)),
                                                       torch.Generator().manual_seed(5)), planned)
    with torch.enable_grad():  # under autograd: FiLM terms up front, the modules' convolutions
        planned_grad = policy.model.sample(policy.normalize_inputs(synthetic_batch(policy.config, n=2)),
                                           torch.Generator().manual_seed(5))
    assert not policy.model._plan.pack
    torch.testing.assert_close(planned_grad.detach(), planned, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not PACKED_LINEAR, reason="this torch build has no oneDNN packed matmul")
def test_diffusion_sampling_plan_follows_weights_training_and_copies() -> None:
    policy = _diffusion(noise_scheduler_type="DDIM", num_inference_steps=3)
    _sample(policy, plan=True)
    twin = copy.deepcopy(policy)  # packed oneDNN tensors are not copied: the copy builds its own
    assert twin.model._plan is None
    torch.testing.assert_close(_sample(twin, plan=True), _sample(policy, plan=True))
    with torch.no_grad():
        policy.model.unet.up[0][2].weight.mul_(1.5)  # an in-place edit: the packed weights are stale
    torch.testing.assert_close(_sample(policy, plan=True), _sample(policy, plan=False), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(_sample(policy, plan=True), _sample(twin, plan=True))
    policy.train()
    assert policy.model._plan is None  # training frees the packed copies


class _Watching(TorchFunctionMode):
    """A torch function mode that changes nothing: under one, `float32_packed` stands aside (as for int8)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's signature)
        return func(*args, **(kwargs or {}))


@pytest.mark.skipif(not PACKED_LINEAR, reason="this torch build has no oneDNN packed matmul")
def test_act_chunks_on_packed_float32_weights_match_and_follow_weights_training_and_copies() -> None:
    torch.manual_seed(0)
    cfg = tiny_config("act", dim_model=256, dim_feedforward=512, n_heads=2)  # 256 x 256 and wider: packed
    policy = make_policy("act", cfg, synthetic_stats()).eval()
    _perturb(policy.model, 0.02)
    batch = {k: v[:, -1] if v.dim() > 2 else v for k, v in synthetic_batch(cfg, n=3).items() if k.startswith("observation.")}

    def plain() -> Tensor:
        with _Watching():
            return policy.predict_action_chunk(batch)

    packed = policy.predict_action_chunk(batch)
    packs = policy.__dict__["_float32_packs"]
    assert len(packs.packed) >= 3 * cfg.n_encoder_layers  # attention projections and both feed-forward layers
    torch.testing.assert_close(packed, plain(), rtol=1e-4, atol=1e-4)
    twin = copy.deepcopy(policy)  # the packed oneDNN copies stay behind
    assert "_float32_packs" not in twin.__dict__
    torch.testing.assert_close(twin.predict_action_chunk(batch), packed)
    with torch.no_grad():
        policy.model.encoder[0].linear2.weight.mul_(-1.5)  # an in-place edit: the packed weights are stale
    moved = policy.predict_action_chunk(batch)
    torch.testing.assert_close(moved, plain(), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(moved, packed, rtol=1e-3, atol=1e-3)
    policy.train()
    assert "_float32_packs" not in policy.__dict__  # training frees them


@pytest.mark.parametrize(("c_in", "k", "stride", "padding", "channels_last"), [
    (128, 3, 1, 1, True), (64, 3, 2, 1, True), (128, 1, 2, 0, True), (128, 3, 1, 1, False), (16, 3, 1, 1, True),
    (64, 3, 1, 1, True), (64, 1, 1, 0, True), (64, 5, 1, 2, False), (64, 3, 1, 0, True), (256, 3, 1, 1, True),
])  # fmt: skip
def test_conv2d_train_gradients_match_conv2d(
    c_in: int, k: int, stride: int, padding: int, channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The matmul weight gradients (im2col, or per tap at stride 1) and the oneDNN input gradient equal
    autograd's conv2d, for every padding/kernel the tap offsets must handle (on any CPU: the path is forced)."""
    from twinarm.agents import layers

    monkeypatch.setattr(layers, "GEMM_WEIGHT_GRAD", True)
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, 24, k, stride, padding)
    x = torch.randn(3, c_in, 13, 17)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    params = (x, conv.weight, conv.bias)
    fast = conv2d_train(x, conv.weight, conv.bias, conv)
    assert (type(fast.grad_fn).__name__ == "_Conv2dGemmWeightGradBackward") == (c_in >= 64)
    g = torch.randn_like(fast)
    slow = F.conv2d(x, conv.weight, conv.bias, stride, padding)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(torch.autograd.grad(fast, params, g), torch.autograd.grad(slow, params, g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("norm", ["frozen_batch_norm", "batch_norm"])
def test_backbone_fast_paths_match_plain_modules(norm: str) -> None:
    """Training with frozen batch norms folds them into the convolutions; eval folds any batch norm.
    Both must equal the plain conv -> norm chain in value and (training) in gradient."""
    torch.manual_seed(0)
    net = ResNet18(norm)
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "running_mean"):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.rand(2, 3, 64, 96)

    def plain(inp: Tensor) -> Tensor:
        h = net.maxpool(F.relu(net.bn1(net.conv1(inp))))
        for i in range(1, 5):
            for b in getattr(net, f"layer{i}"):
                out = b.bn2(b.conv2(F.relu(b.bn1(b.conv1(h)))))
                h = F.relu(out + (h if b.downsample is None else b.downsample(h)))
        return h

    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), plain(x), rtol=1e-4, atol=1e-5)
    if norm != "frozen_batch_norm":
        return
    net.train()
    fast = net(x)
    (fast * torch.linspace(-1, 1, fast.numel()).view_as(fast)).sum().backward()
    fast_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    slow = plain(x)
    (slow * torch.linspace(-1, 1, slow.numel()).view_as(slow)).sum().backward()
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5)
    for g_fast, p in zip(fast_grads, net.parameters(), strict=True):
        # Sums over every pixel: compare against the gradient's own scale, not element by element.
        torch.testing.assert_close(g_fast, p.grad, rtol=1e-4, atol=1e-5 * float(p.grad.abs().max()))


@pytest.mark.parametrize("norm", ["frozen_batch_norm", "group_norm"])
def test_packed_backbone_matches_the_unpacked_trunk_per_input_shape(norm: str) -> None:
    """CPU float32 inference runs the trunk on oneDNN-packed weights, one pack per input shape (folded nets with
    ReLUs and residual adds done by the convolutions, group-norm nets with their norms in between), rebuilt
    when the weights change; copies and pickles leave the packs behind."""
    from twinarm.agents import backbone

    if not backbone._PACKED_CONV:
        pytest.skip("this torch has no packed oneDNN convolutions")
    torch.manual_seed(0)
    net = ResNet18(norm)
    _perturb(net, 0.2)
    net.eval()

    def unpacked(x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return net._fused_trunk()(x) if net.foldable else net.trunk(x)

    shapes = [(1, 3, 64, 96), (2, 3, 48, 64)]
    with torch.inference_mode():
        for shape in shapes:
            x = torch.rand(shape)
            fast, slow = net(x), unpacked(x)
            torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5 * float(slow.abs().max()))
        assert set(net._packed) == {(shape, torch.float32) for shape in shapes}
    twin = copy.deepcopy(net)
    assert twin._packed == {}
    with torch.inference_mode():
        torch.testing.assert_close(twin(x), fast)
    with torch.no_grad():
        net.layer1[0].conv1.weight.mul_(1.5)  # new weights: the packs are rebuilt
        x = torch.rand(shapes[0])
        fast, slow = net(x), unpacked(x)
        torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5 * float(slow.abs().max()))
        assert set(net._packed) == {(shapes[0], torch.float32)}


@pytest.mark.parametrize("norm", ["frozen_batch_norm", "batch_norm"])
def test_folded_backbone_follows_fused_optimizer_steps(norm: str) -> None:
    """Fused AdamW updates weights without bumping version counters; the folded copy must still refresh."""
    torch.manual_seed(0)
    net = ResNet18(norm)
    x = torch.rand(2, 3, 64, 64)
    net.eval()
    with torch.no_grad():
        before = net(x)  # builds the folded copy
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, fused=True)
    net(x).square().mean().backward()
    opt.step()
    net.eval()
    with torch.no_grad():
        fast = net(x)
        slow = net.trunk(x)
    scale = float(slow.abs().max())
    assert not torch.allclose(fast, before, rtol=1e-2, atol=1e-2 * scale)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-5 * scale)
