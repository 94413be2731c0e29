"""How `evaluate` closes an episode: an env that terminates while the round's others run on is restarted, not
stepped again (Gymnasium asserts on that without autoreset), and an operator's Ctrl-C at the success prompt leaves
every kept episode whole (the result's lists used to differ in length, so saving the finished episodes failed)."""

from __future__ import annotations

import json

import pytest
import torch

import twinarm  # noqa: F401  (registers the env ids)
from tests.agents.conftest import synthetic_stats, tiny_config
from twinarm.agents.eval import EvalResult, evaluate
from twinarm.agents.registry import make_policy
from twinarm.envs.arm_env import ArmEnv

PICK = "twinarm/SO101-PickCube-v0"


def test_an_env_that_terminates_early_is_restarted_while_the_others_run_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task that ends its episode (a dropped object, say) on one env of a round: episodes of even seeds end
    after 3 steps here, the others run to max_steps."""
    reset, step = ArmEnv.reset, ArmEnv.step

    def seeded_reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN202
        self._ends_early = seed is not None and seed % 2 == 0
        self._steps_taken = 0
        return reset(self, seed=seed, options=options)

    def ending_step(self, action):  # noqa: ANN001, ANN202
        obs, reward, terminated, truncated, info = step(self, action)
        self._steps_taken += 1
        return obs, reward, terminated or (self._ends_early and self._steps_taken == 3), truncated, info

    monkeypatch.setattr(ArmEnv, "reset", seeded_reset)
    monkeypatch.setattr(ArmEnv, "step", ending_step)
    policy = make_policy("act", tiny_config("act"), synthetic_stats()).eval()  # untrained: never succeeds
    res = evaluate(policy, PICK, n_episodes=4, n_envs=2, max_steps=6)
    assert res.seeds == [0, 1, 2, 3]
    assert res.lengths == [3, 6, 3, 6]


def test_ctrl_c_at_the_success_prompt_keeps_every_finished_episode_whole() -> None:
    torch.manual_seed(0)
    policy = make_policy("act", tiny_config("act"), synthetic_stats()).eval()
    kept: list[EvalResult] = []

    def judge(episode: int, measured: bool) -> bool:
        if episode == 1:
            raise KeyboardInterrupt  # the operator at "success? [y/n]" of the second episode
        return True

    with pytest.raises(KeyboardInterrupt):
        evaluate(policy, PICK, n_episodes=3, n_envs=1, max_steps=4, judge=judge, after_round=kept.append)
    result = kept[-1]
    assert result.aggregated["n_episodes"] == 1
    saved = json.loads(json.dumps(result.to_json()))  # what `twinarm eval` writes for the kept episodes
    assert [e["episode_ix"] for e in saved["per_episode"]] == [0]
