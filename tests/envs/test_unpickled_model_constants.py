"""An unpickled randomized env's model has the constants MuJoCo derives from the drawn masses, inertias, armatures
and sizes (`mj_setConst`), as the original got them after its draw: `Randomizer.set_state` wrote the draw into a
freshly built model and kept the nominal model's invweight0s, so the copy stepped differently."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest

import twinarm  # noqa: F401  (registers the envs)

#: What mj_setConst derives from the fields a physical draw changes.
DERIVED = ("dof_invweight0", "body_invweight0", "body_subtreemass", "actuator_acc0")


@pytest.mark.parametrize(
    "randomization",
    ["object-mass", "servos", {"physical": {"armature_scale": [0.5, 2.0]}}, "sim2real"],
    ids=["object-mass", "servos", "armature", "sim2real"],
)
def test_a_copy_has_the_derived_constants_of_the_drawn_model(randomization) -> None:
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="state", randomization=randomization).unwrapped
    env.reset(seed=3)
    for _ in range(5):
        env.step(env.physics.home_joints().astype(np.float32))
    nominal = gym.make("twinarm/SO101-PickCube-v0", obs_type="state").unwrapped.physics.model
    drawn = env.physics.model
    assert any(not np.array_equal(getattr(drawn, f), getattr(nominal, f)) for f in DERIVED)  # the draw shows
    for clone in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        for f in DERIVED:
            np.testing.assert_array_equal(getattr(clone.physics.model, f), getattr(drawn, f), err_msg=f)
        assert clone.physics.model.stat.meaninertia == drawn.stat.meaninertia


def test_a_visual_only_copy_keeps_the_compiled_constants() -> None:
    """Only draws that feed them re-derive the constants (as on reset): a colour draw leaves them compiled."""
    env = gym.make("twinarm/SO101-PickCube-v0", obs_type="state", randomization="colours").unwrapped
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    for f in DERIVED:
        np.testing.assert_array_equal(getattr(clone.physics.model, f), getattr(env.physics.model, f), err_msg=f)
