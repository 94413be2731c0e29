"""`twinarm teleop --env SIM_ID`: a simulated arm follows a leader arm (the virtual leader, read through the
unmodified Feetech SDK), replayed targets or the keyboard, clamped as the real arm is, recorded with `twinarm
record`'s features; bad flag combinations are refused by name. The window (`--view`): test_teleop_view.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest
from real_helpers import Leader, bounded

import twinarm  # noqa: F401  (registers the ids)
from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.cli.teleop_sim import SimFollower
from twinarm.datasets_io.reader import column_to_numpy
from twinarm.envs.experts import make_expert
from twinarm.real.teleop import KeyboardTeleop, LeaderArm, teleoperate
from twinarm.real.virtual import VirtualArm

pytestmark = pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")

SIM = "twinarm/SO101-PickCube-v0"
SIZE = (48, 64)


def _follower(max_relative_target: float | None = None) -> SimFollower:
    env = gym.make(SIM, obs_type="pixels_agent_pos", image_size=SIZE)
    return SimFollower(env, max_relative_target, pace=False)


def test_sim_follower_replaying_the_experts_targets_is_the_experts_rollout() -> None:
    env = gym.make(SIM, obs_type="pixels_agent_pos", image_size=SIZE)
    expert = make_expert(env)
    obs, _ = env.reset(seed=3)
    targets, states = [], []
    for _ in range(150):
        a = expert(obs)
        targets.append(a)
        obs, _, _, _, info = env.step(a)
        states.append(obs["agent_pos"])
    assert info["is_success"]
    env.close()

    follower = _follower()
    follower.reset(seed=3)
    assert follower.status() == "task: not yet"
    for a, q in zip(targets, states, strict=True):
        obs, *_ = follower.step(a)
        np.testing.assert_array_equal(obs["agent_pos"], q)  # the same physics, step for step
    assert follower.success and follower.status() == "task: done"
    np.testing.assert_array_equal(follower.joint_positions(), states[-1])
    follower.close()


def test_sim_follower_clamps_each_target_to_the_limits_and_the_step_limit() -> None:
    follower = _follower(max_relative_target=0.05)
    sent: list[np.ndarray] = []
    step = follower.env.step
    follower.env.step = lambda a: (sent.append(np.array(a)), step(a))[1]
    follower.reset(seed=0)
    far = SO101.upper + 1.0  # past every limit
    before = []
    for _ in range(4):
        before.append(follower.joint_positions())
        follower.step(far)
    for q, target in zip(before, sent, strict=True):
        want = np.clip(np.minimum(far, SO101.upper), q - 0.05, q + 0.05)
        np.testing.assert_allclose(target, want)
        assert np.all(target <= SO101.upper)
    assert np.abs(sent[-1] - before[0]).max() > 0.05  # it does get there, one bounded step at a time
    follower.close()


def _frames(root: Path) -> dict[str, np.ndarray]:
    files = sorted((root / "data").rglob("*.parquet"))
    table = pq.read_table(files[0]) if len(files) == 1 else None
    assert table is not None, files
    return {k: column_to_numpy(table[k], k) for k in ("action", "observation.state", "episode_index")}


def test_cli_leader_drives_the_sim_and_records_what_twinarm_record_can_extend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cal = tmp_path / "leader.json"
    root = tmp_path / "pick_teleop_sim"
    pose = np.array([0.6, -0.3, 0.5, 0.2, -0.4, 0.8])  # shoulder_pan is 0.6 rad from the start pose
    leader = Leader("--arm", "so101", "--calibrated", "--write-calibration", str(cal))
    try:
        port = leader.ports[""]
        leader.type(" ".join(f"{n}={v}" for n, v in zip(SO101.joint_names, pose, strict=True)))
        arm = LeaderArm(SO101, port, cal)
        try:  # the hand has put the leader in the pose (the deadline only stops a hang)
            deadline = time.monotonic() + 30
            while np.abs(arm.get_action() - pose).max() > 0.01:
                assert time.monotonic() < deadline, arm.get_action()
                time.sleep(0.05)
        finally:
            arm.close()
        argv = ["teleop", "--env", SIM, "--leader-port", port, "--leader-calibration", str(cal),
                "--record", str(root), "--episodes", "2", "--episode-time", "1", "--reset-time", "0",
                "--image-size", *map(str, SIZE)]  # fmt: skip
        assert bounded(lambda: main(argv), timeout_s=120) == 0
    finally:
        leader.stop()
    out = capsys.readouterr().out
    assert f"leader arm {port} -> follower arm (simulated, {SIM})" in out
    assert "saved 2 episode(s) this run (0 of the 2 ended with the task done)" in out
    assert "Task: 'Pick up the cube.'" in out  # the sim task's instruction by default

    frames = _frames(root)
    episodes = frames["episode_index"]
    assert (episodes == np.repeat([0, 1], 30)).all()  # 1 s at the arm's 30 Hz each
    action = SO101.from_lerobot(frames["action"])
    state = SO101.from_lerobot(frames["observation.state"])
    home = SO101.home_pose
    for first, last in ((0, 29), (30, 59)):
        # Each episode starts from the reset pose: the first target is clamped 0.2 rad (the default) from it ...
        assert np.abs(action[first] - home).max() <= 0.2 + 1e-3
        assert action[first][0] == pytest.approx(home[0] + 0.2, abs=1e-3)
        # ... and within the second the sim arm has followed the leader there.
        np.testing.assert_allclose(action[last], pose, atol=0.01)
        np.testing.assert_allclose(state[last][:5], pose[:5], atol=0.1)

    # The features are `twinarm record`'s at that size: scripted episodes append to the teleoperated ones, and
    # take their scenes' seeds past the two the teleoperated episodes used.
    saved_config = root / "meta" / "twinarm_record.json"
    assert json.loads(saved_config.read_text())["next_seed"] == 2
    assert main(["record", "--env", SIM, "--episodes", "1", "--root", str(root), "--resume", "--height",
                 str(SIZE[0]), "--width", str(SIZE[1]), "--no-progress"]) == 0  # fmt: skip
    assert main(["dataset", "check", str(root)]) == 0
    assert "dataset now has 3 episodes" in capsys.readouterr().out
    assert json.loads(saved_config.read_text())["next_seed"] == 3
    # Each episode's seed, the teleoperated run's and the scripted one's (`replay` reads them).
    from twinarm.datasets_io.layout import episode_seeds

    assert episode_seeds(root) == {0: 0, 1: 1, 2: 2}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "twinarm/SO101-PickCube-Real-v0", "--keyboard"],
         "--env twinarm/SO101-PickCube-Real-v0 is a real arm's id"),
        (["--env", SIM, "--port", "/dev/ttyACM0", "--keyboard"],
         "--env follows with a simulated arm; --port belongs to a real one"),
        (["--env", SIM, "--arm", "koch", "--keyboard"], "--arm koch and --env twinarm/SO101-PickCube-v0"),
        (["--env", "twinarm/Nope-v0", "--keyboard"], "--env: 'twinarm/Nope-v0' is not a twinarm env id"),
        (["--keyboard"], "teleop needs the follower arm's --port and --calibration (or --env SIM_ID"),
        (["--port", "/dev/ttyACM0", "--calibration", "f.json", "--keyboard", "--view"],
         "--view shows the follower's cameras: give them with --camera NAME=SOURCE"),
        (["--port", "/dev/ttyACM0", "--calibration", "f.json", "--keyboard", "--randomization", "sim2real"],
         "--randomization: for a simulated follower; add --env SIM_ID"),
        (["--env", SIM, "--keyboard", "--randomization", "nope"], "--randomization 'nope': not a preset"),
        (["--env", SIM, "--keyboard", "--dynamics", "missing.json"], "--dynamics missing.json"),
        (["--env", SIM, "--keyboard", "--camera-poses", "missing.json"], "--camera-poses missing.json"),
        (["--port", "/dev/ttyACM0", "--calibration", "f.json", "--keyboard", "--camera-poses", "c.json"],
         "--camera-poses: for a simulated follower; add --env SIM_ID"),
        (["--env", "twinarm/Aloha-TransferCube-v0", "--keyboard"], "--keyboard drives one arm"),
        (["--env", SIM, "--keyboard", "--only-success"], "--only-success: for recording; add --record ROOT"),
        (["--port", "/dev/ttyACM0", "--calibration", "f.json", "--keyboard", "--obs-type", "state"],
         "--obs-type: for a simulated follower; add --env SIM_ID"),
        (["--port", "/dev/ttyACM0", "--calibration", "f.json", "--keyboard", "--end-on-success"],
         "--end-on-success: for a simulated follower; add --env SIM_ID"),
        (["--env", SIM, "--keyboard", "--record", "r", "--end-on-success", "-1"], "--end-on-success must be >= 0"),
    ],
)  # fmt: skip
def test_cli_flag_errors_name_the_flag(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["teleop", *argv])
    code = exc.value.code
    said = code if isinstance(code, str) else capsys.readouterr().err  # usage errors exit 2, file errors say why
    assert code == 2 or isinstance(code, str)
    assert message in said


def test_cli_view_without_a_display_is_refused_before_anything_opens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(SystemExit):
        main(["teleop", "--env", SIM, "--keyboard", "--view"])
    assert "--view: no display to open a window on (DISPLAY is not set)" in capsys.readouterr().err


def test_keyboard_drives_the_sim_and_starts_again_from_each_reset() -> None:
    follower = _follower(max_relative_target=0.2)
    keys = KeyboardTeleop(SO101, follower.joint_positions())
    follower.on_reset.append(keys.hold)  # as `teleop --env ... --keyboard` wires them
    follower.reset(seed=0)
    for _ in range(10):
        keys.press("q")  # shoulder_pan up, 0.03 rad a press
    teleoperate(keys, follower, max_steps=20)  # teleoperate resets the sim first: keys pressed before are dropped
    np.testing.assert_allclose(follower.joint_positions()[0], SO101.home_pose[0], atol=0.02)
    for _ in range(10):
        keys.press("q")
    for _ in range(20):
        follower.step(keys.get_action())
    assert keys.target[0] == pytest.approx(SO101.home_pose[0] + 0.3)
    assert follower.joint_positions()[0] == pytest.approx(SO101.home_pose[0] + 0.3, abs=0.05)  # the arm followed
    follower.reset(seed=1)  # a new episode: the arm is back at its start, and so is the keyboard's target
    np.testing.assert_allclose(keys.get_action(), follower.joint_positions())
    follower.close()


def test_sim_follower_takes_record_s_randomization_and_dynamics(tmp_path: Path) -> None:
    from twinarm.cli.config import load_dynamics, load_randomization
    from twinarm.cli.teleop_sim import make_sim_follower
    from twinarm.envs.dynamics import ArmDynamics, read_dynamics

    model = gym.make(SIM).unwrapped.physics.model
    own = read_dynamics(model, SO101)
    heavy = ArmDynamics(SO101.name, {n: {**p, "damping": 3 * p["damping"]} for n, p in own.joints.items()})
    dyn_file = heavy.save(tmp_path / "dynamics.json")
    follower = make_sim_follower(SIM, SIZE, 0.2, 30, randomization=load_randomization('{"obs_noise_std": 0.01}'),
                                 dynamics=load_dynamics(str(dyn_file), SO101.name))  # fmt: skip
    try:
        assert follower.env.spec.max_episode_steps == 30  # --episode-time, not the task's 150 steps
        got = read_dynamics(follower.env.unwrapped.physics.model, SO101)
        for name, params in heavy.joints.items():
            assert got.joints[name]["damping"] == pytest.approx(params["damping"])
        follower.reset(seed=0)
        obs, *_ = follower.step(follower.joint_positions())
        true_q = follower.env.unwrapped.physics.joint_positions()
        assert 1e-4 < np.abs(obs["agent_pos"] - true_q).max() < 0.1  # its encoder noise is on
    finally:
        follower.close()


def test_sim_follower_ends_the_episode_once_the_task_has_been_done_a_while() -> None:
    follower = _follower()
    follower.end_after_success_steps = 5
    follower.reset(seed=3)
    expert = make_expert(follower.env)
    expert.reset()
    done_at = ended_at = None
    for t in range(150):
        _, _, terminated, _, _ = follower.step(expert())
        if follower.success and done_at is None:
            done_at = t
        if terminated:
            ended_at = t
            break
    assert done_at is not None and ended_at == done_at + 4  # the fifth step in a row with the task done
    follower.close()


class ExpertHand:
    """Stands in for the person at the leader arm (who cannot run here): the scripted expert's targets for the
    scene the simulated follower was reset to; with `fail_first`, in the first episode the hand holds still."""

    def __init__(self, fail_first: bool) -> None:
        self.fail_first = fail_first
        self.follower: SimFollower | None = None
        self.resets = 0

    def attach(self, follower: SimFollower) -> None:
        self.follower = follower
        follower.clock.pace = False  # as fast as the sim steps: nobody is watching
        follower.on_reset.append(self._reset)

    def _reset(self, pose: np.ndarray) -> None:
        self.resets += 1
        self.still = pose
        self.expert = make_expert(self.follower.env)
        self.expert.reset()

    def get_action(self) -> np.ndarray:
        return self.still if self.fail_first and self.resets == 1 else self.expert()

    def close(self) -> None:
        pass


@pytest.fixture
def hand_at_the_leader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], Path]:
    """`install(fail_first)`: an ExpertHand in place of the leader arms `teleop` opens, attached to the simulated
    follower it builds; returns the leader calibration file teleop reads (and checks) before opening leaders."""
    import twinarm.cli.teleop_sim as teleop_sim
    import twinarm.real.teleop as real_teleop

    def install(fail_first: bool) -> Path:
        hand = ExpertHand(fail_first)
        make_follower = teleop_sim.make_sim_follower

        def follower_with_hand(*args, **kwargs) -> SimFollower:
            follower = make_follower(*args, **kwargs)
            hand.attach(follower)
            return follower

        monkeypatch.setattr(teleop_sim, "make_sim_follower", follower_with_hand)
        monkeypatch.setattr(real_teleop, "make_leader", lambda *a, **k: hand)
        return VirtualArm(SO101).ideal_calibration().save(tmp_path / "leader.json")

    return install


def test_cli_only_success_drops_a_failed_demonstration_and_end_on_success_trims_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hand_at_the_leader: Callable[[bool], Path]
) -> None:
    cal = hand_at_the_leader(True)
    root = tmp_path / "demos"
    argv = ["teleop", "--env", SIM, "--leader-port", "/dev/hand", "--leader-calibration", str(cal),
            "--record", str(root), "--episodes", "2", "--episode-time", "10", "--reset-time", "0",
            "--only-success", "--end-on-success", "0.5", "--max-relative-target", "1", "--image-size", *map(str, SIZE)]  # fmt: skip
    assert bounded(lambda: main(argv), timeout_s=180) == 0
    out = capsys.readouterr().out
    assert "episode 1 did not end with the task done: dropped, recorded again on a new scene" in out
    assert "saved 2 episode(s) this run (2 of the 3 ended with the task done)" in out
    lengths = np.bincount(_frames(root)["episode_index"])
    # Each ends 15 steps (0.5 s) after the lift, long before its 300 steps (10 s) were up.
    assert len(lengths) == 2 and all(60 < n < 200 for n in lengths), lengths
    assert json.loads((root / "meta" / "twinarm_record.json").read_text())["next_seed"] == 3  # three scenes used
    from twinarm.datasets_io.layout import episode_seeds

    assert episode_seeds(root) == {0: 1, 1: 2}  # seed 0's demonstration failed and was dropped


def test_cli_state_observations_are_recorded_as_record_writes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hand_at_the_leader: Callable[[bool], Path]
) -> None:
    cal = hand_at_the_leader(False)
    root = tmp_path / "state_demos"
    argv = ["teleop", "--env", SIM, "--obs-type", "state", "--leader-port", "/dev/hand", "--leader-calibration",
            str(cal), "--record", str(root), "--episodes", "1", "--episode-time", "6", "--reset-time", "0",
            "--end-on-success", "--max-relative-target", "1"]  # fmt: skip
    assert bounded(lambda: main(argv), timeout_s=180) == 0
    assert "(1 of the 1 ended with the task done)" in capsys.readouterr().out
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.environment_state"]["shape"] == [7]
    assert not any(k.startswith("observation.images") for k in info["features"])
    assert main(["record", "--env", SIM, "--obs-type", "state", "--episodes", "1", "--root", str(root), "--resume",
                 "--no-progress"]) == 0  # fmt: skip
    assert main(["dataset", "check", str(root)]) == 0
