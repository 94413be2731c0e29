"""`twinarm fit-dynamics` end to end: a dataset recorded on a sim arm with known "real" parameters and latency
(`twinarm record --dynamics`), fitted, and the fit checked by `twinarm replay --dynamics` on an episode it did
not see."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import twinarm  # noqa: F401
from twinarm.arms import get_arm
from twinarm.cli.main import main
from twinarm.envs.dynamics import PARAMS, ArmDynamics, read_dynamics
from twinarm.envs.physics import ArmPhysics

ENV = "twinarm/SO101-Reach-v0"
SO101 = get_arm("so101")
NOMINAL = read_dynamics(ArmPhysics.from_arm(SO101).model, SO101)
FACTORS = {"kp": 0.7, "damping": 1.8, "armature": 1.5, "frictionloss": 2.5}
TRUTH = ArmDynamics("so101", {n: {p: v[p] * FACTORS.get(p, 1.0) for p in PARAMS} for n, v in NOMINAL.joints.items()}, 1)
JOINTS = ["shoulder_lift", "elbow_flex"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three scripted Reach episodes on the "real" arm, and a start file that knows its armature and friction."""
    tmp = tmp_path_factory.mktemp("fit")
    truth = TRUTH.save(tmp / "truth.json")
    root = tmp / "real"
    assert main(["record", "--env", ENV, "--root", str(root), "--episodes", "3", "--height", "32", "--width", "32",
                 "--dynamics", str(truth), "--no-progress"]) == 0  # fmt: skip
    start = {n: {**v, "kp": NOMINAL.joints[n]["kp"], "damping": NOMINAL.joints[n]["damping"]} for n, v in TRUTH.joints.items()}
    return root, ArmDynamics("so101", start).save(tmp / "start.json")


def test_fit_then_replay_on_an_unseen_episode(recorded: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    root, start = recorded
    out = tmp_path / "fit"
    assert main(["fit-dynamics", "--dataset", str(root), "--env", ENV, "--episode", "0-1", "--joints", *JOINTS,
                 "--params", "kp", "damping", "--start", str(start), "--max-delay", "1", "--max-iter", "15",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "latency: 1 control step(s) (33 ms)" in printed and "(not fitted)" in printed
    assert f"note: {root} was recorded in sim ({ENV}): the fit finds the parameters its sim arm ran with" in printed
    fitted = json.loads((out / "dynamics.json").read_text())
    assert fitted["arm"] == "so101" and fitted["action_delay_steps"] == 1
    for j in JOINTS:
        for p in ("kp", "damping"):
            assert fitted["joints"][j][p] == pytest.approx(TRUTH.joints[j][p], rel=0.03), (j, p)
    assert fitted["fit"]["episodes"] == [0, 1] and fitted["fit"]["params"] == ["kp", "damping"]
    assert fitted["fit"]["rms_after"]["elbow_flex"] < 0.05 * fitted["fit"]["rms_before"]["elbow_flex"]
    assert (out / "fit.png").stat().st_size > 10_000 and (out / "config.json").exists()

    rms = {}
    for name, extra in (("start", ["--dynamics", str(start)]), ("fitted", ["--dynamics", str(out / "dynamics.json")])):
        assert main(["replay", "--dataset", str(root), "--episode", "2", "--env", ENV, "--seed", "0", "--no-video",
                     "--out", str(tmp_path / name), *extra]) == 0  # fmt: skip
        rms[name] = json.loads((tmp_path / name / "replay.json").read_text())["joints"]
    for j in JOINTS:
        assert rms["fitted"][j]["rms"] < 0.1 * rms["start"][j]["rms"], (j, rms)  # the unfitted joints still differ


def test_bad_arguments_name_what_is_wrong(recorded: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    root, start = recorded
    base = ["fit-dynamics", "--dataset", str(root), "--env", ENV, "--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit):
        main([*base, "--joints", "elbow"])
    assert "--joints elbow: so101's joints are shoulder_pan" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--episode", "5"])
    err = capsys.readouterr().err
    assert "--episode [5]:" in err and "has episodes 0-2" in err
    koch = tmp_path / "koch.json"
    ArmDynamics("koch", {}).save(koch)
    with pytest.raises(SystemExit, match="fitted on arm 'koch', not 'so101'"):
        main(["replay", "--dataset", str(root), "--env", ENV, "--no-video", "--out", str(tmp_path / "r"),
              "--dynamics", str(koch)])  # fmt: skip
    with pytest.raises(SystemExit):
        main(["replay", "--dataset", str(root), "--env", "twinarm/SO101-Reach-Real-v0", "--port", "/dev/null",
              "--calibration", str(start), "--dynamics", str(start)])  # fmt: skip
    assert "--dynamics sets the sim arm's parameters" in capsys.readouterr().err


def _slow_loop_copy(root: Path, out: Path, hz: float) -> Path:
    """The recording's actions replayed on the "real" arm at `hz` instead of its 30 fps (a loop that overran),
    written as a dataset that still says 30 fps."""
    from twinarm.cli.replay_cmd import load_episode
    from twinarm.datasets_io.writer import DatasetWriter
    from twinarm.envs.sysid import Replayer, Trajectory

    writer = DatasetWriter.create(out, SO101.control_hz, SO101.lerobot_features(cameras=()), robot_type=SO101.robot_type)
    for e in range(3):
        state, action, _ = load_episode(str(root), e, SO101)
        slow = Replayer(SO101, [Trajectory(state, action)], TRUTH, period_scale=SO101.control_hz / hz).replay_one()
        for s, a in zip(np.concatenate([state[:1], slow]), action, strict=True):
            writer.add_frame({"observation.state": SO101.to_lerobot(s).astype(np.float32),
                              "action": SO101.to_lerobot(a).astype(np.float32)}, task="Move the gripper to the target.")  # fmt: skip
        writer.save_episode()
    writer.finalize()
    return out


def test_fit_rate_finds_a_loop_that_ran_slow(recorded: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    """Through the CLI: a recording whose loop ran at 27 Hz while it says 30 fps (fitting two joints' kp and
    damping, every other value known)."""
    root, _ = recorded
    slow = _slow_loop_copy(root, tmp_path / "slow", hz=27.0)
    start = ArmDynamics("so101", {n: {**v, **({p: NOMINAL.joints[n][p] for p in ("kp", "damping")} if n in JOINTS else {})}
                                  for n, v in TRUTH.joints.items()}).save(tmp_path / "start.json")  # fmt: skip
    base = ["fit-dynamics", "--dataset", str(slow), "--env", ENV, "--episode", "0-1", "--joints", *JOINTS,
            "--params", "kp", "damping", "--start", str(start), "--max-delay", "1", "--max-iter", "15"]  # fmt: skip
    assert main([*base, "--fit-rate", "--out", str(tmp_path / "timed")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"control rate: recorded as 30 fps, the replays match best at 2[67]\.\d\d Hz: the recording loop "
                     r"ran 11 % slow", printed), printed  # fmt: skip
    fit = json.loads((tmp_path / "timed" / "dynamics.json").read_text())
    assert fit["fit"]["control_hz_recorded"] == 30 and fit["fit"]["control_hz_fitted"] == pytest.approx(27, abs=0.05)
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert "control rate" not in capsys.readouterr().out
    plain = json.loads((tmp_path / "plain" / "dynamics.json").read_text())
    assert "control_hz_fitted" not in plain["fit"]
    for j in JOINTS:  # the rate's fit keeps the servos' values; without it they bend to absorb the timing
        assert fit["joints"][j]["kp"] == pytest.approx(TRUTH.joints[j]["kp"], rel=0.01)
        assert fit["fit"]["rms_after"][j] < 0.1 * plain["fit"]["rms_after"][j]

    # replay holds each action as long as the fitted loop did, on an episode the fit did not see; --rate overrides
    rms = {}
    for name, extra in (("fitted rate", []), ("fps", ["--rate", "30"])):
        assert main(["replay", "--dataset", str(slow), "--episode", "2", "--env", ENV, "--no-video", "--out",
                     str(tmp_path / name), "--dynamics", str(tmp_path / "timed" / "dynamics.json"), *extra]) == 0  # fmt: skip
        replay = json.loads((tmp_path / name / "replay.json").read_text())
        rms[name] = replay["joints"]
        assert replay["rate_hz"] == pytest.approx(fit["fit"]["control_hz_fitted"] if not extra else 30)
    assert "replaying at 27.0" in capsys.readouterr().out
    for j in JOINTS:
        assert rms["fitted rate"][j]["rms"] < 0.2 * rms["fps"][j]["rms"], (j, rms)
    # the fitted rate belongs to the slow recording, not to another one of the same arm
    assert main(["replay", "--dataset", str(root), "--episode", "2", "--env", ENV, "--no-video", "--out",
                 str(tmp_path / "other"), "--dynamics", str(tmp_path / "timed" / "dynamics.json")]) == 0  # fmt: skip
    assert f"belongs to {slow}, not {root}: replaying at the dataset's 30 fps" in capsys.readouterr().out
    assert json.loads((tmp_path / "other" / "replay.json").read_text())["rate_hz"] == 30
    with pytest.raises(SystemExit):
        main(["replay", "--dataset", str(root), "--env", ENV, "--no-video", "--rate", "0", "--out", str(tmp_path / "r")])
    assert "--rate 0: give the loop's rate in Hz" in capsys.readouterr().err


def test_rate_note_says_what_the_fitted_rate_means() -> None:
    from twinarm.cli.fit_dynamics_cmd import rate_note

    assert rate_note(30, 1.005).endswith("29.85 Hz (the loop kept its rate)")
    assert "ran 20 % slow (overruns" in rate_note(30, 1.2)
    assert "faster than its fps says" in rate_note(30, 0.9)


def test_a_fit_needs_this_arms_recording_and_enough_motion(recorded: tuple[Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Another arm's recording (a Koch's servos fitted to an SO-101's motion) and a few frames (20 parameters fitted
    to 15 residuals exactly, RMS 0.000) were fitted and written; both are refused before anything is written."""
    from twinarm.cli import fit_dynamics_cmd

    root, _ = recorded
    koch = ["fit-dynamics", "--dataset", str(root), "--env", "twinarm/Koch-Reach-v0", "--out", str(tmp_path / "k")]
    assert main(koch) == 1
    assert "was recorded on the so101 arm ('so_follower'), not koch" in capsys.readouterr().err
    monkeypatch.setattr(fit_dynamics_cmd, "MOVES_PER_PARAM", 10_000)
    with pytest.raises(SystemExit):
        main(["fit-dynamics", "--dataset", str(root), "--env", ENV, "--episode", "0", "--params", "kp", "damping",
              "--out", str(tmp_path / "few")])  # fmt: skip
    assert "control steps; fitting 2 parameter(s) per joint needs at least 20000" in capsys.readouterr().err
    assert not (tmp_path / "k").exists() and not (tmp_path / "few").exists()
