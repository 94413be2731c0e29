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
