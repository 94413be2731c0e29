"""A twinarm checkpoint's cameras under other names, so a policy trained on a recording's cameras (LeRobot's
`laptop`, `phone`) runs on an env's (`front`, `wrist`) without retraining: `eval --rename-feature OLD=NEW`.

Only the keys change. Cameras keep their place in `input_features` (the order policies stack them in), their
normalization stats follow them, and so do the weights named after a camera (TD-MPC's per-camera encoders), so
the renamed policy computes exactly what the trained one did from the same images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from twinarm.agents.features import IMAGE_PREFIX

V = TypeVar("V")


class CameraRenameError(ValueError):
    """A rename that does not map cameras of the checkpoint onto distinct camera keys."""


def check_camera_renames(features: Mapping[str, Mapping[str, Any]], rename: Mapping[str, str], where: str) -> None:
    """Raise CameraRenameError unless every OLD is a camera of `features` (a checkpoint's JSON input features) and
    every NEW a camera key (`observation.images.<camera>`) no other input keeps."""
    cameras = [k for k, f in features.items() if str(f.get("kind", f.get("type"))) == "VISUAL"]
    unknown = sorted(set(rename) - set(cameras))
    if unknown:
        raise CameraRenameError(f"{', '.join(unknown)}: not a camera of {where} (its cameras: "
                                f"{', '.join(cameras) or 'none'})")  # fmt: skip
    bad = sorted(new for new in rename.values() if not new.startswith(IMAGE_PREFIX) or new == IMAGE_PREFIX)
    if bad:
        raise CameraRenameError(f"{', '.join(bad)}: a camera is renamed to a camera key, {IMAGE_PREFIX}<camera>")
    after = [rename.get(k, k) for k in features]
    twice = sorted({k for k in after if after.count(k) > 1})
    if twice:
        raise CameraRenameError(f"{', '.join(twice)}: two inputs of {where} would have this name")


def renamed_keys(mapping: Mapping[str, V], rename: Mapping[str, str]) -> dict[str, V]:
    """`mapping` with its keys renamed, in the same order."""
    return {rename.get(k, k): v for k, v in mapping.items()}


def renamed_stats(flat: Mapping[str, V], rename: Mapping[str, str]) -> dict[str, V]:
    """Flat `"<feature>.<stat>"` stats with their features renamed."""
    out = {}
    for name, value in flat.items():
        feature, _, stat = name.rpartition(".")
        out[f"{rename.get(feature, feature)}.{stat}"] = value
    return out


def renamed_weights(state: Mapping[str, V], rename: Mapping[str, str]) -> dict[str, V]:
    """Weights of modules named after a camera key (dots as underscores, e.g. TD-MPC's
    `encoder.image.observation_images_front.`) under the new key's name; the rest as they are."""
    pairs = [(f".{old.replace('.', '_')}.", f".{new.replace('.', '_')}.") for old, new in rename.items()]
    out = {}
    for name, value in state.items():
        for old, new in pairs:
            if old in name:
                name = name.replace(old, new, 1)
                break
        out[name] = value
    return out
