"""The weight average used for Diffusion Policy: decay warm-up, the update rule, and temporary application."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from twinarm.agents.ema import EMA


def test_average_follows_the_warmed_up_decay() -> None:
    net = nn.Linear(3, 2)
    ema = EMA(net, power=0.75, max_decay=0.5)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    for step in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(float(step + 1))
        d = 0.0 if step == 0 else min(0.5, 1 - (1 + step) ** -0.75)
        assert ema.decay() == pytest.approx(d)
        ema.update(net)
        for k, v in net.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v
    for k, v in ema.shadow.items():
        torch.testing.assert_close(v, expected[k])
    assert ema.decay() == pytest.approx(0.5)  # capped


def test_applied_swaps_in_the_average_and_restores_the_weights() -> None:
    net = nn.Linear(3, 2)
    ema = EMA(net)
    ema.update(net)
    raw = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(1.0)
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    with ema.applied(net):
        assert torch.equal(net.weight, raw["weight"])
    assert all(torch.equal(net.state_dict()[k], trained[k]) for k in trained)
    restored = EMA(nn.Linear(3, 2))
    restored.load_state_dict(ema.state_dict())
    assert restored.steps == 1 and all(torch.equal(restored.shadow[k], ema.shadow[k]) for k in ema.shadow)


def test_bad_decay_is_refused() -> None:
    with pytest.raises(ValueError, match="max_decay"):
        EMA(nn.Linear(1, 1), max_decay=1.0)
