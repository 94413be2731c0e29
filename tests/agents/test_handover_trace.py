"""`benchmarks/handover_trace.py`: the TransferCube expert hands over; made to keep the right gripper shut it ends
with both holding, made to open the right on the way it drops the cube; each is told apart and timed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from twinarm.envs.experts import make_expert

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "handover_trace.py"
_spec = importlib.util.spec_from_file_location("handover_trace", _PATH)
assert _spec is not None and _spec.loader is not None
handover = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(handover)


def _expert_with(env: gym.Env, joint: str, value: float, after: int):  # noqa: ANN202
    """The expert, except that `joint`'s target is held at `value` from step `after` on."""
    expert = make_expert(env)
    j = env.unwrapped.spec_arm.joint_names.index(joint)
    steps = [0]

    def act(obs):  # noqa: ANN001, ANN202
        a = np.array(expert(obs), dtype=np.float32)
        if steps[0] >= after:
            a[j] = value
        steps[0] += 1
        return a

    def reset() -> None:
        expert.reset()
        steps[0] = 0

    return act, reset


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(handover.ENV, obs_type="state")


def test_the_expert_hands_over_after_the_left_touches(env: gym.Env) -> None:
    act, reset = handover._actor(env, "expert", {})
    row = handover.trace(env, act, reset, seed=3)
    assert row["end"] == "handed over"
    assert row["left_touch"] is not None and row["handed_over"] > row["left_touch"]


def test_a_right_gripper_that_never_opens_ends_with_both_holding(env: gym.Env) -> None:
    expert_row = handover.trace(env, *handover._actor(env, "expert", {}), seed=3)
    act, reset = _expert_with(env, "right_gripper", 0.0, after=expert_row["left_touch"])
    row = handover.trace(env, act, reset, seed=3)
    assert row["end"] == "both hold" and row["handed_over"] is None
    assert row["left_touch"] == expert_row["left_touch"]


def test_a_right_gripper_that_opens_on_the_way_drops_the_cube(env: gym.Env) -> None:
    expert_row = handover.trace(env, *handover._actor(env, "expert", {}), seed=3)
    act, reset = _expert_with(env, "right_gripper", 1.0, after=expert_row["left_touch"] - 30)  # carrying it alone
    row = handover.trace(env, act, reset, seed=3)
    assert row["end"] == "dropped" and row["left_touch"] is None and row["handed_over"] is None


def test_cli_prints_the_ends_and_the_gap(capsys: pytest.CaptureFixture[str]) -> None:
    handover.main(["--policy", "expert", "--episodes", "2", "--seed", "5"])
    out = capsys.readouterr().out
    assert "expert: 2 episodes; at the end: 2 handed over" in out
    assert "steps from the left's first touch to the hand-over: median" in out
