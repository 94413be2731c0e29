"""A twinarm checkpoint's cameras under other names, so a policy trained on a recording's cameras (LeRobot's
`laptop`, `phone`) runs on an env's (`front`, `wrist`) without retraining: `eval --rename-feature OLD=NEW`.

Only the keys change. Cameras keep their place in `input_features` (the order policies stack them in), their
normalization stats follow them, and so do the weights named after a camera (TD-MPC's per-camera encoders), so
the renamed policy computes exactly what the trained one did from the same images.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def rename_map(pairs: Iterable[tuple[str, str]], inputs: Iterable[str] = ()) -> dict[str, str]:
    """`--rename-feature OLD=NEW` pairs as one {OLD: NEW} map, checked before any checkpoint reader sees it.

    Raise CameraRenameError when two features would end up under one key (two renames onto the same NEW, or a
    rename onto a key another of the policy's `inputs` keeps, where given) or one OLD is renamed twice: a
    policy would otherwise be fed one camera in two places and never see the other (as `twinarm dataset
    rename-feature` refuses the same for a dataset)."""
    out: dict[str, str] = {}
    for old, new in pairs:
        if out.get(old, new) != new:
            raise CameraRenameError(f"{old}: renamed twice ({out[old]}, {new})")
        out[old] = new
    keys = list(inputs)
    after = [(out.get(k, k), k) for k in keys] + [(new, old) for old, new in out.items() if old not in keys]
    for key in dict.fromkeys(new for new, _ in after):
        sources = [old for new, old in after if new == key]
        if len(sources) > 1:
            raise CameraRenameError(f"two features would be {key!r} ({' and '.join(sources)}): rename each "
                                    "camera onto its own env camera")  # fmt: skip
    return out


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
