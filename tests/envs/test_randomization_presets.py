"""`randomization=` takes the preset names the CLI's `--randomization` takes, resolved in one place (envs/)."""

from __future__ import annotations

import pickle

import gymnasium as gym
import pytest

import twinarm  # noqa: F401
from twinarm.cli.config import load_randomization
from twinarm.envs.perturbations import PERTURBATIONS, named_randomization, preset_names
from twinarm.envs.randomization import PRESETS

SIM = "twinarm/SO101-PickCube-v0"


@pytest.mark.parametrize("name", ["sim2real", "servos", "latency-1", "camera"])
def test_env_takes_a_preset_name(name: str) -> None:
    """`gym.make(id, randomization="sim2real")` used to raise 'must be a Randomization or a dict, got str'."""
    env = gym.make(SIM, obs_type="state", randomization=name)
    expected = PRESETS[name] if name in PRESETS else PERTURBATIONS[name].randomization
    assert env.unwrapped.randomizer.cfg == expected
    assert env.unwrapped._init_kwargs["randomization"] == expected.to_dict()  # spec kwargs and pickles stay JSON-able
    env.reset(seed=0)
    copy = pickle.loads(pickle.dumps(env.unwrapped))
    assert copy.randomizer.cfg == expected
    env.close()


def test_unknown_name_lists_the_presets() -> None:
    with pytest.raises(ValueError, match=r"unknown randomization preset 'sim2rael'; presets: sim2real, nominal, .*servos"):
        gym.make(SIM, obs_type="state", randomization="sim2rael")


def test_cli_and_env_resolve_names_alike() -> None:
    assert preset_names()[0] == "sim2real" and preset_names().count("sim2real") == 1
    for name in preset_names():
        assert load_randomization(name) == named_randomization(name).to_dict()
