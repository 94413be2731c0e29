"""`RealArmEnv`: the real twin of a sim env id, built from the same ArmSpec (same spaces, same units).

Observations come from the motor bus (through the calibration) and the cameras; actions are absolute
joint targets in SI units, clamped to the joint limits and to `max_relative_target` per step, sent as
one sync write. Torque goes off on close(), on any exception inside step/reset, on SIGINT, SIGTERM and SIGHUP,
and when the process ends (or the env is dropped) without close(). A step waits out the control period and warns
when the loop overran it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import cv2
import gymnasium as gym
import numpy as np
from gymnasium.error import ClosedEnvironmentError

from twinarm.arms import IdFixesArm, get_arm
from twinarm.real.buses import make_bus
from twinarm.real.calibration import Calibration
from twinarm.real.calibration_owner import check_calibration_owner
from twinarm.real.cameras import Camera, make_camera
from twinarm.real.control_tables import DEFAULT_BAUD
from twinarm.real.errors import CalibrationError, TerminationSignal
from twinarm.real.motor_bus import MotorBus
from twinarm.real.multi_bus import MultiBus
from twinarm.real.pacing import LoopClock
from twinarm.registration import TASKS, task_arms
from twinarm.spec import OBS_TYPES, ArmSpec

log = logging.getLogger(__name__)


class LoopOverrunWarning(RuntimeWarning):
    """A control step took longer than the control period."""


class StartPoseWarning(RuntimeWarning):
    """`reset(options={"joints": q})` ran out of time before the arm reached q (something in the way)."""


#: Per-step limit (rad, gripper fraction) when driving to a reset pose without `max_relative_target`.
START_STEP = 0.05
#: The signals that stop a real-arm program (Ctrl-C, `kill`/`timeout`/systemd, a closed terminal or dropped ssh):
#: each takes torque off first. SIGHUP does not exist on Windows.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
#: How close every joint must come to a reset pose (rad; the gripper as a fraction).
START_TOLERANCE_RAD, START_TOLERANCE_GRIPPER = np.radians(3.0), 0.03


def configure_motors(bus: MotorBus, spec: ArmSpec) -> None:
    """Put every motor in position control (Dynamixel: extended position; gripper current-based where
    the model has it) with no reply delay, then torque on."""
    for j in spec.joints:
        m = bus.motor(j.name)
        bus.write_eeprom("Return_Delay_Time", j.name, 0)
        if bus.protocol == "feetech":
            bus.write_eeprom("Operating_Mode", j.name, 0)
            bus.write("Acceleration", j.name, 254)
        else:
            mode = 5 if j.kind == "gripper" and 5 in m.model.modes else 4
            bus.write_eeprom("Operating_Mode", j.name, mode)
    bus.enable_torque()


class RealArmEnv(IdFixesArm, gym.Env):
    """A real arm on a serial port (or the virtual bus) with cameras, as a Gymnasium env.

    kwargs: `arm`/`task` (set by the registered id), `port` (or {group: port} for arms on several buses,
    e.g. ALOHA's `left`/`right`, see `multi_bus.bus_groups`), `calibration` (file path, dict in LeRobot
    format or Calibration), `cameras` ({name: {"type": "opencv"|"realsense", ...} or Camera}; `{}` for none),
    `obs_type`, `image_size`, `render_mode` ("rgb_array": `render()` is the first camera's observed frame),
    `baud` (the motors' baud rate), `bus` (a MotorBus to use instead of opening `port`; the env connects it),
    `handle_sigint` (take torque off on Ctrl-C/SIGTERM/SIGHUP, default True), `max_relative_target` (rad / gripper fraction per step, scalar or per joint; None,
    the default as in LeRobot, leaves only the joint limits, so the arm follows a policy's targets as the sim does;
    the CLI's commands pass 0.2, and a first run on new hardware should too),
    `write_calibration` (store the file's calibration in the motors when they differ), `success_fn`
    (obs -> bool; otherwise `is_success` is always False), `pace` (wait out the control period),
    `camera_timeout_s` (a camera whose newest frame is older than this raises CameraError, torque goes off),
    `start_timeout_s` (how long `reset(options={"joints": q})` may take to drive the arm to q).
    After torque went off (an error, Ctrl-C), `reset()` holds the present pose and turns torque on again.
    `reset(options={"joints": q})`, the sim envs' option, drives the arm to q at `max_relative_target` (or
    `START_STEP`) per control period first; a StartPoseWarning names the joints still short of it at the timeout.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        arm: str | ArmSpec = "so101",
        task: str | None = None,
        port: str | Mapping[str, str] | None = None,
        calibration: str | Path | Mapping | Calibration | None = None,
        cameras: Mapping[str, Mapping[str, Any] | Camera] | None = None,
        obs_type: str = "pixels_agent_pos",
        image_size: tuple[int, int] | None = None,
        render_mode: str | None = None,
        max_relative_target: float | list[float] | None = None,
        write_calibration: bool = True,
        success_fn: Callable[[dict[str, Any]], bool] | None = None,
        pace: bool = True,
        baud: int = DEFAULT_BAUD,
        bus: MotorBus | None = None,
        handle_sigint: bool = True,
        camera_timeout_s: float = 1.0,
        start_timeout_s: float = 10.0,
    ) -> None:
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type must be one of {OBS_TYPES}, got {obs_type!r}")
        if obs_type == "state":
            raise ValueError("obs_type='state' needs the simulator's object poses; on the real arm use "
                             "'pixels_agent_pos' or 'pixels'")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.spec_arm = arm if isinstance(arm, ArmSpec) else get_arm(arm)
        self.task = task
        self.instruction = TASKS[task].instruction if task in TASKS else ""
        self.obs_type, self.render_mode = obs_type, render_mode
        self.camera_timeout_s, self.start_timeout_s = camera_timeout_s, start_timeout_s
        self._limp = False  # torque was taken off after configuration: reset() turns it on again
        self.success_fn = success_fn
        self.metadata = {**self.metadata, "render_fps": self.spec_arm.control_hz}
        if task is not None and (arms := task_arms(task)) is not None:
            self.spec_arm.check_task_arms(task, arms)
        uses_pixels = obs_type != "state" and obs_type in ("pixels", "pixels_agent_pos")
        camera_cfgs = dict(cameras or {})
        if uses_pixels and cameras is None:
            raise ValueError(f"obs_type {obs_type!r} needs cameras: pass cameras={{name: config}} for "
                             f"{[c.name for c in self.spec_arm.cameras]} (cameras={{}} means none)")
        self.camera_specs = self.spec_arm.resolve_cameras(list(camera_cfgs), image_size) if uses_pixels else ()
        if obs_type == "pixels" and not self.camera_specs:
            raise ValueError("obs_type 'pixels' needs at least one camera")
        space = self.spec_arm.observation_space(obs_type, self.camera_specs)
        if not self.camera_specs and "pixels" in space.spaces:  # cameras={}: joint positions only
            space = gym.spaces.Dict({k: v for k, v in space.spaces.items() if k != "pixels"})
        self.observation_space = space
        self.action_space = self.spec_arm.action_space()
        state_space = self.spec_arm.state_space()
        self._state_low, self._state_high = state_space.low, state_space.high
        self._out_of_range_said: set[str] = set()
        self.max_relative_target = None if max_relative_target is None else \
            np.broadcast_to(np.asarray(max_relative_target, dtype=np.float64), (self.spec_arm.dof,)).copy()
        if self.max_relative_target is not None and not np.all(self.max_relative_target > 0):
            raise ValueError(f"max_relative_target must be above 0 on every joint (or None: no limit), got "
                             f"{max_relative_target}")  # fmt: skip

        if port is None and bus is None:
            raise ValueError("RealArmEnv needs port= (the arm's serial port, or a `twinarm virtual-arm` pty)")
        if bus is None and isinstance(port, Mapping):  # one bus per arm (ALOHA): {"left": ..., "right": ...}
            bus = MultiBus.from_spec(self.spec_arm, port, baud=baud)
        self.bus = bus if bus is not None else make_bus(self.spec_arm, str(port), baud=baud)
        self.calibration = self._load_calibration(calibration)
        self.cameras: dict[str, Camera] = {}
        self._last_obs: dict[str, Any] | None = None
        self._last_q: np.ndarray | None = None
        self._clock = LoopClock(self.spec_arm.control_period, pace)
        self._stop_handlers: dict[int, _StopHandler] = {}
        self._limp_at_exit: weakref.finalize | None = None
        self._closed = False
        try:
            self.bus.connect()
            self._apply_calibration(write_calibration)
            configure_motors(self.bus, self.spec_arm)
            for c in self.camera_specs:
                cam = make_camera(camera_cfgs[c.name], name=c.name)
                cam.connect()
                self.cameras[c.name] = cam
        except BaseException:
            self.close()
            raise
        if handle_sigint and threading.current_thread() is threading.main_thread():
            # an ignored SIGTERM/SIGHUP stays ignored (`nohup` keeps a recording going when the terminal closes);
            # Ctrl-C is always the operator's stop, also in a job a script started in the background
            for s in STOP_SIGNALS:
                if s == signal.SIGINT or signal.getsignal(s) is not signal.SIG_IGN:
                    self._stop_handlers[s] = handler = _StopHandler(self, signal.getsignal(s))
                    signal.signal(s, handler)
        # An uncaught exception in the user's loop, a script that never calls close(), or an env nobody holds any
        # more: torque goes off when the process ends or the env is collected (the callback holds the bus and the
        # signal handlers, which hold the env weakly: the process keeps them, and must not keep the env).
        self._limp_at_exit = weakref.finalize(self, _limp, self.bus, self._stop_handlers)

    # ----- setup --------------------------------------------------------------------------------
    def _load_calibration(self, calibration: Any) -> Calibration:
        if calibration is None:
            raise CalibrationError(f"arm {self.spec_arm.name!r} needs a calibration (a LeRobot-format JSON file); "
                                   f"run `twinarm calibrate --arm {self.spec_arm.name} --port ...`")
        if isinstance(calibration, Calibration):
            cal = calibration
        elif isinstance(calibration, Mapping):
            cal = Calibration.from_dict(calibration)
        else:
            check_calibration_owner(calibration, self.spec_arm)
            cal = Calibration.load(calibration)
        cal.check_matches(self.spec_arm, source=f"calibration {calibration if isinstance(calibration, (str, Path)) else ''}".strip())
        return cal

    def _apply_calibration(self, write: bool) -> None:
        if self.bus.calibration_matches(self.calibration):
            return
        if not write:
            raise CalibrationError(f"the motors on {self.bus.port} hold a different calibration than the one given; "
                                   "pass write_calibration=True to store it, or recalibrate")
        log.info("writing calibration to the motors on %s", self.bus.port)
        self.bus.write_calibration(self.calibration)
        if not self.bus.calibration_matches(self.calibration):
            raise CalibrationError(f"the motors on {self.bus.port} did not keep the calibration written to them")

    @property
    def overruns(self) -> int:
        """Control periods the loop overran since the env was made."""
        return self._clock.overruns

    # ----- units --------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """Present joint positions in SI units (spec order)."""
        ticks = self.bus.positions()
        return self.calibration.to_si(self.spec_arm, ticks, software_drive_mode=self.bus.software_drive_mode)

    def _send(self, q: np.ndarray) -> None:
        goals = self.calibration.from_si(self.spec_arm, q, software_drive_mode=self.bus.software_drive_mode)
        self.bus.sync_write("Goal_Position", goals)

    # ----- Gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._check_open()
        super().reset(seed=seed)
        pose = self.spec_arm.reset_joints(options)
        with self._safety():
            self._clock.restart()
            if self._limp:  # hold where the arm is now, then power it: no jump to an old goal
                self.bus.sync_write("Goal_Position", self.bus.positions())
                self.bus.enable_torque()
                self._limp = False
            if pose is not None:
                self._drive_to(pose)
            obs = self._observation()
        return obs, self._info(obs)

    def step(self, action: np.ndarray):
        self._check_open()
        action = self.spec_arm.check_action(action)  # the sim's check: an inf target is refused, not clipped
        if self._limp:
            raise RuntimeError("torque is off after an earlier error or Ctrl-C: call reset() to hold the present "
                               "pose and power the arm again")
        with self._safety():
            target = self.safe_target(action)
            self._send(target)
            self._wait_period()
            obs = self._observation()
        return obs, 0.0, False, False, self._info(obs)

    def safe_target(self, action: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        """Clamp to the joint limits, then to at most `max_relative_target` away from the present position."""
        if self.max_relative_target is None:
            return self.spec_arm.clip_action(action)
        cur = self._last_agent_pos() if present is None else present
        return self.spec_arm.limit_target(action, cur, self.max_relative_target)

    def _drive_to(self, pose: np.ndarray) -> None:
        """Step towards `pose`, each joint at most its per-step limit per control period, until all are within
        tolerance or `start_timeout_s` has passed."""
        step = self.max_relative_target if self.max_relative_target is not None else np.full(self.spec_arm.dof, START_STEP)
        tol = np.where(self.spec_arm.gripper_mask, START_TOLERANCE_GRIPPER, START_TOLERANCE_RAD)
        deadline = time.monotonic() + self.start_timeout_s
        q = self.joint_positions()
        while np.any(np.abs(q - pose) > tol):
            if time.monotonic() > deadline:
                far = [f"{n} {abs(a - b):.3f}" for n, a, b, t in zip(self.spec_arm.joint_names, q, pose, tol, strict=True)
                       if abs(a - b) > t]
                warnings.warn(f"reset: the arm did not reach the start pose within {self.start_timeout_s:g} s; still "
                              f"off (rad / gripper fraction): {', '.join(far)}", StartPoseWarning, stacklevel=3)
                return
            self._send(np.clip(pose, q - step, q + step))
            self._wait_period()
            q = self.joint_positions()

    def _last_agent_pos(self) -> np.ndarray:
        """The joint positions read with the last observation (unclamped: the base of `max_relative_target`)."""
        return self._last_q if self._last_q is not None else self.joint_positions()

    def _wait_period(self) -> None:
        late = self._clock.tick()
        if late > 0:
            warnings.warn(f"control loop overran its {self._clock.period_s * 1e3:.1f} ms period by {late * 1e3:.1f} ms",
                          LoopOverrunWarning, stacklevel=3)

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {}
        q = self._last_q = self.joint_positions()
        if self.obs_type != "pixels":
            obs["agent_pos"] = self._agent_pos(q)
        if self.obs_type != "state" and self.camera_specs:
            pixels = {}
            for c in self.camera_specs:
                frame = self.cameras[c.name].read_latest(max_age_s=self.camera_timeout_s)
                if frame.shape != c.shape:
                    frame = cv2.resize(frame, (c.width, c.height), interpolation=cv2.INTER_AREA)
                else:
                    frame = frame.copy()  # the camera keeps its own buffer; each observation owns its pixels
                pixels[c.name] = frame
            obs["pixels"] = pixels
        self._last_obs = obs
        return obs

    def _agent_pos(self, q: np.ndarray) -> np.ndarray:
        """`q` as float32 clamped to the state space, as the sim observes (a policy never sees a reading its
        observation space excludes); a joint read past its limits by more than the space's margin is said once:
        a calibration that no longer fits the arm, or a joint turned by hand past its range."""
        out = (q < self._state_low) | (q > self._state_high)
        for i in np.flatnonzero(out) if out.any() else ():  # nothing to look up on the usual step
            name = self.spec_arm.joint_names[i]
            if name not in self._out_of_range_said:
                self._out_of_range_said.add(name)
                log.warning("%s on %s reads %.3f, outside its observation range [%.3f, %.3f]: observed clamped "
                            "(recalibrate if the arm is within its range)", name, self.bus.port, q[i],
                            self._state_low[i], self._state_high[i])  # fmt: skip
        return np.clip(q, self._state_low, self._state_high).astype(np.float32)

    def _info(self, obs: dict[str, Any]) -> dict[str, Any]:
        success = bool(self.success_fn(obs)) if self.success_fn is not None else False
        return {"is_success": success, "overruns": self.overruns}

    def render(self) -> np.ndarray | None:
        """The first camera's frame of the last observation, at the env's image size (a copy: drawing on it, as
        video wrappers do, leaves the observations alone), as the sim renders. None without cameras (`evaluate`
        then writes no videos)."""
        if self.render_mode is None:
            gym.logger.warn(f"{self.spec.id if self.spec else type(self).__name__}.render() without a render_mode: "
                            "make the env with render_mode='rgb_array'")  # fmt: skip
            return None
        self._check_open()
        if not self.camera_specs:
            return None
        first = self.camera_specs[0].name
        if self._last_obs is not None and "pixels" in self._last_obs:
            return self._last_obs["pixels"][first].copy()
        return self._observation()["pixels"][first].copy()

    # ----- safety -------------------------------------------------------------------------------
    def _safety(self) -> _TorqueOffOnError:
        return _TorqueOffOnError(self)

    def torque_off(self) -> None:
        """Take torque off every motor (best effort; never raises)."""
        self._limp = True
        try:
            if self.bus.is_connected:
                self.bus.disable_torque()
        except Exception as exc:
            said = f"could not disable torque on {self.bus.port}: {exc}"
            if said != getattr(self, "_torque_off_said", None):  # once: the error path and close() both try
                log.warning(said)
                self._torque_off_said = said

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedEnvironmentError(f"the real arm env on {self.bus.port} was closed (its torque is off and "
                                         "the port free): make a new env")  # fmt: skip

    def __reduce__(self) -> Any:
        raise TypeError(f"a real arm env (port {self.bus.port}) holds a serial port and cameras and cannot be "
                        "pickled or copied: make it in the process that drives the arm")  # fmt: skip

    def close(self) -> None:
        self._closed = True
        for cam in self.cameras.values():
            try:
                cam.disconnect()
            except Exception as exc:
                log.warning("camera %s did not close cleanly: %s", cam.name, exc)
        self.cameras = {}
        if getattr(self, "bus", None) is not None:
            self.torque_off()
            self.bus.close()
        if getattr(self, "_limp_at_exit", None) is not None:
            self._limp_at_exit.detach()
        _uninstall(self._stop_handlers)
        self._stop_handlers = {}


def _no_env() -> None:
    return None


def _uninstall(handlers: dict[int, _StopHandler]) -> None:
    """Give each signal its earlier handler back where this env's is still the installed one; one installed since
    (another env's, the user's) keeps chaining to it, and it then only passes the signal on."""
    for signum, handler in handlers.items():
        handler.env = _no_env
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signum) is handler:
            signal.signal(signum, handler.prev)


class _StopHandler:
    """One env's handler of Ctrl-C, SIGTERM or SIGHUP: torque off first, then whatever handled the signal before
    (another env's handler, the user's), then KeyboardInterrupt (TerminationSignal for the others), so that code
    which saves finished work on Ctrl-C runs for `kill` and a closed terminal too. It holds the env weakly."""

    def __init__(self, env: RealArmEnv, prev: Any) -> None:
        self.env: Callable[[], RealArmEnv | None] = weakref.ref(env)
        while isinstance(prev, _StopHandler) and prev.env() is None:  # a gone env's, left below another's
            prev = prev.prev
        self.prev = prev

    def __call__(self, signum: int, frame: Any) -> None:
        env = self.env()
        if env is not None:
            env.torque_off()
        if callable(self.prev) and self.prev not in (signal.SIG_IGN, signal.SIG_DFL):
            self.prev(signum, frame)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise TerminationSignal(signum)


def _limp(bus: MotorBus | MultiBus, handlers: dict[int, _StopHandler]) -> None:
    """Torque off and close the bus of an env that was not closed (the process is ending or nobody holds the env),
    and give the stop signals their earlier handlers back."""
    if bus.is_connected:
        log.warning("a real arm env on %s was not closed: taking torque off", bus.port)
    bus.close(disable_torque=True)
    _uninstall(handlers)


class _TorqueOffOnError:
    def __init__(self, env: RealArmEnv) -> None:
        self.env = env

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.env.torque_off()
