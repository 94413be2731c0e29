"""A sim run and a real run of one command get their own default folders, and a run that writes into a folder
leaves no file of an earlier run beside its own: replay's real run wrote replay.json and replay.png next to the sim
run's replay.mp4, and eval always wrote to outputs/eval whichever env it ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from real_helpers import bounded

from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus

pytestmark = pytest.mark.filterwarnings("ignore::twinarm.real.env.LoopOverrunWarning")

SIM, REAL = "twinarm/SO101-PickCube-v0", "twinarm/SO101-PickCube-Real-v0"


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scripted PickCube episode, 48x64 cameras."""
    root = tmp_path_factory.mktemp("folders") / "pick"
    assert main(["record", "--env", SIM, "--root", str(root), "--episodes", "1", "--max-attempts", "2", "--seed", "7",
                 "--height", "48", "--width", "64", "--no-progress"]) == 0  # fmt: skip
    return root


def test_replay_in_sim_and_on_the_arm_default_to_their_own_folders(episode: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert bounded(lambda: main(["replay", "--dataset", str(episode), "--env", SIM]), timeout_s=120) == 0
    arm = VirtualArm(SO101, step_mode="lockstep")
    with PtyServer(VirtualBus(arm)) as server:
        cal = arm.ideal_calibration().save(tmp_path / "follower.json")
        assert bounded(lambda: main(["replay", "--dataset", str(episode), "--env", REAL, "--port", server.port,
                                     "--calibration", str(cal)]), timeout_s=120) == 0  # fmt: skip
    sim, real = tmp_path / "outputs/replay/pick_ep0", tmp_path / "outputs/replay/pick_ep0_real"
    assert {p.name for p in sim.iterdir()} >= {"replay.json", "replay.png", "replay.mp4"}
    assert {p.name for p in real.iterdir()} >= {"replay.json", "replay.png"}
    assert not (real / "replay.mp4").exists()


def test_replay_removes_what_an_earlier_replay_left_in_its_folder(episode: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gap"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # not a replay's: left alone
    (out / "replay_ep3.png").write_bytes(b"old")
    assert bounded(lambda: main(["replay", "--dataset", str(episode), "--env", SIM, "--out", str(out)]), 120) == 0
    assert (out / "replay.mp4").exists()
    assert bounded(lambda: main(["replay", "--dataset", str(episode), "--env", SIM, "--out", str(out),
                                 "--no-video"]), 120) == 0  # fmt: skip
    assert {p.name for p in out.iterdir()} == {"notes.txt", "replay.json", "replay.png", "config.json"}
    assert f"{out}: removed replay.json, replay.mp4, replay.png of an earlier replay" in capsys.readouterr().out


def test_eval_defaults_to_a_folder_per_env_and_drops_an_earlier_runs_videos(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_act_checkpoint) -> None:  # noqa: ANN001
    """eval wrote to outputs/eval for every env, so a real run overwrote the sim run's results (and videos of an
    earlier run with more --videos stayed beside the new eval_info.json)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "outputs/eval/SO101-PickCube-v0"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "eval_episode_3.mp4").write_bytes(b"an earlier run's")
    argv = ["eval", "--policy", str(tiny_act_checkpoint()), "--env", SIM, "--episodes", "1", "--max-steps", "3",
            "--videos", "1", "--threads", "1", "--device", "cpu"]  # fmt: skip
    assert bounded(lambda: main(argv), timeout_s=120) == 0
    assert (out / "eval_info.json").exists() and not (tmp_path / "outputs/eval/eval_info.json").exists()
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["eval_episode_0.mp4"]
