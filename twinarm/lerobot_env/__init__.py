"""LeRobot plugin: every twinarm sim as LeRobot's env type `twinarm`, for `lerobot-eval` and `lerobot-train`.

    lerobot-eval --env.discover_packages_path=twinarm.lerobot_env --env.type=twinarm \
        --env.task=SO101-PickCube-v0 --policy.path=outputs/train/act/checkpoints/last/pretrained_model

LeRobot imports this package when named by `--env.discover_packages_path` (its plugin mechanism; a package, as
LeRobot walks its submodules). Features, fps and episode length come from the env, itself built from the arm spec;
states and actions cross in LeRobot's units through `twinarm.envs.lerobot_view`. Needs `lerobot` installed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig

from twinarm.cli.record_cmd import IMAGE_SIZE
from twinarm.envs.lerobot_view import lerobot_env_features, lerobot_features_map, make_lerobot_view
from twinarm.registration import NAMESPACE, REAL_MARKER, entry_for, sim_ids


def _checked(flag: str, load: Any, value: Any, *args: Any) -> Any:
    """twinarm's CLI loaders raise SystemExit naming `--flag`; here the flag is LeRobot's `--env.flag`."""
    try:
        return load(value, *args)
    except SystemExit as exc:
        raise ValueError(str(exc).replace(f"--{flag.replace('_', '-')}", f"--env.{flag}")) from None


@EnvConfig.register_subclass("twinarm")
@dataclass
class TwinarmEnv(EnvConfig):
    """A twinarm sim env. `task` is its id without `twinarm/` (`SO101-PickCube-v0`; `twinarm envs` lists them);
    fps and the features follow from it, `episode_length` defaults to the task's, camera images are 240x320 as
    twinarm's sim recordings are (set `observation_height/width` to your dataset's)."""

    task: str | None = "SO101-PickCube-v0"
    fps: int = 0  # the arm's control rate; set from the task
    episode_length: int | None = None
    obs_type: str = "pixels_agent_pos"
    observation_height: int = IMAGE_SIZE[0]  # as `twinarm record` and `teleop --env` record: match your dataset's
    observation_width: int = IMAGE_SIZE[1]
    render_mode: str = "rgb_array"
    randomization: str | None = None  # a preset, file or inline JSON, as `twinarm record --randomization`
    dynamics: str | None = None  # a `twinarm fit-dynamics` file
    camera_poses: str | None = None  # a `twinarm fit-camera` file: the fixed cameras where the real ones are
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from twinarm.cli.config import load_camera_poses_arg, load_dynamics, load_randomization

        task = (self.task or "").removeprefix(f"{NAMESPACE}/")
        self.task = task
        try:
            entry = entry_for(self.gym_id)
        except KeyError:
            raise ValueError(
                f"--env.task={task!r} is not a twinarm sim; one of: "
                + ", ".join(i.removeprefix(f"{NAMESPACE}/") for i in sim_ids())
            ) from None
        if self.gym_id == entry.real_id:
            raise ValueError(
                f"--env.task={task!r} is a real arm ({REAL_MARKER}); LeRobot's eval runs the sim "
                f"({entry.sim_id.removeprefix(f'{NAMESPACE}/')}); run the real arm with `twinarm eval --env {entry.real_id}`"
            )
        self._instruction = entry.task_info.instruction
        self._randomization = _checked("randomization", load_randomization, self.randomization)
        self._dynamics = _checked("dynamics", load_dynamics, self.dynamics, entry.arm)
        self._camera_poses = _checked("camera_poses", load_camera_poses_arg, self.camera_poses, entry.arm)
        probe = gym.make(self.gym_id, **{k: v for k, v in self.gym_kwargs.items() if k != "render_mode"})
        try:
            rate = probe.unwrapped.spec_arm.control_hz
            if self.fps not in (0, rate):
                raise ValueError(f"--env.fps={self.fps}: {task} runs at its arm's control rate, {rate} Hz")
            self.fps = rate
            found = lerobot_env_features(probe.observation_space, probe.action_space.shape[0])
        finally:
            probe.close()
        self.features = {k: PolicyFeature(type=FeatureType[kind], shape=shape) for k, (kind, shape) in found.items()}
        self.features_map = lerobot_features_map(self.features)

    @property
    def package_name(self) -> str:
        return "twinarm"

    @property
    def gym_id(self) -> str:
        return f"{NAMESPACE}/{self.task}"

    @property
    def gym_kwargs(self) -> dict:
        kwargs: dict[str, Any] = {
            "obs_type": self.obs_type,
            "render_mode": self.render_mode,
            "image_size": (self.observation_height, self.observation_width),
            "randomization": self._randomization,
            "dynamics": self._dynamics,
            "camera_poses": self._camera_poses,
        }
        if self.episode_length is not None:
            kwargs["max_episode_steps"] = self.episode_length
        return kwargs

    def create_envs(self, n_envs: int, use_async_envs: bool = False) -> dict[str, dict[int, gym.vector.VectorEnv]]:
        """LeRobot's vector env of this task (same-step autoreset, forkserver workers when async), each env seen
        through `LeRobotView` so that states and actions are in LeRobot's units."""
        if n_envs < 1:
            raise ValueError("`n_envs` must be at least 1")
        make_one = functools.partial(
            make_lerobot_view, self.gym_id, self._instruction, disable_env_checker=self.disable_env_checker,
            **self.gym_kwargs,
        )  # fmt: skip
        extra: dict[str, Any] = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        if use_async_envs and n_envs > 1:
            vec: gym.vector.VectorEnv = gym.vector.AsyncVectorEnv([make_one] * n_envs, context="forkserver", **extra)
        else:
            vec = gym.vector.SyncVectorEnv([make_one] * n_envs, **extra)
        return {self.type: {0: vec}}
