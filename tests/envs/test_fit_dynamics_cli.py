"""`twinarm fit-dynamics` end to end: a dataset recorded on a sim arm with known "real" parameters and latency
(`twinarm record --dynamics`), fitted, and the fit checked by `twinarm replay --dynamics` on an episode it did
not see."""

from __future__ import annotations

import json
from pathlib import Path

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
