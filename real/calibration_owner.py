"""Whose calibration a file is, read from the folder it lies in: twinarm's `calibration/<arm>[_leader]/` and
LeRobot's `calibration/robots/<robot_type>/` or `teleoperators/<arm>_leader/` (0.6.1: `so_follower/` and
`so_leader/` for both SO arms; the older `so101_follower/` and the like too).

The file itself names no arm (LeRobot's format), and the two arms' files look alike (same joint names and ids),
so a Koch given an SO-101's file, or a follower given its leader's, took it and wrote it into its motors: a wrong
zero on every joint. A file in another arm's folder is refused; one anywhere else is taken as it is.
"""

from __future__ import annotations

from pathlib import Path

from twinarm.arms import ARMS
from twinarm.real.errors import CalibrationError
from twinarm.real.multi_bus import bus_groups
from twinarm.spec import ArmSpec


def _names(arm: ArmSpec, group: str, leader: bool) -> set[str]:
    """The folder names the files of `arm` (its `group` arm, for ALOHA) as follower or leader lie in."""
    base = f"{arm.name}_{group}" if group else arm.name
    names = {base, arm.robot_type, *arm.older_robot_types} if not group else {base}
    if leader:
        names = {f"{n.removesuffix('_follower')}_leader" for n in names}
    return names


def _who(arm: ArmSpec, group: str, leader: bool) -> str:
    """An arm and role in words: "the koch leader", "the aloha left follower"."""
    return f"the {arm.name}{' ' + group if group else ''} {'leader' if leader else 'follower'}"


def _owners() -> dict[str, list[str]]:
    """Every known calibration folder name -> whose files it holds, in words ("the koch leader"; LeRobot's
    `so_follower/` holds both SO arms')."""
    out: dict[str, list[str]] = {}
    for arm in ARMS.values():
        for group in bus_groups(arm):
            for leader in (False, True):
                for name in _names(arm, group, leader):
                    out.setdefault(name, []).append(_who(arm, group, leader))
    return out


def check_calibration_owner(path: str | Path, arm: ArmSpec, group: str = "", leader: bool = False) -> None:
    """Refuse a calibration file that lies in another arm's (or the other role's) folder, naming both."""
    folder = Path(path).expanduser().parent.name
    owner = _owners().get(folder)
    if owner is None or folder in _names(arm, group, leader):
        return
    me = _who(arm, group, leader)
    raise CalibrationError(
        f"calibration {path} lies in the folder of {' or '.join(owner)}'s calibrations ({folder}/), but it is given "
        f"for {me}: "
        f"the two arms' files look alike and a wrong one sets a wrong zero on every joint; give {me}'s own file "
        f"or calibrate it (`twinarm calibrate --arm {arm.name}{' --leader' if leader else ''}`), or move the "
        "file out of that folder if it really is this arm's"
    )
