"""Which arm recorded a dataset: twinarm's own recordings name it (meta/twinarm_record.json); a LeRobot recording
says only its `robot_type`, and LeRobot writes one `so_follower` for the SO-100 and the SO-101."""

from __future__ import annotations

import warnings
from pathlib import Path

from twinarm.arms import ARMS, arms_for_robot_type
from twinarm.datasets_io.layout import INFO_PATH, load_json, recording_options
from twinarm.spec import ArmSpec


def twinarm_arm(root: str | Path) -> ArmSpec | None:
    """The arm twinarm recorded the dataset at `root` on (its sim env's, or `teleop --arm`'s), None for a dataset
    twinarm did not record."""
    from twinarm.registration import UnknownEnvId, entry_for

    options = recording_options(root)
    env = options.get("env")
    if isinstance(env, str):
        try:
            return ARMS[entry_for(env).arm]
        except UnknownEnvId:
            pass
    arm = options.get("arm")
    return ARMS.get(arm) if isinstance(arm, str) else None


def recorded_arms(root: str | Path, robot_type: str | None = None) -> tuple[ArmSpec, ...]:
    """The arms the dataset at `root` may have been recorded on: twinarm's record of it, else every arm its
    `robot_type` (read from meta/info.json unless given) may be. Empty for another robot."""
    own = twinarm_arm(root)
    if own is not None:
        return (own,)
    if robot_type is None:
        robot_type = load_json(Path(root) / INFO_PATH).get("robot_type")
    return arms_for_robot_type(robot_type)


class LeRobotRangeUnitsWarning(UserWarning):
    """A LeRobot recording of an arm LeRobot records in its -100..100 range by default, nothing saying its units."""


def check_range_units(root: str | Path, recorded: tuple[ArmSpec, ...]) -> None:
    """twinarm reads a LeRobot dataset's body joints as degrees. DatasetError for one known to be in LeRobot's
    -100..100 range; a LeRobotRangeUnitsWarning for one that may be: a LeRobot recording (nothing in it says its
    units) of an arm whose LeRobot follower records the range by default (the Koch), unless its values leave
    -100..100."""
    from twinarm.datasets_io.layout import DatasetError
    from twinarm.datasets_io.units import known_units, reach_past_range

    convert = (f"`twinarm dataset convert-units {root} OUT --calibration FILE` (FILE: the recording arm's LeRobot "
               "calibration)")
    known = known_units(root)
    if known is not None:
        if known[0] == "range":
            raise DatasetError(f"{root}: its joints are in LeRobot's -100..100 range ({known[1]}), twinarm reads "
                               f"degrees: convert it with {convert}")
        return
    ranged = [a for a in recorded if a.lerobot_default_mode == "range"]
    if not ranged or reach_past_range(root, ~ranged[0].gripper_mask) is not None:
        return
    warnings.warn(
        f"{root} is a LeRobot recording of the {ranged[0].display_name}, whose joints LeRobot records in its "
        "-100..100 range unless use_degrees=true (and always with its Koch leader); twinarm reads them as degrees. "
        f"Range data: convert it first with {convert}. Degrees data: say so once with `twinarm dataset units "
        f"{root} --set degrees`.", LeRobotRangeUnitsWarning, stacklevel=2)
