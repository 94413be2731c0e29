"""`control_jitter` varies a control period by whole physics substeps: round(jitter * n) of them at most. A non-zero
jitter that rounds to none (under half a substep) used to be accepted and do nothing; now the env says so."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401  (registers the envs)


def _periods(env: gym.Env, steps: int = 40) -> np.ndarray:
    phys = env.unwrapped.physics
    out = []
    for _ in range(steps):
        before = phys.data.time
        env.step(phys.home_joints().astype(np.float32))
        out.append(phys.data.time - before)
    return np.array(out) / phys.model.opt.timestep  # in substeps


@pytest.mark.parametrize(("env_id", "jitter", "substeps"),
                         [("twinarm/Aloha-TransferCube-v0", 0.05, 10), ("twinarm/SO101-PickCube-v0", 0.02, 17)])  # fmt: skip
def test_a_jitter_under_half_a_substep_warns_once_and_varies_nothing(env_id: str, jitter: float, substeps: int) -> None:
    env = gym.make(env_id, obs_type="state", randomization={"control_jitter": jitter})
    with pytest.warns(UserWarning, match=rf"control_jitter={jitter:g} rounds to no jitter at all") as caught:
        env.reset(seed=0)
    message = str(next(w.message for w in caught if "control_jitter" in str(w.message)))
    assert f"{substeps} physics substeps of" in message and " ms " in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per env, not at every reset or step
        env.reset(seed=1)
        np.testing.assert_allclose(_periods(env), substeps)
    env.close()


def test_a_jitter_varies_the_period_by_the_fraction_rounded_to_whole_substeps() -> None:
    """0.1 at the SO-101's 17 substeps is round(1.7) = 2 substeps either way: +/-11.8 %, not +/-10 %."""
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="state", randomization={"control_jitter": 0.1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset(seed=0)
        periods = _periods(env, 80)
    assert env.unwrapped.randomizer.jitter_span(env.unwrapped.physics) == 2
    np.testing.assert_allclose(periods, np.round(periods), atol=1e-6)
    assert set(np.round(periods).astype(int).tolist()) == {15, 16, 17, 18, 19}
    env.close()
