"""Gymnasium glue: an arm's physics + a task + cameras, with spaces taken from the arm spec.

Observations: `agent_pos` (spec units), `pixels/<camera>` (uint8 HWC) and, for `obs_type="state"`,
`environment_state`. Actions are absolute joint targets in spec units. `info["is_success"]` always.
Episodes never terminate on their own; truncation comes from `max_episode_steps` at registration.
`reset(options={"joints": q})` starts the arm at `q` (spec units) instead of its home pose, e.g. to replay a
recorded episode from where it began. `randomization=` is a `Randomization`, a dict of its fields or a preset name
(`sim2real`, `servos`, `latency-1`, ...: `envs.perturbations.preset_names()`). `dynamics=` (a file of
`twinarm fit-dynamics`, `envs.dynamics`) replaces the model's servo and joint parameters (and adds its command
latency); `camera_poses=` (a file of `twinarm fit-camera`, `envs.camera_poses`) puts cameras where the real ones
are; randomization then draws around those.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from twinarm.arms import IdFixesArm, get_arm
from twinarm.envs.camera_poses import apply_camera_poses, load_camera_poses
from twinarm.envs.dynamics import ArmDynamics, apply_dynamics
from twinarm.envs.physics import ArmPhysics
from twinarm.envs.randomization import Randomization, Randomizer
from twinarm.envs.render import CameraRenderer
from twinarm.envs.task import Task
from twinarm.spec import OBS_TYPES


class ArmEnv(IdFixesArm, gym.Env):
    """A single-arm MuJoCo task env; subclasses only name their `task_cls`."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30}
    task_cls: ClassVar[type[Task]]

    def __init__(
        self,
        arm: str = "so101",
        obs_type: str = "pixels_agent_pos",
        render_mode: str | None = None,
        image_size: tuple[int, int] | None = None,
        cameras: tuple[str, ...] | list[str] | None = None,
        n_substeps: int | None = None,
        high_quality_render: bool = False,
        randomization: Randomization | dict[str, Any] | str | None = None,
        dynamics: ArmDynamics | dict[str, Any] | str | None = None,
        camera_poses: dict[str, Any] | str | None = None,
    ):
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be one of {OBS_TYPES}, got {obs_type!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        cameras = _camera_names(cameras, obs_type, render_mode)
        if image_size is not None and (
            isinstance(image_size, str) or not hasattr(image_size, "__len__") or len(image_size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in image_size)
        ):  # fmt: skip
            raise ValueError(f"image_size must be two whole numbers (height, width), got {image_size!r}")
        poses = load_camera_poses(camera_poses)  # parsed once: kept as a dict for spec kwargs, applied below
        self._init_kwargs = dict(
            arm=arm, obs_type=obs_type, render_mode=render_mode, image_size=image_size,
            cameras=cameras, n_substeps=n_substeps, high_quality_render=high_quality_render,
            randomization=None if randomization is None else Randomization.coerce(randomization).to_dict(),
            dynamics=None if dynamics is None else ArmDynamics.coerce(dynamics).to_dict(),
            camera_poses=None if camera_poses is None else {"cameras": {k: v.to_dict() for k, v in poses.items()}},
        )  # fmt: skip
        self.spec_arm = get_arm(arm)
        self.obs_type = obs_type
        self.render_mode = render_mode
        self.high_quality_render = high_quality_render
        self.task = self.task_cls(self.spec_arm)
        self.physics = ArmPhysics.from_arm(self.spec_arm, n_substeps, scene_hooks=(self.task.build_scene,))
        self.task.bind(self.physics)
        cfg = Randomization.coerce(randomization)
        if dynamics is not None:  # before the randomizer takes the model's values as its nominal ones
            dyn = apply_dynamics(self.physics.model, self.spec_arm, self._init_kwargs["dynamics"])
            cfg = dataclasses.replace(cfg, action_delay_steps=cfg.action_delay_steps + dyn.action_delay_steps)
        if poses:  # likewise: camera nudges draw around the fitted pose
            apply_camera_poses(self.physics.model, poses)
        self.randomizer = Randomizer(cfg, self.physics.model)
        self.cameras = self.spec_arm.resolve_cameras(cameras, image_size)
        self.observation_space = self.spec_arm.observation_space(
            obs_type, self.cameras, self.task.env_state_dim if obs_type == "state" else None
        )
        self.action_space = self.spec_arm.action_space()
        self.metadata = {**self.metadata, "render_fps": self.spec_arm.control_hz}
        state_space = self.spec_arm.state_space()
        self._state_low, self._state_high = state_space.low, state_space.high
        self._state_bounds = tuple(zip(self._state_low.tolist(), self._state_high.tolist(), strict=True))
        self._obs_noise = self.randomizer.cfg.obs_noise_std > 0
        # Which keys each observation has (pixels, agent_pos, environment_state), decided once.
        self._obs_keys = (obs_type != "state", obs_type != "pixels", obs_type == "state")
        self._renderer: CameraRenderer | None = None
        self._last_frames: dict[str, np.ndarray] | None = None
        #: Resets so far: a scripted expert compares it with the one it planned in to notice a new episode.
        self.episode_count = 0

    # ----- Gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.physics.reset(self.spec_arm.reset_joints(options))
        self.episode_count += 1
        if self.randomizer.on_reset(self.physics, self.np_random):
            self.task.bind(self.physics)  # object sizes may have changed
        self.task.initialize_episode(self.physics, self.np_random)
        self._last_frames = None
        _, terms, success = self.task.evaluate(self.physics)
        terms["is_success"] = bool(success)
        return self._observation(), terms

    def step(self, action: np.ndarray):
        action = self.spec_arm.check_action(action)
        self.randomizer.act(self.physics, action, self.np_random)
        self._last_frames = None
        reward, terms, success = self.task.evaluate(self.physics)
        terms["is_success"] = bool(success)
        return self._observation(), float(reward), False, False, terms

    def render(self) -> np.ndarray | None:
        """The first camera's image (the one already rendered for this step if there is one); without a
        render_mode, None and a warning, as Gymnasium's own envs do."""
        if self.render_mode != "rgb_array":
            gym.logger.warn(
                "You are calling render method without specifying any render mode. You can specify the render_mode "
                f'at initialization, e.g. gym.make("{self.spec.id if self.spec else "<env id>"}", render_mode="rgb_array")'
            )
            return None
        # a copy: drawing on the returned frame (a label in a video) must not change the observation holding it
        return self._frames()[self.cameras[0].name].copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ----- internals ----------------------------------------------------------------------------
    def _frames(self) -> dict[str, np.ndarray]:
        if self._last_frames is None:
            if self._renderer is None:
                self._renderer = CameraRenderer(self.physics.model, self.cameras, self.high_quality_render)
            self._last_frames = self._renderer.render(self.physics.data)
        return self._last_frames

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {}
        pixels, agent_pos, env_state = self._obs_keys
        if pixels:
            obs["pixels"] = dict(self._frames())
        if agent_pos:
            obs["agent_pos"] = self._agent_pos()
        if env_state:
            obs["environment_state"] = self.task.environment_state(self.physics)
        return obs

    def _agent_pos(self) -> np.ndarray:
        """Joint positions as float32, clamped to the state space (with observation noise if configured)."""
        if self._obs_noise:
            pos = self.randomizer.observe(self.physics.joint_positions().astype(np.float32), self.np_random)
            return np.minimum(np.maximum(pos, self._state_low), self._state_high)
        # Clamping the float64 values to the float32 bounds, then rounding, equals rounding, then clamping.
        q = self.physics.joint_position_list()
        clamped = [lo if v < lo else hi if v > hi else v for v, (lo, hi) in zip(q, self._state_bounds)]  # noqa: B905 (same length)
        return np.array(clamped, dtype=np.float32)

    # ----- pickling: rebuild from constructor arguments, then restore physics and RNG ------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "kwargs": self._init_kwargs,
            "physics_state": self.physics.get_state(),
            "ctrl": self.physics.data.ctrl.copy(),
            "randomizer": self.randomizer.get_state(self.physics.model),
            "np_random": None if self._np_random is None else self._np_random.bit_generator.state,
            "np_random_seed": self._np_random_seed,
            "episode_count": self.episode_count,
            "spec": self.spec,  # what gym.make set: the id, its kwargs, max_episode_steps
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["kwargs"])
        # the episode's drawn model first (masses, sizes...), and the task bound to it (a drawn cube size), then
        # the state on top of it
        self.randomizer.set_state(self.physics.model, state.get("randomizer"))
        self.task.bind(self.physics)
        self.physics.set_state(state["physics_state"])
        self.physics.data.ctrl[:] = state["ctrl"]
        self.episode_count = state.get("episode_count", 0)
        self.__dict__["_env_spec"] = state.get("spec")  # checked against the arm when gym.make set it
        if state["np_random"] is not None:
            self._np_random = np.random.Generator(np.random.PCG64())
            self._np_random.bit_generator.state = state["np_random"]
            # Gymnasium re-seeds a generator whose seed is None when `np_random_seed` is read; -1 is its "unknown"
            seed = state.get("np_random_seed")
            self._np_random_seed = -1 if seed is None else seed


def _camera_names(cameras: Any, obs_type: str, render_mode: str | None) -> tuple[str, ...] | None:
    """`cameras=` as a tuple of names (a single string is one camera), refusing duplicates and an empty set where
    the observations or render() need an image: Gymnasium refuses an empty Dict space, unnamed."""
    if cameras is None:
        return None
    names = (cameras,) if isinstance(cameras, str) else cameras
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"cameras must be a camera name or a list of names, got {cameras!r}")
    names = tuple(names)
    if len(set(names)) != len(names):
        raise ValueError(f"cameras must not repeat a camera, got {list(names)}")
    if not names and obs_type != "state":
        raise ValueError(f"obs_type {obs_type!r} needs at least one camera (or obs_type='state'), got cameras=[]")
    if not names and render_mode is not None:
        raise ValueError(f"render_mode={render_mode!r} renders the first camera; cameras=[] gives none")
    return names
