"""Frame values the writer must not silently change: narrow integers out of range, arrays the caller reuses."""

from __future__ import annotations

import numpy as np
import pytest

from twinarm.datasets_io.features import validate_frame
from twinarm.datasets_io.layout import DatasetError

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
