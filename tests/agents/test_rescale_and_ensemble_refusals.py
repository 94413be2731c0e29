"""Two silent wrongs now refused by name: `rescale_joint_units` (`twinarm eval --lerobot-range-units`) on a joint
feature normalized with mode identity (LeRobot TD-MPC's STATE default), whose values reach the network unscaled, so
that no stats could carry the unit change (it changed nothing: the network read degrees where it was trained on
range units); and ACT with temporal ensembling given a batch of another size without `reset()` (its running sums
broadcast env 0's old predictions into every env)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twinarm.agents.features import Feature
from twinarm.agents.normalize import Normalizer
from twinarm.agents.policy import PolicyConfigError
from twinarm.agents.registry import make_policy

STATE, ACTION = Feature("STATE", (6,)), Feature("ACTION", (6,))
STATS = {k: {"min": np.full(6, -100.0), "max": np.full(6, 100.0), "mean": np.zeros(6), "std": np.full(6, 50.0)}
         for k in ("observation.state", "action")}  # fmt: skip
ACT = dict(dim_model=16, dim_feedforward=16, n_heads=2, n_encoder_layers=1, n_vae_encoder_layers=1, chunk_size=4)


def act(mapping: dict[str, str] | None = None, **kw: object):  # noqa: ANN201
    torch.manual_seed(0)
    extra = {"normalization_mapping": mapping} if mapping else {}
    return make_policy("act", input_features={"observation.state": STATE}, output_features={"action": ACTION},
                       stats=STATS, **ACT, **{"n_action_steps": 4, **kw}, **extra).eval()  # fmt: skip


@pytest.mark.parametrize(("kind", "key"), [("STATE", "observation.state"), ("ACTION", "action")])
def test_rescaling_an_identity_normalized_joint_feature_is_refused(kind: str, key: str) -> None:
    mapping = {"VISUAL": "mean_std", "STATE": "min_max", "ENV": "min_max", "ACTION": "min_max", kind: "identity"}
    policy = act(mapping)
    before = {k: v.clone() for k, v in policy.normalization_stats().items()}
    with pytest.raises(PolicyConfigError, match=f"rescale_joint_units \\(twinarm eval --lerobot-range-units\\): {key} "
                       f"has normalization mode 'identity' \\(normalization_mapping {kind}\\)"):  # fmt: skip
        policy.rescale_joint_units(np.full(6, 2.0))
    after = policy.normalization_stats()  # nothing half-done: the other feature's stats are as they were
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_rescaling_normalized_joints_still_works() -> None:
    policy = act()
    x = torch.full((1, 6), 10.0)
    before = policy.normalize_inputs({"observation.state": x})["observation.state"]
    policy.rescale_joint_units(np.full(6, 2.0))
    after = policy.normalize_inputs({"observation.state": 2 * x})["observation.state"]
    torch.testing.assert_close(after, before)


def test_the_normalizer_refuses_to_rescale_an_identity_feature() -> None:
    norm = Normalizer({"observation.state": "identity"}, {"observation.state": (6,)})
    with pytest.raises(ValueError, match="observation.state: normalization mode identity has no stats to rescale"):
        norm.rescale("observation.state", torch.full((6,), 2.0))
    norm.rescale("action", torch.full((6,), 2.0))  # a feature it does not hold: nothing to do


def test_ensembling_act_refuses_another_batch_size_without_reset() -> None:
    policy = act(n_action_steps=1, temporal_ensemble_coeff=0.01)
    one, three = {"observation.state": torch.zeros(1, 6)}, {"observation.state": torch.zeros(3, 6)}
    policy.select_action(one)
    with pytest.raises(ValueError, match="a batch of 3 where the queued actions are for 1: call policy.reset()"):
        policy.select_action(three)
    with pytest.raises(ValueError, match="the batch lacks the policy's input"):
        policy.select_action({})
    policy.select_action(one)  # the same envs go on
    policy.reset()
    assert policy.select_action(three).shape == (3, 6)
