"""A calibration file in another arm's (or the leader's) folder is refused by name before anything is written to
the motors: a Koch took an SO-101's file (same joint names and ids) and wrote its offsets, a wrong zero."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinarm.arms import KOCH, SO100, SO101
from twinarm.real.calibration_owner import check_calibration_owner
from twinarm.real.env import RealArmEnv
from twinarm.real.errors import CalibrationError
from twinarm.real.virtual import PtyServer, VirtualArm, VirtualBus


def _save(arm: VirtualArm, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return arm.ideal_calibration().save(path)


def test_a_koch_refuses_an_so101_file_from_its_folder_and_the_motors_keep_theirs(tmp_path: Path) -> None:
    koch = VirtualArm(KOCH)
    so101_file = _save(VirtualArm(SO101), tmp_path / "calibration" / "robots" / "so101_follower" / "mine.json")
    with PtyServer(VirtualBus(koch)) as server:
        offsets = [s.get("Homing_Offset") for s in koch.servos]
        with pytest.raises(CalibrationError, match=r"so101_follower/.*the so101 follower.*given for the koch follower"):
            RealArmEnv(arm=KOCH, port=server.port, calibration=str(so101_file), cameras={}, handle_sigint=False)
        assert [s.get("Homing_Offset") for s in koch.servos] == offsets
        own = _save(koch, tmp_path / "twinarm" / "koch" / "default.json")
        env = RealArmEnv(arm=KOCH, port=server.port, calibration=str(own), cameras={}, handle_sigint=False)
        env.close()


@pytest.mark.parametrize(("folder", "arm", "leader", "refused"), [
    ("so101_leader", SO101, False, True),      # the leader's file given for the follower
    ("so101_follower", SO101, True, True),     # and the other way round
    ("koch", SO101, False, True),              # twinarm's own folder of another arm
    ("so101", SO101, False, False),
    ("so101_follower", SO101, False, False),   # LeRobot's folder of the same arm
    ("so101_leader", SO101, True, False),
    ("aloha_left_leader", SO101, True, True),
    ("my_arms", SO101, False, False),          # a folder that names no arm: taken as it is
    ("so_follower", KOCH, False, True),        # LeRobot 0.6.1's folder of both SO followers
    ("so_follower", SO100, False, False),
    ("so_leader", SO101, False, True),         # ... and of both SO leaders (was taken by a follower)
    ("so_leader", SO101, True, False),
])
def test_the_folder_decides_only_when_it_names_an_arm(folder: str, arm, leader: bool, refused: bool) -> None:  # noqa: ANN001
    path = Path("/somewhere") / folder / "default.json"
    if refused:
        with pytest.raises(CalibrationError, match="lies in the folder of"):
            check_calibration_owner(path, arm, leader=leader)
    else:
        check_calibration_owner(path, arm, leader=leader)


def test_the_cli_reads_leader_and_follower_files_through_the_same_check(tmp_path: Path) -> None:
    """`part_calibration` is what teleop, record, replay and eval read `--calibration` / `--leader-calibration`
    with: the follower's file given as the leader's (or the other way round) is refused there too."""
    from twinarm.real.teleop import part_calibration

    follower_file = _save(VirtualArm(SO101), tmp_path / "so101" / "default.json")
    leader_file = _save(VirtualArm(SO101), tmp_path / "so101_leader" / "default.json")
    assert part_calibration(follower_file, SO101).motors.keys() == part_calibration(leader_file, SO101,
                                                                                    leader=True).motors.keys()
    with pytest.raises(CalibrationError, match="the so101 follower's calibrations"):
        part_calibration(follower_file, SO101, leader=True)
    with pytest.raises(CalibrationError, match="the so101 leader's calibrations"):
        part_calibration(leader_file, SO101)
