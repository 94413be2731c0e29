"""`twinarm replay`: a recorded episode's actions played on the sim env (reproducing a sim recording exactly with
its seed, and showing the gap without it) and on the real arm (virtual SO-101 servos behind the Feetech SDK)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from real_helpers import bounded

import twinarm  # noqa: F401
from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

pytestmark = pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")

SIM, REAL = "twinarm/SO101-PickCube-v0", "twinarm/SO101-PickCube-Real-v0"
SEED = 7


@pytest.fixture(scope="module")
def sim_episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scripted PickCube episodes recorded from seed SEED (the expert grasps the cube)."""
    root = tmp_path_factory.mktemp("replay") / "sim"
    assert main(["record", "--env", SIM, "--root", str(root), "--episodes", "2", "--max-attempts", "2",
                 "--seed", str(SEED), "--height", "48", "--width", "64", "--no-progress"]) == 0  # fmt: skip
    return root


def replay(argv: list[str], out: Path) -> dict:
    assert bounded(lambda: main(["replay", *argv, "--out", str(out)]), timeout_s=120) == 0
    return json.loads((out / "replay.json").read_text())["joints"]


def test_replay_in_sim_reproduces_a_sim_recording_with_its_seed(sim_episode: Path, tmp_path: Path, capsys) -> None:
    same = replay(["--dataset", str(sim_episode), "--env", SIM, "--seed", str(SEED)], tmp_path / "same")
    assert all(v["max"] < 1e-3 for v in same.values()), same  # float32 rounding of the stored values only
    out = capsys.readouterr().out
    assert "shoulder_pan" in out and "replay.mp4" in out
    assert (tmp_path / "same" / "replay.png").stat().st_size > 10_000
    # The video puts each recorded camera beside the sim's view of it: front and wrist rows, 48x64 each.
    import av

    with av.open(str(tmp_path / "same" / "replay.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    assert len(frames) == json.loads((tmp_path / "same" / "replay.json").read_text())["frames"]
    assert frames[0].shape == (2 * 48, 2 * 64, 3)
    left, right = frames[40][:, :64].astype(int), frames[40][:, 64:].astype(int)
    assert np.abs(left - right)[12:, :].mean() < 8  # the same seed: the sim sees what was recorded (codec noise)
    # Cameras pair by name, or as --camera-map says: the recorded wrist beside the sim's front view differs.
    replay(["--dataset", str(sim_episode), "--env", SIM, "--seed", str(SEED), "--camera-map", "wrist=front"],
           tmp_path / "mapped")
    with av.open(str(tmp_path / "mapped" / "replay.mp4")) as c:
        video = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]).astype(int)
    same = np.abs(video[:, 12:48, :64] - video[:, 12:48, 64:]).mean()  # recorded front | sim front: codec noise
    other = np.abs(video[:, 60:, :64] - video[:, 60:, 64:]).mean()  # recorded wrist | sim front
    assert same < 6 and other > 2 * same, (same, other)
    assert main(["replay", "--dataset", str(sim_episode), "--env", SIM, "--camera-map", "top=front",
                 "--out", str(tmp_path / "bad")]) == 1  # fmt: skip
    assert "--camera-map top=front: the dataset's colour cameras are ['front', 'wrist']" in capsys.readouterr().err
    # Another seed puts the cube elsewhere: the arm moves alike, but the gripper closes on nothing.
    other = replay(["--dataset", str(sim_episode), "--env", SIM, "--seed", str(SEED + 1), "--no-video"],
                   tmp_path / "other")
    assert other["gripper"]["max"] > 5.0 and other["gripper"]["unit"] == "0..100"
    assert not (tmp_path / "other" / "replay.mp4").exists()
    # Both episodes (episode k with seed SEED + k, as recorded): one plot each, the table pooled.
    both = replay(["--dataset", str(sim_episode), "--env", SIM, "--episode", "0-1", "--seed", str(SEED), "--no-video"],
                  tmp_path / "both")
    assert all(v["max"] < 1e-3 for v in both.values()), both
    result = json.loads((tmp_path / "both" / "replay.json").read_text())
    assert sorted(result["episodes"]) == ["0", "1"] and [e["seed"] for e in result["episodes"].values()] == [SEED, SEED + 1]
    assert result["frames"] == sum(e["frames"] for e in result["episodes"].values())
    assert (tmp_path / "both" / "replay_ep1.png").exists()


def test_replay_says_when_no_recorded_camera_pairs_and_maps_several_per_flag(
    sim_episode: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """LeRobot's camera names (laptop, phone) pair with no sim camera: the video shows the sim's view alone, and
    stderr says so once, naming both sides and the --camera-map that pairs them. One --camera-map takes several
    pairs (it took one, `phone=wrist` was an unrecognized argument), and the flag still repeats."""
    import av

    lerobot = tmp_path / "lerobot"
    assert main(["dataset", "rename-feature", str(sim_episode), str(lerobot), "--rename",
                 "observation.images.front=observation.images.laptop",
                 "observation.images.wrist=observation.images.phone"]) == 0  # fmt: skip
    capsys.readouterr()
    base = ["--dataset", str(lerobot), "--env", SIM, "--seed", str(SEED)]
    replay(base, tmp_path / "unpaired")
    err = capsys.readouterr().err
    assert err.count("note: none of the dataset's cameras ['laptop', 'phone'] is a sim camera") == 1, err
    assert "pair them with --camera-map laptop=front phone=wrist" in err
    for name, flags in [("one_flag", ["--camera-map", "laptop=front", "phone=wrist"]),
                        ("two_flags", ["--camera-map", "laptop=front", "--camera-map", "phone=wrist"])]:  # fmt: skip
        replay([*base, *flags], tmp_path / name)
        assert "note: none of the dataset's cameras" not in capsys.readouterr().err
        with av.open(str(tmp_path / name / "replay.mp4")) as c:
            frame = next(c.decode(c.streams.video[0])).to_ndarray(format="rgb24")
        assert frame.shape == (2 * 48, 2 * 64, 3)  # laptop beside front, phone beside wrist


def test_replay_on_the_real_arm(sim_episode: Path, tmp_path: Path) -> None:
    """The sim episode on the (virtual) real arm: driven to the first pose, then its actions; the joints follow."""
    arm = VirtualArm(SO101, step_mode="lockstep")  # its joints advance one control period per goal write
    arm.move_to(np.array([0.3, -0.3, 0.3, 0.3, -0.3, 0.5]))  # somewhere else than the episode's start
    with PtyServer(VirtualBus(arm)) as server:
        cal = arm.ideal_calibration().save(tmp_path / "follower.json")
        joints = replay(["--dataset", str(sim_episode), "--env", REAL, "--port", server.port, "--calibration", str(cal),
                         "--max-relative-target", "0.1"], tmp_path / "real")  # fmt: skip
    body = [v["rms"] for k, v in joints.items() if k != "gripper"]
    assert max(body) < 5.0, joints  # degrees; the virtual servos lag their goals a little
    assert not (tmp_path / "real" / "replay.mp4").exists()  # no video of a real arm
    assert not any(s.torque_on for s in arm.servos)  # the arm goes limp when the replay ends


def test_replay_refuses_what_does_not_fit(sim_episode: Path, tmp_path: Path, capsys) -> None:
    assert main(["replay", "--dataset", str(sim_episode), "--env", "twinarm/Aloha-TransferCube-v0",
                 "--out", str(tmp_path / "a")]) == 1  # fmt: skip
    assert "arm aloha has ['left_waist.pos'" in capsys.readouterr().err
    # Another robot type with the same joint names plays, with a note.
    assert main(["replay", "--dataset", str(sim_episode), "--env", "twinarm/Koch-PickCube-v0", "--no-video",
                 "--out", str(tmp_path / "k")]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "recorded on the so101 arm ('so_follower'), not koch (same joints: replaying anyway)" in printed
    assert "twinarm fit-dynamics" not in printed  # a sim recording: nothing real to fit the sim to
    # On real hardware another arm's motion is refused before the port is opened (the port here is no arm at all).
    assert main(["replay", "--dataset", str(sim_episode), "--env", "twinarm/Koch-PickCube-Real-v0", "--port",
                 "/dev/null", "--calibration", "c.json", "--out", str(tmp_path / "kr")]) == 1  # fmt: skip
    assert ("was recorded on the so101 arm ('so_follower'), not koch: the same joint names, other kinematics and "
            "ranges; replay it in sim") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replay", "--dataset", str(sim_episode), "--env", SIM, "--port", "/dev/null"])
    assert "only for a real arm" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replay", "--dataset", str(sim_episode), "--env", REAL])
    assert "name its --port and --calibration" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replay", "--dataset", str(sim_episode), "--env", REAL, "--port", "/dev/null", "--calibration", "c.json",
              "--camera", "front=0"])  # fmt: skip
    assert "--camera: replay compares the joints and opens no camera" in capsys.readouterr().err


def test_sim_reset_can_start_the_arm_at_given_joints() -> None:
    env = gym.make(SIM, obs_type="state")
    q = np.array([0.2, -0.4, 0.5, 0.3, -0.2, 0.6])
    obs, _ = env.reset(seed=0, options={"joints": q})
    np.testing.assert_allclose(obs["agent_pos"], q, atol=1e-5)
    with pytest.warns(UserWarning, match="outside its limits"):
        obs, _ = env.reset(seed=0, options={"joints": q + 10})  # clipped to the limits
    np.testing.assert_allclose(obs["agent_pos"], SO101.clip_action(q + 10), atol=1e-5)
    with pytest.raises(ValueError, match="must be 6 finite values"):
        env.reset(options={"joints": [0.0, 1.0]})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"qpos": q})
    env.close()


def test_replay_takes_each_episodes_recorded_seed_also_after_a_deletion(sim_episode: Path, tmp_path: Path) -> None:
    """Without --seed an episode replays with the seed meta/twinarm_record.json's sessions give it (here seed 8
    for episode 1), and `dataset delete-episodes` keeps it under the episode's new index (determinism audit F1)."""
    one = replay(["--dataset", str(sim_episode), "--env", SIM, "--episode", "1", "--no-video"], tmp_path / "one")
    assert all(v["max"] < 1e-3 for v in one.values()), one
    assert json.loads((tmp_path / "one" / "replay.json").read_text())["episodes"]["1"]["seed"] == SEED + 1
    cut = tmp_path / "cut"
    assert main(["dataset", "delete-episodes", str(sim_episode), str(cut), "--episodes", "0"]) == 0
    moved = replay(["--dataset", str(cut), "--env", SIM, "--no-video"], tmp_path / "moved")
    assert all(v["max"] < 1e-3 for v in moved.values()), moved  # episode 0 of the copy: seed 8's scene
    assert json.loads((tmp_path / "moved" / "replay.json").read_text())["episodes"]["0"]["seed"] == SEED + 1


def test_a_merge_says_each_episodes_seed_where_its_source_does(sim_episode: Path, tmp_path: Path) -> None:
    """`dataset merge` carries each source's recorded seeds under the merged indices (replay then reproduces an
    appended episode), and marks the episodes of a source that records none as of unknown seed."""
    from twinarm.datasets_io.layout import episode_seeds

    cut = tmp_path / "cut"  # episode 1 of sim_episode alone: seed 8
    assert main(["dataset", "delete-episodes", str(sim_episode), str(cut), "--episodes", "0"]) == 0
    merged = tmp_path / "merged"
    assert main(["dataset", "merge", str(cut), str(sim_episode), "--out", str(merged)]) == 0
    assert episode_seeds(merged) == {0: SEED + 1, 1: SEED, 2: SEED + 1}
    again = replay(["--dataset", str(merged), "--env", SIM, "--episode", "1", "--no-video"], tmp_path / "again")
    assert all(v["max"] < 1e-3 for v in again.values()), again
    blind = tmp_path / "blind"  # a copy whose file records no seeds (an older twinarm's)
    assert main(["dataset", "delete-episodes", str(sim_episode), str(blind), "--episodes", "1"]) == 0
    record_file = blind / "meta" / "twinarm_record.json"
    record_file.write_text(json.dumps({k: v for k, v in json.loads(record_file.read_text()).items() if k != "sessions"}))
    mixed = tmp_path / "mixed"
    assert main(["dataset", "merge", str(sim_episode), str(blind), "--out", str(mixed)]) == 0
    assert episode_seeds(mixed) == {0: SEED, 1: SEED + 1}
    assert json.loads((mixed / "meta" / "twinarm_record.json").read_text())["sessions"][-1] == {
        "seed": None, "episodes": 1, "first_episode_index": 2}
