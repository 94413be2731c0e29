"""The env boundary: env observations (SI units, env keys) <-> policy batches (LeRobot units and keys).

Policies are trained on dataset values in LeRobot units (degrees, gripper 0..100 for SO arms), so
this adapter converts with the arm spec's `to_lerobot` / `from_lerobot` (the one conversion in
twinarm) and renames keys: `agent_pos` -> `observation.state`, `environment_state` ->
`observation.environment_state`, `pixels/<cam>` (HxWx3 uint8) -> `observation.images.<cam>`
((3, H, W) float in [0, 1]). Works for a single env and for vector envs (leading batch axis).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from twinarm.agents.features import ACTION, ENV_STATE, IMAGE_PREFIX, STATE, Feature
from twinarm.spec import ArmSpec


class PolicyEnvMismatch(ValueError):
    """A policy's inputs or actions are not what an env gives and takes (another arm, camera set or task)."""


class OtherArmWarning(UserWarning):
    """A policy runs on another arm than it was trained for, one with the same joints and units."""


class ResizedImagesWarning(UserWarning):
    """A camera policy runs on frames of another size than it was trained on (resized to fit, same shape)."""


#: How far (relative) a frame's width/height ratio may differ from the training images' before resizing it would
#: squash the scene: 2 % lets 480x640 -> 240x320 and rounding (e.g. 84x112 from 480x640) through.
ASPECT_TOLERANCE = 0.02


def image_size_problem(cam: str, got: tuple[int, int], want: tuple[int, int]) -> str | None:
    """Why frames of size `got` (H, W) from camera `cam` cannot feed a policy trained on `want`: another aspect
    ratio (resized, the scene would be squashed); None when they fit (equal, or the same shape at another size,
    which is resized with a ResizedImagesWarning)."""
    if got == want or abs((got[1] / got[0]) / (want[1] / want[0]) - 1) <= ASPECT_TOLERANCE:
        return None
    return (f"camera {cam} gives {got[0]}x{got[1]} frames, the policy was trained on {want[0]}x{want[1]}: another "
            f"aspect ratio, which resizing would squash (make the env with image_size=({want[0]}, {want[1]}), or "
            "give the camera that shape)")


def check_fits(features: Mapping[str, Feature], policy_arm: str, spec: ArmSpec, space: Any, env_id: str) -> None:
    """Raise PolicyEnvMismatch naming every input the env's observation `space` lacks or sizes differently (a
    camera of another aspect ratio; one of another size with the same shape is resized) and an action size other
    than the arm's joints; warn when the policy was trained for another arm of the same joints
    (same units, other kinematics and ranges: a SO-100 policy on a SO-101 may be meant, a Koch one hardly)."""
    problems = _joint_problems(features, spec)
    cams = list(space["pixels"].spaces) if "pixels" in space.spaces else []
    missing = [k[len(IMAGE_PREFIX):] for k in features if k.startswith(IMAGE_PREFIX) and k[len(IMAGE_PREFIX):] not in cams]
    if missing:
        problems.append(f"it sees camera(s) {', '.join(missing)}, the env gives {', '.join(cams) or 'none'} ("
                        f"{_rename_hint(missing, cams, features)}; to train, a `twinarm dataset rename-feature` copy)")
    for key, feat in features.items():
        cam = key[len(IMAGE_PREFIX):]
        if key.startswith(IMAGE_PREFIX) and cam in cams:
            shape = space["pixels"][cam].shape  # (H, W, 3)
            if problem := image_size_problem(cam, tuple(shape[:2]), tuple(feat.shape[-2:])):
                problems.append(problem)
    if ENV_STATE in features:
        has = space["environment_state"].shape[0] if "environment_state" in space.spaces else None
        if has != features[ENV_STATE].shape[0]:
            problems.append(f"its observation.environment_state is {features[ENV_STATE].shape[0]}-D, the env's "
                            + (f"is {has}-D (another task's objects)" if has else "is absent"))  # fmt: skip
    if problems:
        raise PolicyEnvMismatch(f"the policy does not fit {env_id}: " + "; ".join(problems))
    if policy_arm != spec.name:
        warnings.warn(f"the policy was trained for the {policy_arm} arm and runs on {env_id} ({spec.name}): same "
                      "joints and units, other kinematics and joint ranges", OtherArmWarning, stacklevel=3)  # fmt: skip


def _rename_hint(missing: list[str], cams: list[str], features: Mapping[str, Feature]) -> str:
    """The `eval --rename-feature` pairs that put each of the policy's unmatched cameras, in order, onto a distinct
    env camera no input of the policy already takes (one camera fed twice would leave another unseen)."""
    free = [c for c in cams if IMAGE_PREFIX + c not in features]
    pairs = [f"{IMAGE_PREFIX}{m}={IMAGE_PREFIX}{c}" for m, c in zip(missing, free, strict=False)]
    left = missing[len(free):]
    if not pairs:
        return f"the env has no camera left for {', '.join(left)}: use an env with as many cameras as the policy"
    hint = f"eval --rename-feature {' '.join(pairs)} maps {'them' if len(pairs) > 1 else 'it'} onto the env's"
    return hint + (f"; the env has no camera left for {', '.join(left)}" if left else "")


def _joint_problems(features: Mapping[str, Feature], spec: ArmSpec) -> list[str]:
    dof, problems = spec.dof, []
    if ACTION in features and features[ACTION].shape[0] != dof:
        problems.append(f"its actions are {features[ACTION].shape[0]}-D, the {spec.name} arm has {dof} joints")
    if STATE in features and features[STATE].shape[0] != dof:
        problems.append(f"its observation.state is {features[STATE].shape[0]}-D, the {spec.name} arm has {dof} joints")
    return problems


def check_joints(features: Mapping[str, Feature], spec: ArmSpec, env_id: str) -> None:
    """Raise PolicyEnvMismatch when the action or state size is not the arm's joint count: the part of
    `check_fits` that needs no env built (training without periodic evaluation)."""
    if problems := _joint_problems(features, spec):
        raise PolicyEnvMismatch(f"the policy does not fit {env_id}: " + "; ".join(problems))


def resize_note(cam: str, got: tuple[int, int], want: tuple[int, int], gets: str = "gets") -> str:
    """What a ResizedImagesWarning says of camera `cam`'s frames of size `got` fed to a policy trained on `want`."""
    return (f"camera {cam}: the policy was trained on {want[0]}x{want[1]} images and {gets} {got[0]}x{got[1]}: each "
            "frame is resized to the training size (bilinear), so it sees another level of detail than in training")


class EnvAdapter:
    """Converts observations for a policy with `features` and its actions back for an env of `spec`."""

    def __init__(self, spec: ArmSpec, features: Mapping[str, Feature], device: str | torch.device = "cpu",
                 warn_resize: bool = True) -> None:
        self.spec = spec
        self.features = dict(features)
        self.device = torch.device(device)
        self.warn_resize = warn_resize  # False: the caller says it (`evaluate` does, before the envs start)
        self._resize_said: set[tuple[str, tuple[int, int]]] = set()  # (camera, frame size) checked

    @staticmethod
    def is_batched(obs: Mapping[str, Any]) -> bool:
        """Whether an env observation is a vector env's (a leading env axis) rather than one env's."""
        agent_pos = obs.get("agent_pos")
        if agent_pos is None and "pixels" in obs:
            return np.asarray(next(iter(obs["pixels"].values()))).ndim == 4
        return agent_pos is not None and np.asarray(agent_pos).ndim == 2

    def obs_to_batch(self, obs: Mapping[str, Any]) -> dict[str, Tensor]:
        """An env observation (batched or not) -> a policy batch with a leading batch axis. An observation without
        an input the policy reads, of another size, or with a non-finite joint value is refused by name
        (PolicyEnvMismatch / ValueError), not left to fail as a torch shape error or to return NaN actions; a camera
        frame of another size is resized to the training size (warned once; another aspect ratio is refused)."""
        if not isinstance(obs, Mapping):
            raise TypeError(f"the observation must be the env's dict (agent_pos, pixels, ...), got {type(obs).__name__}")
        batched = self.is_batched(obs)
        out: dict[str, Tensor] = {}
        for key, feat in self.features.items():
            if key == STATE:
                x = self._vector(obs, "agent_pos", key, feat, batched)
                out[key] = self._tensor(self.spec.to_lerobot(x).astype(np.float32), batched)
            elif key == ENV_STATE:
                out[key] = self._tensor(self._vector(obs, "environment_state", key, feat, batched), batched)
            elif key.startswith(IMAGE_PREFIX):
                cam = key[len(IMAGE_PREFIX) :]
                if cam not in obs.get("pixels", {}):
                    raise PolicyEnvMismatch(f"the policy sees camera {cam}; the observation has "
                                            f"{', '.join(obs.get('pixels', {})) or 'no pixels'}")  # fmt: skip
                img = self._image(np.asarray(obs["pixels"][cam]))
                img = (img if batched else img[None]).permute(0, 3, 1, 2)
                got, want = tuple(img.shape[-2:]), tuple(feat.shape[-2:])
                if got != want:
                    self._check_resize(cam, got, want)
                    img = F.interpolate(img, size=want, mode="bilinear", align_corners=False)
                out[key] = img
        return out

    def _check_resize(self, cam: str, got: tuple[int, int], want: tuple[int, int]) -> None:
        """PolicyEnvMismatch for frames of another aspect ratio; a ResizedImagesWarning, once per camera and size,
        for frames of another size (resized to the training size: the policy sees other detail than in training)."""
        if (cam, got) in self._resize_said:  # checked (and said) on its first frame: every step of an episode
            return
        if problem := image_size_problem(cam, got, want):
            raise PolicyEnvMismatch(problem)
        self._resize_said.add((cam, got))
        if self.warn_resize:
            warnings.warn(resize_note(cam, got, want), ResizedImagesWarning, stacklevel=4)

    @staticmethod
    def _vector(obs: Mapping[str, Any], name: str, key: str, feat: Feature, batched: bool) -> np.ndarray:
        """obs[name] as float32, checked against the policy's `key` (its size, finite values, the batch axis)."""
        if name not in obs:
            hint = " (an env made with obs_type='state' gives it)" if name == "environment_state" else ""
            raise PolicyEnvMismatch(f"the policy reads {key} from {name!r}, which the observation lacks{hint}; it "
                                    f"has {', '.join(obs)}")  # fmt: skip
        x = np.asarray(obs[name], dtype=np.float32)
        if x.ndim != 1 + batched or x.shape[-1] != feat.shape[0]:
            raise PolicyEnvMismatch(f"{name} has shape {x.shape}; the policy's {key} is {feat.shape[0]}-D"
                                    + (" with a leading env axis, as agent_pos has" if batched else ""))  # fmt: skip
        if not np.isfinite(x).all():
            raise ValueError(f"{name} holds non-finite values ({x.tolist()}): the policy would return NaN actions")
        return x

    def _image(self, pixels: np.ndarray) -> Tensor:
        """uint8 HWC pixels -> float in [0, 1] on the policy's device. On CPU numpy converts (bit-identical to
        torch's division): a torch op this size runs in a 2-thread parallel region, which on a busy machine (a
        control loop, camera threads) waits ~16 ms for its second thread; numpy takes 0.1 ms. On a GPU the
        uint8 frame is uploaded and converted there."""
        if self.device.type == "cpu":
            return torch.from_numpy(np.divide(pixels, np.float32(255.0), dtype=np.float32))
        return torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device).float().div_(255.0)

    def _tensor(self, x: np.ndarray, batched: bool) -> Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        return t if batched else t[None]

    def action_to_env(self, action: Tensor, batched: bool = False) -> np.ndarray:
        """A policy action (B, A) in LeRobot units -> SI joint targets clipped to the arm's limits."""
        a = action.detach().cpu().double().numpy()
        a = self.spec.clip_action(self.spec.from_lerobot(a)).astype(np.float32)
        return a if batched else a[0]
