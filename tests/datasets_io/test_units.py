"""LeRobot's -100..100 joint range <-> degrees: the factor against LeRobot's own motor-bus readings
(tests/fixtures/lerobot_units.json, tools/make_lerobot_units_fixture.py), and datasets converted by
`twinarm dataset convert-units` (values, stats, validator, LeRobot-written files)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from twinarm.arms import ALOHA, KOCH, SO101
from twinarm.cli.main import main
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.units import rescale_joints
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.writer import DatasetWriter
from twinarm.real.calibration import Calibration
from twinarm.real.errors import CalibrationError

sys.path.insert(0, str(Path(__file__).parent))

from ds_helpers import write_dataset  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "fixtures"
LEROBOT = json.loads((FIXTURES / "lerobot_units.json").read_text())
ARMS = {"so101": SO101, "koch": KOCH}


def _calibration(arm: str) -> Calibration:
    return Calibration.from_dict(LEROBOT[arm]["calibration"])


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_range_factor_turns_lerobots_range_readings_into_its_degree_readings(arm: str) -> None:
    """The same ticks read by LeRobot's bus in both modes: range x factor = degrees (body joints; Feetech negates
    drive-mode motors in range mode only, Dynamixel never), and the gripper is 0..100 in both."""
    spec = ARMS[arm]
    factors = _calibration(arm).degrees_per_range_unit(spec)
    rng, deg = np.asarray(LEROBOT[arm]["range"]), np.asarray(LEROBOT[arm]["degrees"])
    np.testing.assert_allclose(rng * factors, deg, rtol=1e-9, atol=1e-9)
    drive = np.array([LEROBOT[arm]["calibration"][n]["drive_mode"] for n in spec.joint_names], bool)
    assert (factors[drive & ~spec.gripper_mask] < 0).all() == (spec.motor_bus == "feetech")
    assert factors[spec.gripper_mask] == 1.0


def test_an_arm_lerobot_reports_in_radians_has_no_range_factor() -> None:
    with pytest.raises(CalibrationError, match="arm 'aloha': LeRobot reports it in radians"):
        _calibration("koch").degrees_per_range_unit(ALOHA)


def _koch_dataset(root: Path, values: np.ndarray) -> None:
    """A Koch recording of `values` (LeRobot units) as states, each frame's action the next frame's state (the
    last: the first's), two episodes."""
    feats = {k: {"dtype": "float32", "shape": [6], "names": KOCH.motor_feature_names} for k in ("observation.state", "action")}
    w = DatasetWriter.create(root, 30, feats, robot_type=KOCH.robot_type)
    actions = np.roll(values, -1, axis=0)
    for episode in np.array_split(np.arange(len(values)), 2):
        for t in episode:
            w.add_frame({"observation.state": values[t], "action": actions[t]}, task="Pick up the cube.")
        w.save_episode()
    w.finalize()


def _column(root: Path, key: str) -> np.ndarray:
    reader = LeRobotDatasetReader(root)
    return np.stack([reader[i][key].numpy() for i in range(len(reader))])


def test_convert_units_cli_gives_lerobots_degrees_and_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Koch range-mode recording (LeRobot's readings) becomes LeRobot's degree readings of the same ticks, with
    stats recomputed, and converts back; the arm comes from the dataset's robot_type."""
    cal = tmp_path / "koch_follower.json"
    cal.write_text(json.dumps(LEROBOT["koch"]["calibration"]))
    rng = np.asarray(LEROBOT["koch"]["range"], np.float32)
    deg = np.asarray(LEROBOT["koch"]["degrees"], np.float32)
    _koch_dataset(tmp_path / "range", rng)
    assert main(["dataset", "convert-units", str(tmp_path / "range"), str(tmp_path / "deg"), "--calibration", str(cal)]) == 0
    assert "koch joints to degrees" in capsys.readouterr().out
    np.testing.assert_allclose(_column(tmp_path / "deg", "observation.state"), deg, atol=2e-5)
    np.testing.assert_allclose(_column(tmp_path / "deg", "action"), np.roll(deg, -1, axis=0), atol=2e-5)
    stats = json.loads((tmp_path / "deg/meta/stats.json").read_text())
    np.testing.assert_allclose(stats["observation.state"]["mean"], deg.mean(0), atol=1e-4)
    np.testing.assert_allclose(stats["observation.state"]["max"], deg.max(0), atol=1e-4)
    assert stats["observation.state"]["count"] == [len(deg)]
    assert check_dataset(tmp_path / "deg") == []
    assert main(["dataset", "convert-units", str(tmp_path / "deg"), str(tmp_path / "back"), "--calibration", str(cal),
                 "--to", "range"]) == 0
    np.testing.assert_allclose(_column(tmp_path / "back", "observation.state"), rng, atol=1e-4)
    assert check_dataset(tmp_path / "back") == []


def test_rescaling_a_lerobot_written_dataset_keeps_it_readable_and_valid(tmp_path: Path) -> None:
    """LeRobot's own files (video + image features, several episodes): the joint features scale, their per-episode
    and global stats follow, and the videos and images are untouched."""
    src = FIXTURES / "lerobot_v3/video_h264"
    factors = np.array([2.0, -0.5, 1.0])
    out = rescale_joints(src, tmp_path / "scaled", factors)
    before, after = LeRobotDatasetReader(src), LeRobotDatasetReader(out)
    for i in (0, len(before) - 1):
        a, b = before[i], after[i]
        np.testing.assert_allclose(b["observation.state"].numpy(), a["observation.state"].numpy() * factors, rtol=1e-6)
        np.testing.assert_array_equal(b["observation.images.front"].numpy(), a["observation.images.front"].numpy())
        np.testing.assert_array_equal(b["observation.images.wrist"].numpy(), a["observation.images.wrist"].numpy())
    stats = json.loads((out / "meta/stats.json").read_text())["action"]
    actions = _column(out, "action")
    np.testing.assert_allclose(stats["min"], actions.min(0), rtol=1e-6)
    np.testing.assert_allclose(stats["std"], actions.std(0), rtol=1e-4)
    assert check_dataset(out) == []


def test_convert_units_refuses_a_mismatched_arm_and_an_existing_output(tmp_path: Path) -> None:
    write_dataset(tmp_path / "three_joints", [5])
    with pytest.raises(DatasetError, match="'observation.state' has shape \\[3\\], the arm has 6 joints"):
        rescale_joints(tmp_path / "three_joints", tmp_path / "out", np.ones(6))
    assert not (tmp_path / "out").exists()
    with pytest.raises(DatasetError, match=r"'observation.state' names its joints \['a.pos', 'b.pos', 'c.pos'\], the arm's"):
        rescale_joints(tmp_path / "three_joints", tmp_path / "out", np.ones(3), names=["x.pos", "y.pos", "z.pos"])
    shutil.copytree(tmp_path / "three_joints", tmp_path / "taken")
    with pytest.raises(DatasetError, match="exists"):
        rescale_joints(tmp_path / "three_joints", tmp_path / "taken", np.ones(3))


def test_a_conversion_that_fails_leaves_no_half_converted_copy(tmp_path: Path) -> None:
    write_dataset(tmp_path / "src", [5, 4])
    data = sorted((tmp_path / "src" / "data").glob("*/*.parquet"))[0]
    data.write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="corrupt parquet"):
        rescale_joints(tmp_path / "src", tmp_path / "out", np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_a_dataset_in_the_target_units_or_of_another_arm_is_not_converted(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Each was converted without a word before, scaling the joints twice (a wrist at 95 deg came out at -62.5)."""
    cal = tmp_path / "koch_follower.json"
    cal.write_text(json.dumps(LEROBOT["koch"]["calibration"]))
    rng = np.asarray(LEROBOT["koch"]["range"], np.float32)
    _koch_dataset(tmp_path / "range", rng)
    convert = ["dataset", "convert-units", "--calibration", str(cal)]
    assert main([*convert, str(tmp_path / "range"), str(tmp_path / "deg")]) == 0
    assert json.loads((tmp_path / "deg/meta/twinarm_units.json").read_text())["joints"] == "degrees"
    capsys.readouterr()
    assert main([*convert, str(tmp_path / "deg"), str(tmp_path / "again")]) == 1
    assert "its joints are in degrees already (meta/twinarm_units.json (written by convert-units))" in capsys.readouterr().err
    recorded = tmp_path / "recorded"  # a twinarm recording: it writes degrees
    shutil.copytree(tmp_path / "range", recorded)
    (recorded / "meta/twinarm_record.json").write_text(json.dumps({"command": "record"}))
    assert main([*convert, str(recorded), str(tmp_path / "r2")]) == 1
    assert "its joints are in degrees already (twinarm recorded it, in degrees)" in capsys.readouterr().err
    wide = tmp_path / "wide"  # a LeRobot recording in degrees: a body joint at 150
    _koch_dataset(wide, np.concatenate([rng, np.full((1, 6), 150.0, np.float32)]))
    assert main([*convert, str(wide), str(tmp_path / "w2")]) == 1
    assert "observation.state reaches 150.0 on a body joint, outside range mode's -100..100" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*convert, str(tmp_path / "range"), str(tmp_path / "s"), "--arm", "so101"])
    assert f"--arm so101: {tmp_path / 'range'} was recorded on koch ('koch_follower')" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deg", "koch_follower.json", "range", "recorded", "wide"]
