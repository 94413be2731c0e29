"""An operator steering `evaluate` (the keys of `eval` on a real arm): END cuts the running episode short and it
counts as it stands; STOP also ends the run, whose result then holds the episodes run."""

from __future__ import annotations

import pytest
import torch

import twinarm  # noqa: F401  (registers the env ids)
from tests.agents.conftest import synthetic_stats, tiny_config
from twinarm.agents.eval import evaluate
from twinarm.agents.registry import make_policy
from twinarm.datasets_io.recorder import END, STOP, RecordingControl

PICK = "twinarm/SO101-PickCube-v0"


def test_end_cuts_an_episode_short_and_stop_ends_the_run() -> None:
    torch.manual_seed(0)
    policy = make_policy("act", tiny_config("act"), synthetic_stats()).eval()
    control = RecordingControl()
    # (reset count, policy call since) -> key. evaluate's warm-up call and its reset come first, so the
    # episodes are resets 1, 2, 3...
    script = {(1, 4): END, (2, 2): END, (3, 3): STOP}
    calls = {"episode": -1, "step": 0}
    reset, act = policy.reset, policy.select_action

    def on_reset() -> None:
        calls["episode"] += 1
        calls["step"] = 0
        control.request(END)  # pressed before the episode began: dropped, it does not cut the episode
        reset()

    def on_action(batch: dict) -> torch.Tensor:
        calls["step"] += 1
        if (what := script.get((calls["episode"], calls["step"]))) is not None:
            control.request(what)
        return act(batch)

    policy.reset, policy.select_action = on_reset, on_action
    res = evaluate(policy, PICK, n_episodes=5, n_envs=1, max_steps=10, control=control)
    # Episode 0 ended after its 4th step, 1 after its 2nd, 2 after its 3rd (Esc) and no more ran.
    assert res.lengths == [4, 2, 3] and res.aggregated["n_episodes"] == 3
    assert control.stopped


def test_max_steps_sets_the_episode_length_longer_or_shorter_than_the_envs() -> None:
    policy = make_policy("act", tiny_config("act"), synthetic_stats()).eval()  # untrained: never succeeds
    for max_steps in (7, 180):  # PickCube's own episode is 150 steps
        res = evaluate(policy, PICK, n_episodes=2, n_envs=2, max_steps=max_steps)
        assert res.lengths == [max_steps, max_steps]


def test_control_needs_one_env_at_a_time() -> None:
    policy = make_policy("act", tiny_config("act"), synthetic_stats()).eval()
    with pytest.raises(ValueError, match="control needs n_envs=1"):
        evaluate(policy, PICK, n_episodes=4, n_envs=2, max_steps=2, control=RecordingControl())
