"""The exact inference/training shortcuts in the shared layers give the same numbers as the plain path."""

from __future__ import annotations

import pytest
import torch

from twinarm.agents.layers import DecoderLayer, EncoderLayer


@pytest.mark.parametrize("pre_norm", [False, True])
def test_first_only_encoder_layer_matches_full_layer(pre_norm: bool) -> None:
    torch.manual_seed(0)
    layer = EncoderLayer(32, 4, 64, 0.0, "relu", pre_norm).train()
    x, pos = torch.randn(3, 11, 32), torch.randn(1, 11, 32)
    mask = torch.zeros(3, 11, dtype=torch.bool)
    mask[0, -4:] = True
    full = layer(x, pos, key_padding_mask=mask)[:, :1]
    first = layer(x, pos, key_padding_mask=mask, first_only=True)
    assert first.shape == (3, 1, 32)
    torch.testing.assert_close(first, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_zero_input_decoder_shortcut_matches_attention(pre_norm: bool) -> None:
    torch.manual_seed(0)
    layer = DecoderLayer(32, 4, 64, 0.1, "relu", pre_norm).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-trivial biases and norms
    y = torch.zeros(2, 9, 32)
    memory, qpos, mpos = torch.randn(2, 7, 32), torch.randn(2, 9, 32), torch.randn(2, 7, 32)
    with torch.no_grad():
        fast = layer(y, memory, qpos, mpos, zero_input=True)
        slow = layer(y, memory, qpos, mpos, zero_input=False)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_fast_dropout_rate_scale_and_gradient() -> None:
    from twinarm.agents.layers import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.1).train()
    x = torch.ones(200, 1000, requires_grad=True)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.005
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)
    assert torch.equal(drop.eval()(x), x)


def _perturbed(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-trivial biases and norms
    return module


@pytest.mark.parametrize("inputs", ["q_is_k", "k_is_v", "distinct"])
@pytest.mark.parametrize("training", [False, True])
def test_attention_block_matches_multihead_attention_in_value_and_gradient(
    inputs: str, training: bool
) -> None:
    from twinarm.agents.layers import Dropout, attention_block

    torch.manual_seed(0)
    mha = _perturbed(torch.nn.MultiheadAttention(32, 4, batch_first=True)).train(training)
    a, c = torch.randn(3, 7, 32, requires_grad=True), torch.randn(3, 5, 32, requires_grad=True)
    q, k, v = {"q_is_k": (c, c, a[:, :5]), "k_is_v": (a, c, c), "distinct": (a, c, c * 2)}[inputs]
    mask = torch.zeros(3, 5, dtype=torch.bool)
    mask[1, -2:] = True
    # p = 0 in training takes the explicit softmax path; eval takes the fused kernel.
    fast = attention_block(mha, q, k, v, mask, Dropout(0.0).train(training))
    slow = mha(q, k, v, key_padding_mask=mask, need_weights=False)[0]
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(fast.square().sum(), [a, c, *mha.parameters()], retain_graph=True)
    ref = torch.autograd.grad(slow.square().sum(), [a, c, *mha.parameters()])
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_zero_input_decoder_shortcut_gradients_match_attention(pre_norm: bool) -> None:
    torch.manual_seed(0)
    layer = _perturbed(DecoderLayer(32, 4, 64, 0.0, "relu", pre_norm)).train()
    qpos = torch.randn(1, 9, 32).expand(2, -1, -1)
    memory, mpos = torch.randn(2, 7, 32), torch.randn(2, 7, 32)
    outs = [layer(torch.zeros(2, 9, 32), memory, qpos, mpos, zero_input=z) for z in (True, False)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    params = list(layer.parameters())
    grads = [torch.autograd.grad((o * torch.arange(32.0)).sum(), params) for o in outs]
    for g, r in zip(*grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_folded_dropout_blocks_are_unbiased(act: str) -> None:
    """The training paths fold dropout's 1/(1-p) into weights and fuse masks; every block is linear in
    each mask, so its mean over many draws must be its no-dropout output (a missing or doubled scale
    shifts it by 40 % or more at p = 0.3)."""
    from twinarm.agents.layers import Dropout, _feed_forward, attention_block

    torch.manual_seed(0)
    dec = _perturbed(DecoderLayer(16, 2, 24, 0.3, act, pre_norm=False))
    drop = Dropout(0.3)
    n = 20000
    x, kv = torch.randn(1, 5, 16), torch.randn(1, 6, 16)
    h_row, qpos = torch.randn(16), torch.randn(4, 16)
    cases = {
        "feed_forward": lambda: _feed_forward(x.expand(n, -1, -1), dec.linear1, dec.act, dec.linear2, drop),
        "attention": lambda: attention_block(dec.cross_attn, x.expand(n, -1, -1), kv.expand(n, -1, -1), kv.expand(n, -1, -1), None, drop),
        "constant_input": lambda: dec._constant_input_self_attention(h_row, qpos, n),
    }  # fmt: skip
    with torch.no_grad():
        for name, block in cases.items():
            drop.eval(), dec.eval()
            want = block()[0]
            drop.train(), dec.train()
            got = block()
            assert got.shape[0] == n and not torch.equal(got[0], got[1]), name
            err = (got.mean(0) - want).abs().max() / want.abs().max()
            assert err < 0.05, f"{name}: mean over {n} draws is off by {err:.1%} of the output scale"
