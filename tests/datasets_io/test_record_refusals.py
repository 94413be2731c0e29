"""`twinarm record` / `teleop --record` refuse what they cannot append to before writing anything, saying how to
match it (the env, `--images`, `--height/--width`), and a refused or failed start leaves no file behind: no lock in
someone else's dataset, no empty dataset that blocks running the same command again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from twinarm.arms import SO101
from twinarm.cli.main import main
from twinarm.datasets_io.layout import LOCK_PATH
from twinarm.datasets_io.writer import DatasetWriter

PICK, REACH = "twinarm/SO101-PickCube-v0", "twinarm/SO101-Reach-v0"
SIZE = (32, 48)


def so101_dataset(root: Path, *, images: bool = False, size: tuple[int, int] = SIZE, env: str | None = PICK) -> None:
    """One two-frame episode with `twinarm record`'s SO101 features, as if `record --env env` wrote it."""
    feats = SO101.lerobot_features(cameras=SO101.resolve_cameras(image_size=size), use_videos=not images)
    w = DatasetWriter.create(root, SO101.control_hz, feats, robot_type=SO101.robot_type)
    for t in range(2):
        frame = {k: np.full(ft["shape"], t, np.uint8 if ft["dtype"] in ("video", "image") else np.float32)
                 for k, ft in feats.items()}  # fmt: skip
        w.add_frame(frame, task="Pick up the cube.")
    w.save_episode()
    w.finalize()
    if env is not None:
        (root / "meta/twinarm_record.json").write_text(json.dumps({"env": env, "next_seed": 7}))


def record(root: Path, *extra: str, env: str = PICK) -> list[str]:
    return ["record", "--env", env, "--root", str(root), "--episodes", "1", "--no-progress", "--height",
            str(SIZE[0]), "--width", str(SIZE[1]), *extra]  # fmt: skip


def test_resume_refuses_another_env_and_keeps_the_record_of_the_first(tmp_path: Path) -> None:
    root = tmp_path / "pick"
    so101_dataset(root)
    before = (root / "meta/twinarm_record.json").read_text()
    with pytest.raises(SystemExit) as exc:
        main(record(root, "--resume", env=REACH))  # same features: only the env tells them apart
    assert str(exc.value) == (f"{root} was recorded in {PICK} (meta/twinarm_record.json); record it with --env "
                              f"{PICK} or name a new --root")  # fmt: skip
    assert (root / "meta/twinarm_record.json").read_text() == before  # PickCube's next seed is kept
    assert json.loads((root / "meta/info.json").read_text())["total_episodes"] == 1


def test_a_file_as_root_is_refused_by_name(tmp_path: Path) -> None:
    file = tmp_path / "regular.txt"
    file.write_text("notes\n")
    for root in (file, file / "ds"):
        with pytest.raises(SystemExit) as exc:
            main(record(root))
        assert str(exc.value).startswith(f"--root {root} ")
        assert "give a folder (new, or empty) for the dataset" in str(exc.value)
    assert file.read_text() == "notes\n"


def test_resume_on_a_folder_that_is_no_dataset_says_what_resume_does(tmp_path: Path) -> None:
    root = tmp_path / "notds"
    root.mkdir()
    (root / "notes.txt").write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(record(root, "--resume"))
    assert str(exc.value) == (f"--root {root} is not a dataset (no meta/info.json): --resume appends episodes to a "
                              "dataset recorded before; to start a new one, drop --resume and name a new or empty "
                              "folder")  # fmt: skip
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    ("stored", "flags", "said"),
    [
        ({"images": True}, [], "it stores PNG images: add --images"),
        ({}, ["--images"], "it stores videos: drop --images"),
        ({"size": (24, 40)}, [], "its images are 24x40: pass --height 24 --width 40"),
    ],
)
def test_resume_says_which_flag_matches_the_dataset(tmp_path: Path, stored: dict, flags: list[str], said: str) -> None:
    root = tmp_path / "ds"
    so101_dataset(root, **stored)
    assert not (root / LOCK_PATH).exists()  # a finished dataset keeps no lock file, as one LeRobot wrote
    with pytest.raises(SystemExit) as exc:
        main(record(root, "--resume", *flags))
    assert str(exc.value) == f"{root}: cannot append, it differs from {PICK} at {SIZE}: {said}"
    assert not (root / LOCK_PATH).exists()  # refused before the dataset was locked


def test_teleop_that_fails_before_its_first_episode_leaves_no_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from twinarm.real.calibration import Calibration, MotorCalibration

    monkeypatch.chdir(tmp_path)
    Calibration({j.name: MotorCalibration(j.motor_id, 1, 0, 1000, 3000) for j in SO101.joints}).save("cal.json")
    teleop = ["teleop", "--env", PICK, "--leader-port", str(tmp_path / "no-leader"), "--leader-calibration",
              "cal.json", "--image-size", *map(str, SIZE), "--episodes", "1"]  # fmt: skip
    for fresh in (True, False):  # a new folder, and an empty one that was there before
        if not fresh:
            Path("NEW").mkdir()
        with pytest.raises(SystemExit, match="leader arm: serial port .*no-leader.* cannot be opened"):
            main([*teleop, "--record", "NEW"])
        assert "no episode was saved" in capsys.readouterr().out
        assert Path("NEW").exists() == (not fresh) and not any(Path(".").glob("NEW/*"))
    Path("regular.txt").write_text("")
    with pytest.raises(SystemExit, match="--record regular.txt is a file; give a folder"):
        main([*teleop, "--record", "regular.txt"])
    so101_dataset(Path("reach"), env=REACH)
    with pytest.raises(SystemExit, match=f"reach was recorded in {REACH} .* name a new --record$"):
        main([*teleop, "--record", "reach", "--resume"])  # teleop in PickCube: checked before any device opens


def test_real_and_sim_demonstrations_are_not_appended_to_each_other(tmp_path: Path) -> None:
    """What meta/twinarm_record.json says recorded a dataset (a sim env, or a real arm's port) decides: another
    source appends into a dataset of its own (train co-trains on both), a sim env of another task is refused."""
    from twinarm.cli.record_cmd import check_same_env
    from twinarm.datasets_io.layout import RECORD_PATH

    sim, real = tmp_path / "sim", tmp_path / "real"
    for root, options in ((sim, {"env": "twinarm/SO101-PickCube-v0"}), (real, {"env": None, "port": "/dev/ttyACM0"})):
        (root / "meta").mkdir(parents=True)
        (root / RECORD_PATH).write_text(json.dumps(options))
    with pytest.raises(SystemExit, match=r"holds demonstrations recorded in sim \(twinarm/SO101-PickCube-v0, .*\); for "
                       r"the real arm's, record into a new --record and train on both"):  # fmt: skip
        check_same_env(sim, None, "--record")
    with pytest.raises(SystemExit, match="holds demonstrations recorded on the real arm"):
        check_same_env(real, "twinarm/SO101-PickCube-v0")
    with pytest.raises(SystemExit, match="was recorded in twinarm/SO101-PickCube-v0"):
        check_same_env(sim, "twinarm/SO101-Reach-v0")
    check_same_env(sim, "twinarm/SO101-PickCube-v0")  # the same source appends
    check_same_env(real, None, "--record")
