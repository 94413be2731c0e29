"""The sim-to-real loop from the CLI, over virtual SO-101 servos on ptys driven by the unmodified Feetech SDK:
teleoperated demonstrations recorded on the "real" arm (`teleop --record`) into a dataset with exactly the
features of a sim recording; a policy trained on them; the same checkpoint evaluated in sim and run on the
real id (`eval --env ...-Real-v0 --port ...`), where it must drive the follower to where the leader was."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from real_helpers import bounded
from real_media import make_video

from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.datasets_io.validator import check_dataset
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

# A loaded machine overruns the 33 ms control period now and then; these tests check behaviour, not timing.
pytestmark = pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")

SIM, REAL = "twinarm/SO101-PickCube-v0", "twinarm/SO101-PickCube-Real-v0"
TICK = 2 * np.pi / 4096
#: Where the demonstrator holds the leader (inside every joint's range), and a far start for the follower.
POSE = np.array([0.4, -0.6, 0.7, 0.5, -0.4, 0.7])
ELSEWHERE = np.array([-0.3, 0.2, -0.2, -0.3, 0.5, 0.1])
IMAGE = ("48", "64")
TINY_ACT = ["--set", "chunk_size=10", "--set", "n_action_steps=10", "--set", "dim_model=32", "--set", "n_heads=2",
            "--set", "dim_feedforward=64", "--set", "n_encoder_layers=1", "--set", "n_vae_encoder_layers=1",
            "--set", "latent_dim=4"]  # fmt: skip


@dataclass
class Rig:
    follower: VirtualArm
    leader: VirtualArm
    follower_port: str
    leader_port: str
    follower_cal: Path
    leader_cal: Path
    cameras: list[str]
    follower_bus: VirtualBus

    def follower_flags(self) -> list[str]:
        return ["--port", self.follower_port, "--calibration", str(self.follower_cal), *self.cameras]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("rig")
    video = make_video(tmp / "cam.mp4", n_frames=10, height=96, width=128)
    # The follower's joints advance one control period per goal write (deterministic); the leader is moved by hand.
    follower, leader = VirtualArm(SO101, step_mode="lockstep"), VirtualArm(SO101)
    with PtyServer(VirtualBus(follower)) as f_server, PtyServer(VirtualBus(leader)) as l_server:
        yield Rig(follower, leader, f_server.port, l_server.port,
                  follower.ideal_calibration().save(tmp / "follower.json"),
                  leader.ideal_calibration().save(tmp / "leader.json"),
                  ["--camera", f"front={video}", "--camera", f"wrist={video}"], f_server.bus)  # fmt: skip


@pytest.fixture(scope="module")
def real_demos(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 0.5 s teleoperated episodes recorded on the virtual real arm, the leader held at POSE."""
    root = tmp_path_factory.mktemp("demos") / "so101_real"
    rig.leader.move_to(POSE)
    rig.follower.move_to(POSE)
    argv = ["teleop", "--arm", "so101", *rig.follower_flags(), "--leader-port", rig.leader_port,
            "--leader-calibration", str(rig.leader_cal), "--image-size", *IMAGE, "--record", str(root),
            "--task", "Pick up the cube.", "--episodes", "2", "--episode-time", "0.5", "--reset-time", "0.2"]  # fmt: skip
    assert bounded(lambda: main(argv), timeout_s=120) == 0
    return root


@contextlib.contextmanager
def silenced_after(rig: Rig, motor_id: int, steps: int) -> Iterator[None]:
    """Motor `motor_id` of the follower stops answering once the arm has taken `steps` more goal writes (from a
    watcher thread); it answers again when the block ends."""
    start, fault = rig.follower.steps, rig.follower_bus.faults(motor_id)

    def watch() -> None:
        deadline = time.monotonic() + 60
        while rig.follower.steps < start + steps and time.monotonic() < deadline:
            time.sleep(0.002)
        fault.silent = True

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        watcher.join(timeout=60)
        fault.silent = False


def test_teleop_records_real_demonstrations_with_the_sim_features(rig: Rig, real_demos: Path, tmp_path: Path) -> None:
    assert check_dataset(real_demos, deep=True) == []
    info = json.loads((real_demos / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_frames"] == 30 and info["robot_type"] == SO101.robot_type
    # A sim recording of the same arm at the same image size has the very same features: the datasets mix.
    sim_root = tmp_path / "sim"
    rc = main(["record", "--env", SIM, "--root", str(sim_root), "--episodes", "1", "--max-attempts", "1",
               "--height", IMAGE[0], "--width", IMAGE[1], "--no-progress"])  # fmt: skip
    assert rc == 0
    sim_info = json.loads((sim_root / "meta" / "info.json").read_text())

    def shapes(features: dict) -> dict:
        return {k: (v["dtype"], v["shape"], v.get("names")) for k, v in features.items()}

    assert shapes(info["features"]) == shapes(sim_info["features"])
    # The action is the target the follower was sent (the leader's pose), in LeRobot units (degrees, gripper 0..100).
    table = pq.read_table(next((real_demos / "data").rglob("*.parquet")))
    actions = np.stack(table.column("action").to_numpy(zero_copy_only=False))
    states = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False))
    expected = SO101.to_lerobot(POSE)
    tol = np.where(SO101.gripper_mask, 100 * 1.5 / 1400, np.degrees(1.5 * TICK))
    assert np.all(np.abs(actions - expected) <= tol), np.abs(actions - expected).max(0)
    assert np.all(np.abs(states - expected) <= tol)
    assert table.column("task_index").to_pylist() == [0] * 30
    assert not any(s.torque_on for s in rig.follower.servos)  # torque off when the recording ends


def test_policy_trained_on_real_demos_runs_in_sim_and_on_the_real_arm(
    rig: Rig, real_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "act"
    rc = main(["train", "--policy", "act", "--dataset", str(real_demos), "--env", SIM, "--output-dir", str(run),
               "--steps", "2", "--batch-size", "4", "--log-freq", "1", "--save-freq", "2", "--threads", "1",
               "--no-progress", *TINY_ACT])  # fmt: skip
    assert rc == 0
    ckpt = run / "checkpoints" / "last" / "pretrained_model"

    rc = main(["eval", "--policy", str(ckpt), "--env", SIM, "--episodes", "1", "--max-steps", "5", "--videos", "0",
               "--threads", "1", "--out", str(tmp_path / "eval_sim")])  # fmt: skip
    assert rc == 0
    assert json.loads((tmp_path / "eval_sim" / "eval_info.json").read_text())["aggregated"]["n_episodes"] == 1

    # The same checkpoint on the real id: only the id and the hardware flags change. Every demonstrated action was
    # POSE, so whatever the briefly trained network outputs, its unnormalized action is POSE: the arm must get there
    # from elsewhere, through the checkpoint's stats, LeRobot's units, the spec's conversion and the servo bus.
    rig.follower.move_to(ELSEWHERE)
    out = tmp_path / "eval_real"
    argv = ["eval", "--policy", str(ckpt), "--env", REAL, *rig.follower_flags(), "--max-relative-target", "0.3",
            "--episodes", "2", "--max-steps", "8", "--reset-time", "0", "--videos", "1", "--threads", "1",
            "--out", str(out)]  # fmt: skip
    assert bounded(lambda: main([*argv, "--record", str(tmp_path / "rollouts")]), timeout_s=120) == 0
    result = json.loads((out / "eval_info.json").read_text())
    # The policy's episodes on the real arm, saved with the demonstrations' very features (ready to be added).
    rollouts = json.loads((tmp_path / "rollouts" / "meta" / "info.json").read_text())
    assert rollouts["total_episodes"] == 2 and rollouts["total_frames"] == 16
    assert rollouts["features"] == json.loads((real_demos / "meta" / "info.json").read_text())["features"]
    assert [e["length"] for e in result["per_episode"]] == [8, 8]
    # Each real episode started at the spec's home pose, where sim episodes start (--start-pose home, the default).
    table = pq.read_table(next((tmp_path / "rollouts" / "data").rglob("*.parquet")))
    starts = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False))[
        np.asarray(table.column("frame_index").to_pylist()) == 0]
    assert starts.shape == (2, 6)
    np.testing.assert_allclose(starts, np.tile(SO101.to_lerobot(SO101.home_pose), (2, 1)), atol=3.5)  # deg; 0..100
    assert result["select_action_ms"]["calls"] == 16  # one call per control step, timed for the loop budget
    assert len(list((out / "videos").glob("*.mp4"))) == 1
    q = rig.follower.joint_positions()
    tol = np.where(SO101.gripper_mask, 2 / 1400, 2 * TICK)
    assert np.all(np.abs(q - POSE) <= tol), f"follower at {q}, demonstrations at {POSE}"
    assert not any(s.torque_on for s in rig.follower.servos)

    # With the next chunk computed in the background (--prefetch-at), the same run, the same destination.
    rig.follower.move_to(ELSEWHERE)
    argv[argv.index("--out") + 1] = str(tmp_path / "eval_real_prefetch")
    assert bounded(lambda: main([*argv, "--prefetch-at", "4", "--episodes", "1", "--max-steps", "12"]), timeout_s=120) == 0
    assert np.all(np.abs(rig.follower.joint_positions() - POSE) <= tol)

    # In int8 on the CPU: the camera backbone calibrated on the real demonstrations, found through the training
    # run's train_config.json; the same destination.
    rig.follower.move_to(ELSEWHERE)
    argv[argv.index("--out") + 1] = str(tmp_path / "eval_real_int8")
    capsys.readouterr()
    assert bounded(lambda: main([*argv, "--int8", "--episodes", "1", "--max-steps", "12"]), timeout_s=120) == 0
    assert f"1 backbone(s) quantized, backbone calibrated on frames of {real_demos}" in capsys.readouterr().out
    assert np.all(np.abs(rig.follower.joint_positions() - POSE) <= tol)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "is the real arm: name its --port and --calibration"),
        (["--port", "/dev/p1", "--calibration", "c.json", "--n-envs", "2"], "one physical arm"),
        (["--port", "/dev/p1", "--calibration", "c.json"], "give --camera NAME=SOURCE for ['front', 'wrist']"),
    ],
)
def test_eval_on_the_real_id_names_what_is_missing(
    tmp_path: Path, tiny_act_checkpoint: Callable[..., Path], extra: list[str], expected: str,
    capsys: pytest.CaptureFixture,
) -> None:
    ckpt = tiny_act_checkpoint(cameras=("front", "wrist"), image=tuple(int(v) for v in IMAGE))
    with pytest.raises(SystemExit) as info:
        main(["eval", "--policy", str(ckpt), "--env", REAL, "--out", str(tmp_path / "e"), *extra])
    assert info.value.code == 2
    assert expected in capsys.readouterr().err


def test_eval_refuses_hardware_flags_on_a_sim_id(
    tmp_path: Path, tiny_act_checkpoint: Callable[..., Path], capsys: pytest.CaptureFixture
) -> None:
    ckpt = tiny_act_checkpoint(cameras=("front", "wrist"), image=tuple(int(v) for v in IMAGE))
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(ckpt), "--env", SIM, "--port", "/dev/p1", "--out", str(tmp_path / "e")])
    assert f"--port: only for a real arm ({REAL})" in capsys.readouterr().err


def test_a_person_judges_success_on_the_real_arm(
    rig: Rig, tmp_path: Path, tiny_act_checkpoint: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """From a terminal, eval on the real id asks after each episode whether it succeeded (the real env has no
    detector); pc_success counts the answers."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    ckpt = tiny_act_checkpoint(cameras=("front", "wrist"), image=tuple(int(v) for v in IMAGE))
    monkeypatch.setattr(sys, "stdin", Terminal("y\nmaybe\nn\n"))
    out = tmp_path / "judged"
    argv = ["eval", "--policy", str(ckpt), "--env", REAL, *rig.follower_flags(), "--episodes", "2", "--max-steps", "3",
            "--reset-time", "0", "--videos", "0", "--threads", "1", "--out", str(out)]  # fmt: skip
    assert bounded(lambda: main(argv), timeout_s=120) == 0
    assert [e["success"] for e in json.loads((out / "eval_info.json").read_text())["per_episode"]] == [True, False]
    assert capsys.readouterr().out.count("episode 2: success? [y/n]") == 2  # asked again after "maybe"
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(ckpt), "--env", SIM, "--ask-success", "--out", str(tmp_path / "sim")])
    assert "--ask-success: only on a real arm" in capsys.readouterr().err


def test_a_follower_servo_going_silent_mid_recording_keeps_the_finished_episodes(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The wrist servo stops answering after the first episode: the run ends with an error naming the motor and the
    follower port, the arm goes limp, and the episode already recorded is in a valid dataset."""
    root = tmp_path / "interrupted"
    rig.leader.move_to(POSE)
    rig.follower.move_to(POSE)
    victim = SO101.joints[3]
    argv = ["teleop", "--arm", "so101", *rig.follower_flags(), "--leader-port", rig.leader_port,
            "--leader-calibration", str(rig.leader_cal), "--image-size", *IMAGE, "--record", str(root),
            "--task", "Pick up the cube.", "--episodes", "3", "--episode-time", "0.5", "--reset-time", "0.5"]  # fmt: skip
    with silenced_after(rig, victim.motor_id, 20), pytest.raises(SystemExit) as info:  # episode 1: 15 goal writes
        bounded(lambda: main(argv), timeout_s=120)
    msg = str(info.value.code)
    assert "follower arm" in msg and victim.name in msg and rig.follower_port in msg
    assert all(not s.torque_on for s in rig.follower.servos if s.motor_id != victim.motor_id)
    assert check_dataset(root, deep=True) == []
    info_json = json.loads((root / "meta" / "info.json").read_text())
    assert info_json["total_episodes"] == 1 and info_json["total_frames"] == 15
    assert "saved 1 episode(s) this run" in capsys.readouterr().out



def test_a_servo_going_silent_mid_eval_keeps_the_finished_episodes_metrics(
    rig: Rig, tmp_path: Path, tiny_act_checkpoint: Callable[..., Path], capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The wrist servo stops answering in episode 2 of 3: the error names it, and eval_info.json holds episode 1
    (it was written only at the end before, so a disconnect lost every finished episode's metrics). No person
    judged success (stdin is no terminal) and the real arm has no detector: success is not measured, not 0 %."""
    ckpt = tiny_act_checkpoint(cameras=("front", "wrist"), image=tuple(int(v) for v in IMAGE))
    victim = SO101.joints[3]
    out = tmp_path / "eval"
    argv = ["eval", "--policy", str(ckpt), "--env", REAL, *rig.follower_flags(), "--episodes", "3", "--max-steps", "10",
            "--start-pose", "here", "--reset-time", "0", "--videos", "0", "--threads", "1", "--out", str(out)]  # fmt: skip
    with silenced_after(rig, victim.motor_id, 14):  # episode 1 is 10 goal writes: silent in episode 2
        assert bounded(lambda: main(argv), timeout_s=120) == 1
    kept = json.loads((out / "eval_info.json").read_text())
    assert kept["aggregated"]["n_episodes"] == 1 and kept["aggregated"]["pc_success"] is None
    assert [e["success"] for e in kept["per_episode"]] == [None] and kept["per_episode"][0]["length"] == 10
    assert kept["stopped"].startswith("ended after 1 of 3 episodes by ")
    assert (out / "config.json").is_file()
    captured = capsys.readouterr()
    assert f"kept the 1 finished episode(s) in {out / 'eval_info.json'}" in captured.err
    assert f"motor '{victim.name}' (id {victim.motor_id}) on port {rig.follower_port} is not responding" in captured.err
    assert "eval 1/3\n" in captured.out  # no "success 0/1": nothing measured it
    assert all(not s.torque_on for s in rig.follower.servos if s.motor_id != victim.motor_id)
    # The error path and close() both take torque off; the failure to reach the silent servo is said once.
    assert sum("could not disable torque" in r.getMessage() for r in caplog.records) == 1


def test_eval_of_a_joints_only_policy_on_the_real_arm_writes_no_videos(
    rig: Rig, tmp_path: Path, tiny_act_checkpoint: Callable[..., Path], capsys: pytest.CaptureFixture,
    recwarn: pytest.WarningsRecorder,
) -> None:
    """A policy that reads only observation.state runs on the real arm without cameras, which renders nothing: with
    the default --videos, every episode runs and eval_info.json is written (the first video crashed write_mp4 on
    render()'s None), one line says why there are no videos, and no empty videos folder is left."""
    ckpt = tiny_act_checkpoint()
    out = tmp_path / "joints"
    argv = ["eval", "--policy", str(ckpt), "--env", REAL, "--port", rig.follower_port, "--calibration",
            str(rig.follower_cal), "--episodes", "2", "--max-steps", "5", "--reset-time", "0", "--no-ask-success",
            "--threads", "1", "--out", str(out)]  # fmt: skip
    assert bounded(lambda: main(argv), timeout_s=120) == 0
    result = json.loads((out / "eval_info.json").read_text())
    assert [e["length"] for e in result["per_episode"]] == [5, 5] and result["video_paths"] == []
    assert not (out / "videos").exists()
    err = capsys.readouterr().err
    assert err.count(f"note: {REAL} renders no frames (no camera): no videos written") == 1
    assert not [w for w in recwarn if "rendering should return" in str(w.message)]
