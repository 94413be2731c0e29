"""RealArmEnv under Gymnasium's conventions, on the virtual bus: every real id has its sim id's spaces, an env
nobody holds is collected (torque off, port free), `render()` gives the observed frame as a copy, observations stay
in their space, a closed env says so, a real env refuses to be pickled, and the registry calls real ids
nondeterministic."""

from __future__ import annotations

import contextlib
import gc
import logging
import pickle
import signal
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ClosedEnvironmentError
from real_media import make_video

import twinarm  # noqa: F401 - registers the ids
from twinarm.arms import SO101, get_arm
from twinarm.real.env import RealArmEnv
from twinarm.real.errors import PortBusyError
from twinarm.real.multi_bus import bus_groups
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus
from twinarm.registration import ENV_ENTRIES
from twinarm.spec import ArmSpec


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("vid") / "front.mp4", n_frames=10, height=120, width=160)


@pytest.fixture(autouse=True)
def _stop_handlers_restored() -> Iterator[None]:
    """A test that drops an env leaves the process's stop-signal handlers as they were."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, h in before.items():
        signal.signal(s, h)


@contextlib.contextmanager
def served(spec: ArmSpec) -> Iterator[tuple[VirtualArm, Any]]:
    """A virtual arm of `spec` on its pty (ALOHA: one per side) and the env's `port` kwarg for it."""
    arm = VirtualArm(spec, step_mode="lockstep")
    groups = bus_groups(spec)
    last = list(groups)[-1]
    servers = {g: PtyServer(VirtualBus(arm, names if len(groups) > 1 else None, drives_lockstep=g == last))
               for g, names in groups.items()}  # fmt: skip
    for s in servers.values():
        s.start()
    try:
        yield arm, servers[""].port if "" in servers else {g: s.port for g, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()


def _cams(spec: ArmSpec, video: Path) -> dict[str, dict[str, Any]]:
    return {c.name: {"type": "opencv", "index_or_path": str(video)} for c in spec.cameras}


@pytest.mark.parametrize("entry", ENV_ENTRIES, ids=lambda e: e.real_id.split("/")[1])
def test_every_real_id_has_its_sim_ids_spaces(entry: Any, video: Path) -> None:
    spec = get_arm(entry.arm)
    assert gym.spec(entry.real_id).nondeterministic and not gym.spec(entry.sim_id).nondeterministic
    with served(spec) as (arm, port):
        for kwargs in ({}, {"image_size": (24, 32)}):
            sim = gym.make(entry.sim_id, **kwargs)
            real = gym.make(entry.real_id, port=port, calibration=arm.ideal_calibration(), cameras=_cams(spec, video),
                            pace=False, **kwargs)  # fmt: skip
            try:
                assert real.observation_space == sim.observation_space
                assert real.action_space == sim.action_space
                obs, info = real.reset(seed=0)
                assert real.observation_space.contains(obs) and info["is_success"] is False
            finally:
                real.close()
                sim.close()


def _env(port: str, arm: VirtualArm, **kw: Any) -> RealArmEnv:
    return RealArmEnv(arm=SO101, port=port, calibration=arm.ideal_calibration(), pace=False, **kw)


def test_an_env_nobody_holds_is_collected_with_its_torque_off_and_its_port_free() -> None:
    """The stop-signal handlers the process keeps hold the env weakly: a dropped env (never closed) is collected,
    which takes torque off and frees the port (it stayed locked until the process ended)."""
    with served(SO101) as (arm, port):
        env = _env(port, arm, cameras={})
        env.reset()
        assert all(s.torque_on for s in arm.servos)
        gone = weakref.ref(env)
        del env
        gc.collect()
        assert gone() is None
        assert not any(s.torque_on for s in arm.servos)
        assert signal.getsignal(signal.SIGINT) is not None
        again = _env(port, arm, cameras={})  # the port is free again
        again.reset()
        with pytest.raises(KeyboardInterrupt):  # the live env's handler still stops it
            signal.raise_signal(signal.SIGINT)
        assert not any(s.torque_on for s in arm.servos)
        again.close()


def test_a_second_env_on_one_arm_in_one_program_is_named_and_the_first_goes_limp_when_dropped() -> None:
    """`gym.make_vec` of a real id with 2 envs opens the port twice: the error says the port is open in this
    program (not "another program"), and the first env, dropped by the failed vector env, lets the arm go."""
    with served(SO101) as (arm, port):
        with pytest.raises(PortBusyError, match="already open in this program"):
            gym.make_vec("twinarm/SO101-PickCube-Real-v0", num_envs=2, vectorization_mode="sync",
                         port=port, calibration=arm.ideal_calibration(), cameras={}, pace=False)  # fmt: skip
        gc.collect()
        assert not any(s.torque_on for s in arm.servos)
        env = _env(port, arm, cameras={})
        env.close()


def test_closing_envs_in_any_order_gives_the_signals_their_handlers_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    with served(SO101) as (arm, port), served(SO101) as (arm2, port2):
        a, b = _env(port, arm, cameras={}), _env(port2, arm2, cameras={})
        a.reset()
        b.reset()
        a.close()  # b's handler, installed on top of a's, stays; a's now only passes the signal on
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert not any(s.torque_on for s in arm2.servos)
        b.close()
        assert signal.getsignal(signal.SIGINT) is not before  # b gave back what it found: a's spent handler
        with pytest.raises(KeyboardInterrupt):  # which passes Ctrl-C on
            signal.raise_signal(signal.SIGINT)
        c = _env(port, arm, cameras={})  # a later env's handler skips the spent one ...
        c.close()
    assert signal.getsignal(signal.SIGINT) is before  # ... so closing it gives the process's own back


def test_render_is_a_copy_of_the_observed_frame_at_the_envs_image_size(video: Path) -> None:
    with served(SO101) as (arm, port):
        env = _env(port, arm, cameras=_cams(SO101, video), image_size=(24, 32), render_mode="rgb_array")
        try:
            obs, _ = env.reset()
            frame = env.render()
            assert frame.shape == (24, 32, 3) and frame.dtype == np.uint8
            np.testing.assert_array_equal(frame, obs["pixels"]["front"])
            frame[:] = 0  # what a video wrapper's label does
            for _ in range(5):
                obs, *_ = env.step(obs["agent_pos"])
                assert obs["pixels"]["front"].any()
                drawn = env.render()
                np.testing.assert_array_equal(drawn, obs["pixels"]["front"])
                drawn[:] = 0
        finally:
            env.close()
        env = _env(port, arm, cameras={}, render_mode="rgb_array")  # nothing to show: None, as `evaluate` expects
        try:
            env.reset()
            assert env.render() is None
        finally:
            env.close()


def test_a_joint_read_past_its_range_is_observed_clamped_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """A wrist turned by hand past its range (or a calibration that no longer fits) reads outside the observation
    space: the observation is clamped into it, as the sim's, and the joint named once."""
    with served(SO101) as (arm, port):
        env = _env(port, arm, cameras={})
        try:
            q = SO101.home_pose.copy()
            q[4] = 3.13
            arm.move_to(q)
            with caplog.at_level(logging.WARNING, logger="twinarm.real.env"):
                obs, _ = env.reset()
                obs2, *_ = env.step(obs["agent_pos"])
            box = env.observation_space["agent_pos"]
            assert env.observation_space.contains(obs) and env.observation_space.contains(obs2)
            assert obs["agent_pos"][4] == box.high[4]
            said = [r.getMessage() for r in caplog.records if "wrist_roll" in r.getMessage()]
            assert len(said) == 1 and "outside its observation range" in said[0]
        finally:
            env.close()


def test_a_closed_env_says_so_and_a_real_env_is_not_pickled(video: Path) -> None:
    with served(SO101) as (arm, port):
        env = _env(port, arm, cameras=_cams(SO101, video), render_mode="rgb_array")
        env.reset()
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(env)
        env.close()
        env.close()  # twice is fine
        for call in (env.reset, lambda: env.step(np.zeros(6)), env.render):
            with pytest.raises(ClosedEnvironmentError, match="was closed"):
                call()


@pytest.mark.parametrize(("env_id", "arm", "says"), [
    ("twinarm/SO101-PickCube-Real-v0", "aloha", "PickCube is a one-arm task and the aloha arm has two"),
    ("twinarm/Aloha-TransferCube-Real-v0", "so101", "TransferCube is a two-arm task and the so101 arm has one"),
])  # fmt: skip
def test_an_arm_of_the_other_family_is_refused_before_the_port_opens(env_id: str, arm: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        gym.make(env_id, arm=arm, port="/dev/nonexistent", calibration={}, cameras={})
