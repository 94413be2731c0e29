"""Policy input/output features, read from an arm spec or from a LeRobot dataset's metadata.

A feature is a LeRobot key (`observation.state`, `observation.environment_state`,
`observation.images.<cam>`, `action`) with its kind and shape. Policies see the same features
whether they were built from the spec (online RL, env-only) or from a dataset's `info.json`, which
is what lets a policy trained on sim data run on the real twin unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinarm.spec import LEROBOT_STATE, ArmSpec, CameraSpec

STATE = "observation.state"
ENV_STATE = "observation.environment_state"
IMAGE_PREFIX = "observation.images."
ACTION = "action"

#: Feature kinds (LeRobot's FeatureType names).
KINDS = ("STATE", "ENV", "VISUAL", "ACTION")


@dataclass(frozen=True)
class Feature:
    """One policy feature: `kind` is one of KINDS; `shape` is (C, H, W) for images, (D,) otherwise."""

    kind: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Feature:
        return cls(kind=str(d["kind"]), shape=tuple(int(v) for v in d["shape"]))


def kind_of(key: str) -> str:
    if key == ACTION:
        return "ACTION"
    if key == STATE:
        return "STATE"
    if key == ENV_STATE:
        return "ENV"
    if key.startswith(IMAGE_PREFIX):
        return "VISUAL"
    raise ValueError(f"{key!r} is not a policy feature key")


def features_from_spec(
    spec: ArmSpec,
    obs_type: str = "pixels_agent_pos",
    cameras: tuple[CameraSpec, ...] | None = None,
    env_state_dim: int | None = None,
) -> tuple[dict[str, Feature], dict[str, Feature]]:
    """(input_features, output_features) of a policy for an env built from `spec` with `obs_type`."""
    feats = spec.lerobot_features(
        cameras=cameras if obs_type != "state" else (),
        env_state_dim=env_state_dim if obs_type == "state" else None,
    )
    if obs_type == "pixels":
        feats.pop(STATE)
    return split_features(feats)


def split_features(info_features: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Feature], dict[str, Feature]]:
    """Turn LeRobot `info.json` features into (inputs, outputs); index/timestamp columns are skipped, and so are
    depth cameras (`is_depth_map`): the policies' image encoders take colour."""
    from twinarm.datasets_io.features import depth_keys

    inputs: dict[str, Feature] = {}
    outputs: dict[str, Feature] = {}
    depth = set(depth_keys(dict(info_features)))
    for key, ft in info_features.items():
        if key in depth:
            continue
        try:
            kind = kind_of(key)
        except ValueError:
            continue
        shape = tuple(int(v) for v in ft["shape"])
        if kind == "VISUAL":
            names = ft.get("names") or []
            # info.json stores images channels-last (h, w, 3); policies take (3, h, w).
            if len(shape) == 3 and (list(names)[-1:] == ["channels"] or shape[-1] == 3):
                shape = (shape[2], shape[0], shape[1])
        (outputs if kind == "ACTION" else inputs)[key] = Feature(kind, shape)
    return inputs, outputs


def inputs_for_obs_type(inputs: Mapping[str, Feature], obs_type: str | None, where: str) -> dict[str, Feature]:
    """The dataset's `inputs` a policy trained for `obs_type` takes, as the env of that obs type gives them: state
    (joints and object poses; the cameras are never decoded), pixels_agent_pos (cameras and joints, what the real
    arm gives), pixels (cameras alone); None takes every input. ValueError naming `where` when one is missing."""
    if obs_type is None:
        return dict(inputs)
    cameras = [k for k, f in inputs.items() if f.kind == "VISUAL"]
    keep = {"state": [k for k in inputs if k not in cameras], "pixels": cameras,
            "pixels_agent_pos": [*[k for k in inputs if k == LEROBOT_STATE], *cameras]}.get(obs_type)  # fmt: skip
    if keep is None:
        raise ValueError(f"obs_type must be state, pixels or pixels_agent_pos, got {obs_type!r}")
    needs = {"state": "observation.state or observation.environment_state", "pixels": "camera",
             "pixels_agent_pos": "camera"}[obs_type]  # fmt: skip
    if not keep or (obs_type == "pixels_agent_pos" and LEROBOT_STATE not in keep):
        needs = LEROBOT_STATE if cameras and obs_type == "pixels_agent_pos" else needs
        raise ValueError(f"--obs-type {obs_type}: {where} has no {needs} feature to train on (its inputs: "
                         f"{', '.join(inputs) or 'none'})")
    return {k: inputs[k] for k in inputs if k in keep}


def stats_from_spec(spec: ArmSpec, env_state_dim: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Normalization stats an env-only policy can use: joint limits in LeRobot units as min/max.

    Mean/std are the box centre and a quarter of its span (a uniform-ish spread), and the
    environment state gets zero mean, unit std (metres), so every normalization mode is defined.
    """
    lo, hi = spec.to_lerobot(spec.lower), spec.to_lerobot(spec.upper)
    joint = {
        "min": lo.astype(np.float32),
        "max": hi.astype(np.float32),
        "mean": ((lo + hi) / 2).astype(np.float32),
        "std": ((hi - lo) / 4).astype(np.float32),
    }
    stats: dict[str, dict[str, np.ndarray]] = {STATE: dict(joint), ACTION: dict(joint)}
    if env_state_dim:
        n = int(env_state_dim)
        stats[ENV_STATE] = {
            "min": -np.ones(n, np.float32),
            "max": np.ones(n, np.float32),
            "mean": np.zeros(n, np.float32),
            "std": np.ones(n, np.float32),
        }
    return stats


def features_to_json(features: Mapping[str, Feature]) -> dict[str, Any]:
    return {k: v.to_dict() for k, v in features.items()}


def features_from_json(d: Mapping[str, Any]) -> dict[str, Feature]:
    return {k: Feature.from_dict(v) for k, v in d.items()}


__all__ = [
    "ACTION",
    "ENV_STATE",
    "IMAGE_PREFIX",
    "STATE",
    "Feature",
    "features_from_spec",
    "split_features",
    "stats_from_spec",
]
