"""Normalization stats: dimensions the demonstrations never varied are centred, not scaled (`floor_spread`), so a
small deviation at deployment stays a small input."""

from __future__ import annotations

import numpy as np
import torch

from twinarm.agents.normalize import Normalizer, NormMode, floor_spread


def test_a_dimension_that_never_varied_is_centred_not_scaled() -> None:
    stats = {
        "observation.environment_state": {"mean": np.array([0.2, 0.0125]), "std": np.array([0.03, 5e-5]),
                                          "min": np.array([0.1, 0.0124]), "max": np.array([0.3, 0.0126])},
        "action": {"mean": np.array([1.0, 2.0]), "std": np.array([0.5, 0.4]),
                   "min": np.array([0.0, 2.0]), "max": np.array([2.0, 2.0])},
    }  # fmt: skip
    floored, notes = floor_spread(stats, 1e-3, keys=["observation.environment_state"])
    env = floored["observation.environment_state"]
    np.testing.assert_array_equal(env["std"], [0.03, 1.0])
    np.testing.assert_allclose(env["min"], [0.1, 0.0125 - 1.0])
    np.testing.assert_allclose(env["max"], [0.3, 1.0125])
    assert "[1] 5e-05" in notes["observation.environment_state"] and list(notes) == ["observation.environment_state"]
    # Outputs keep their spread: a never-varied action un-normalizes to its constant whatever the network says.
    np.testing.assert_array_equal(floored["action"]["min"], [0.0, 2.0])
    np.testing.assert_allclose(floor_spread(stats, 1e-3, keys=["action"])[0]["action"]["max"], [2.0, 3.0])
    np.testing.assert_array_equal(stats["observation.environment_state"]["std"], [0.03, 5e-5])  # input untouched
    assert floor_spread(stats, 0.0, keys=list(stats))[1] == {}  # 0: LeRobot's behaviour

    # The point: a cube 2 mm lower than in every demonstration is a 2e-3 input, not a 40-sigma one.
    shapes = {"observation.environment_state": (2,)}
    modes = {"observation.environment_state": NormMode.MEAN_STD}
    raw = Normalizer(modes, shapes, stats)
    safe = Normalizer(modes, shapes, floored)
    x = {"observation.environment_state": torch.tensor([0.2, 0.0105])}
    assert abs(float(raw(x)["observation.environment_state"][1])) > 30
    assert abs(float(safe(x)["observation.environment_state"][1])) < 0.01
