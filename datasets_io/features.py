"""Feature dicts (`info.json` form): validation, Arrow schemas for the data files, and frame checks."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from twinarm.datasets_io.layout import DEFAULT_FEATURES, DatasetError

NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
VISUAL_DTYPES = ("image", "video")
ALL_DTYPES = NUMERIC_DTYPES + VISUAL_DTYPES + ("string",)
#: Keys the writer fills in itself; a frame passed to `add_frame` must not need them.
AUTO_KEYS = tuple(DEFAULT_FEATURES)


def check_features(features: dict[str, dict[str, Any]]) -> None:
    """Raise DatasetError if a feature dict breaks the rules LeRobot relies on (name, dtype, shape)."""
    if not isinstance(features, dict) or not features:
        raise DatasetError("features must be a non-empty dict of name -> {dtype, shape, names}")
    for name, ft in features.items():
        if "/" in name:
            raise DatasetError(f"feature {name!r}: names may not contain '/'")
        if not isinstance(ft, dict) or "dtype" not in ft or "shape" not in ft:
            raise DatasetError(f"feature {name!r}: needs 'dtype' and 'shape', got {ft!r}")
        if ft["dtype"] not in ALL_DTYPES:
            raise DatasetError(f"feature {name!r}: dtype {ft['dtype']!r} is not one of {ALL_DTYPES}")
        if not isinstance(ft["shape"], (list, tuple)):
            raise DatasetError(f"feature {name!r}: shape must be a list of sizes, e.g. [6], got {ft['shape']!r}")
        shape = tuple(ft["shape"])
        if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in shape):
            raise DatasetError(f"feature {name!r}: shape must be positive ints, got {ft['shape']!r}")
        if ft["dtype"] in VISUAL_DTYPES:
            if len(shape) != 3 or shape[2] not in (1, 3):
                raise DatasetError(f"feature {name!r}: {ft['dtype']} shape must be (height, width, 1|3), got {shape}")
        elif len(shape) != 1:
            raise DatasetError(f"feature {name!r}: only 1-D shapes are supported for {ft['dtype']}, got {shape}")
    check_no_depth(features, "features")


def with_default_features(features: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The user's features followed by LeRobot's index columns, copied, shapes as lists."""
    out = {k: {**v, "shape": list(v["shape"])} for k, v in features.items() if k not in DEFAULT_FEATURES}
    out.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
    return out


def video_keys(features: dict[str, dict]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] == "video"]


def image_keys(features: dict[str, dict]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] == "image"]


#: The pixel format of LeRobot's depth videos (12-bit codes in 16-bit little-endian words; `datasets_io.depth`).
DEPTH_PIX_FMT = "gray12le"


def depth_keys(features: dict[str, dict]) -> list[str]:
    """Features LeRobot flags as depth maps (`info.is_depth_map`, or the older `video.is_depth_map`)."""
    def flagged(ft: dict) -> bool:
        info = {**(ft.get("video_info") or {}), **(ft.get("info") or {})}
        return bool(info.get("is_depth_map") or info.get("video.is_depth_map"))

    return [k for k, ft in features.items() if flagged(ft)]


def check_no_depth(features: dict[str, dict], where: object) -> None:
    """Raise DatasetError naming the depth-map features of a dataset about to be written: twinarm reads LeRobot's
    depth cameras (`datasets_io.depth`) but does not write them (12-bit log-quantized HEVC, or TIFF images)."""
    keys = depth_keys(features)
    if keys:
        raise DatasetError(f"{where}: feature(s) {keys} hold depth maps (is_depth_map), which twinarm reads but "
                           "does not write (record them with LeRobot)")


def camera_keys(features: dict[str, dict]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] in VISUAL_DTYPES]


def tabular_keys(features: dict[str, dict]) -> list[str]:
    """Features stored as data-parquet columns (everything but videos)."""
    return [k for k, ft in features.items() if ft["dtype"] != "video"]


IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def joint_names(names: Any) -> list[str] | None:
    """A joint feature's `names` as plain joint names: LeRobot's record writes `["shoulder_pan.pos", ...]`, its
    `aloha_sim_*` datasets `{"motors": ["left_waist", ...]}`; both read as `["left_waist", ...]`. None: no names."""
    if not names:
        return None
    flat = [n for group in names.values() for n in group] if isinstance(names, dict) else list(names)
    return [str(n).removesuffix(".pos") for n in flat]


def arrow_type(ft: dict[str, Any]) -> pa.DataType:
    """The Arrow column type LeRobot (through HF `datasets`) uses for one feature."""
    dtype = ft["dtype"]
    if dtype == "image":
        return IMAGE_STRUCT
    if dtype == "string":
        return pa.string()
    base = pa.from_numpy_dtype(np.dtype(dtype))
    shape = tuple(ft["shape"])
    if shape == (1,):
        return base
    return pa.list_(base, shape[0])


def hf_feature(ft: dict[str, Any]) -> dict[str, Any]:
    """The HF `datasets` feature description LeRobot stores in the parquet schema metadata."""
    dtype = ft["dtype"]
    if dtype == "image":
        return {"_type": "Image"}
    if tuple(ft["shape"]) == (1,) or dtype == "string":
        return {"dtype": dtype, "_type": "Value"}
    return {"feature": {"dtype": dtype, "_type": "Value"}, "length": int(ft["shape"][0]), "_type": "List"}


def data_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """Arrow schema of a data parquet file: every non-video feature, in feature order."""
    keys = tabular_keys(features)
    meta = {"huggingface": json.dumps({"info": {"features": {k: hf_feature(features[k]) for k in keys}}})}
    return pa.schema([pa.field(k, arrow_type(features[k])) for k in keys], metadata=meta)


def _image_to_hwc_uint8(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    h, w, c = shape
    if arr.shape == (c, h, w) and arr.shape != (h, w, c):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.shape != (h, w, c):
        raise DatasetError(f"feature {name!r}: expected an image of shape {(h, w, c)} (HWC) or {(c, h, w)} (CHW), got {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():  # NaN compares false with everything: the range check below would pass it
            raise DatasetError(f"feature {name!r}: the float image holds NaN or inf values (they would be stored "
                               "as black pixels)")
        if arr.size and (float(arr.min()) < 0.0 or float(arr.max()) > 1.0):
            raise DatasetError(f"feature {name!r}: float images must lie in [0, 1], got range [{arr.min()}, {arr.max()}]")
        return np.ascontiguousarray(np.round(arr * 255.0).astype(np.uint8))
    raise DatasetError(f"feature {name!r}: images must be uint8 (or float in [0, 1]), got dtype {arr.dtype}")


def _vector(name: str, value: Any, ft: dict[str, Any]) -> np.ndarray:
    target = np.dtype(ft["dtype"])
    arr = np.asarray(value)
    shape = tuple(ft["shape"])
    if arr.shape != shape and not (shape == (1,) and arr.shape == ()):
        raise DatasetError(f"feature {name!r}: expected shape {shape}, got {arr.shape}")
    int_to_int = target.kind in "iu" and arr.dtype.kind in "iu"  # any width or sign: the range is checked below
    if arr.dtype.kind == "O" or (arr.dtype != target and not int_to_int
                                 and not np.can_cast(arr.dtype, target, casting="same_kind")):
        raise DatasetError(f"feature {name!r}: expected dtype {target}, got {arr.dtype}")
    if (target.kind in "iub" and arr.dtype.kind == "f") or (target.kind == "f" and arr.dtype.kind != "f"):
        raise DatasetError(f"feature {name!r}: expected dtype {target}, got {arr.dtype}")
    if int_to_int and arr.size:
        # astype wraps a value that does not fit (int8: 300 -> 44): check the range before the cast
        lo, hi = np.iinfo(target).min, np.iinfo(target).max
        flat = arr.reshape(-1)
        bad = np.flatnonzero((flat < lo) | (flat > hi)).tolist()
        if bad:
            raise DatasetError(f"feature {name!r}: value(s) {flat[bad[:6]].tolist()} at position(s) {bad[:6]} do not "
                               f"fit its dtype {target} (range {lo}..{hi}); they would be stored wrapped around")
    out = arr.astype(target, copy=True).reshape(shape)  # a copy: a caller may reuse its array for the next frame
    if target.kind == "f" and not np.isfinite(out).all():  # checked after the cast: a float64 1e39 is float32 inf
        bad = np.flatnonzero(~np.isfinite(out)).tolist()
        raise DatasetError(f"feature {name!r}: non-finite value(s) {out.reshape(-1)[bad[:6]].tolist()} at "
                           f"position(s) {bad[:6]}; NaN or inf would turn the dataset's stats, and every policy "
                           "normalized with them, into NaN")
    return out


def validate_frame(frame: dict[str, Any], features: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Check one frame against the features; returns it normalized (numpy, HWC uint8 images).

    Raises DatasetError naming the feature on a missing/extra key, a wrong shape/dtype or a non-finite float,
    and on a key the writer sets itself (AUTO_KEYS: a frame's own timestamp would break the video lookup).
    """
    auto = [k for k in frame if k in AUTO_KEYS]
    if auto:
        raise DatasetError(f"frame: {auto} are set by the writer (timestamp = frame_index / fps, and the indices "
                           "from the episode's position); leave them out of the frame")
    expected = [k for k in features if k not in AUTO_KEYS]
    given = set(frame) - {"task"}
    missing = [k for k in expected if k not in frame]
    extra = sorted(given - set(features))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing feature(s) {missing}")
        if extra:
            parts.append(f"unknown feature(s) {extra}")
        raise DatasetError("frame: " + "; ".join(parts) + f" (dataset features: {expected})")
    out: dict[str, Any] = {}
    for k in expected:
        ft = features[k]
        if ft["dtype"] in VISUAL_DTYPES:
            out[k] = _image_to_hwc_uint8(k, frame[k], tuple(ft["shape"]))
        elif ft["dtype"] == "string":
            if not isinstance(frame[k], str):
                raise DatasetError(f"feature {k!r}: expected a str, got {type(frame[k]).__name__}")
            out[k] = frame[k]
        else:
            out[k] = _vector(k, frame[k], ft)
    return out
