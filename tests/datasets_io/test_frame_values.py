"""Frame values the writer must not silently change: narrow integers out of range, arrays the caller reuses."""

from __future__ import annotations

import numpy as np
import pytest

from twinarm.datasets_io.features import validate_frame, with_default_features
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.writer import EpisodeBuffer

INT_FEATS = {
    "next.count": {"dtype": "int8", "shape": [1], "names": None},
    "grip": {"dtype": "uint8", "shape": [1], "names": None},
    "ticks": {"dtype": "int16", "shape": [2], "names": None},
}


def _frame(**over):
    frame = {"next.count": 1, "grip": np.uint8(1), "ticks": np.array([0, 0])}
    frame.update(over)
    return frame


@pytest.mark.parametrize("key,value,shown", [
    ("next.count", 300, "300"),
    ("next.count", np.int64(-129), "-129"),
    ("grip", -1, "-1"),
    ("grip", np.int64(256), "256"),
    ("ticks", np.array([5, 40000]), "40000"),
])
def test_narrow_int_out_of_range_is_refused_naming_feature_and_value(key, value, shown):
    with pytest.raises(DatasetError, match=rf"feature '{key}'.*{shown}.*do not fit"):
        validate_frame(_frame(**{key: value}), INT_FEATS)


def test_narrow_int_in_range_is_kept_exactly():
    out = validate_frame(_frame(**{"next.count": -128, "grip": 255, "ticks": np.array([-32768, 32767])}), INT_FEATS)
    assert out["next.count"].dtype == np.int8 and out["next.count"].tolist() == [-128]
    assert out["grip"].tolist() == [255]
    assert out["ticks"].dtype == np.int16 and out["ticks"].tolist() == [-32768, 32767]


def test_buffer_keeps_its_own_copy_of_a_reused_float_array():
    """A control loop that writes each step's state into one preallocated array must still record every step."""
    feats = with_default_features({"observation.state": {"dtype": "float32", "shape": [2], "names": None},
                                   "action": {"dtype": "float32", "shape": [2], "names": None},
                                   "ticks": {"dtype": "int64", "shape": [2], "names": None}})
    buf = EpisodeBuffer(feats, 10)
    state = np.zeros(2, np.float32)
    ticks = np.zeros(2, np.int64)
    for t in range(3):
        state[:] = t
        ticks[:] = t
        buf.add_frame({"observation.state": state, "action": np.full(2, t, np.float32), "ticks": ticks}, task="x")
    ep = buf.finish()
    assert ep.columns["observation.state"].tolist() == [[0, 0], [1, 1], [2, 2]]
    assert ep.columns["ticks"].tolist() == [[0, 0], [1, 1], [2, 2]]
