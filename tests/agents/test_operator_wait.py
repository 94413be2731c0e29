"""`eval_s` measures the episodes, not the operator: on a real arm it included the time spent waiting for Enter
(resetting the scene) and for the y/n answer (22.6 s for two short episodes); that time is `operator_wait_s`."""

from __future__ import annotations

import time
from pathlib import Path

from twinarm.agents.eval import evaluate, format_table
from twinarm.agents.policy import Policy


def test_operator_waits_are_left_out_of_eval_s(tiny_act_checkpoint) -> None:  # noqa: ANN001
    policy = Policy.from_pretrained(Path(tiny_act_checkpoint()))
    t0 = time.perf_counter()
    result = evaluate(policy, "twinarm/SO101-PickCube-v0", n_episodes=2, n_envs=1, max_steps=2, max_videos=0,
                      before_round=lambda k: time.sleep(0.6), judge=lambda k, ok: time.sleep(0.4) or ok)  # fmt: skip
    wall = time.perf_counter() - t0
    agg = result.aggregated
    assert 2.0 <= agg["operator_wait_s"] < 2.6, agg
    assert agg["eval_s"] <= wall - agg["operator_wait_s"] + 1e-6, (agg, wall)
    assert agg["eval_ep_s"] == agg["eval_s"] / 2
    assert "operator_wait_s  2." in format_table(agg)


def test_a_sim_evaluation_has_no_operator_wait(tiny_act_checkpoint) -> None:  # noqa: ANN001
    policy = Policy.from_pretrained(Path(tiny_act_checkpoint()))
    result = evaluate(policy, "twinarm/SO101-PickCube-v0", n_episodes=1, n_envs=1, max_steps=2, max_videos=0)
    assert "operator_wait_s" not in result.aggregated
