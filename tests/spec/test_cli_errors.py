"""Errors that already name what is at fault reach the user as one line, not a traceback (unless asked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinarm.cli.main import TRACEBACK_ENV, main
from twinarm.datasets_io.layout import DatasetError


def test_missing_dataset_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    missing = tmp_path / "no" / "such" / "dataset"
    argv = ["train", "--policy", "act", "--dataset", str(missing), "--output-dir", str(tmp_path / "run")]
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"twinarm train: error: {missing}: no such dataset directory\n")
    assert "Traceback" not in err and TRACEBACK_ENV in err
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(DatasetError, match="no such dataset directory"):
        main(argv)


def test_eval_names_what_policy_paths_it_takes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", "--policy", str(tmp_path / "nowhere")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"--policy: {tmp_path / 'nowhere'} does not exist" in err and "training run directory" in err


@pytest.mark.parametrize("argv", [
    ["record", "--root", "{tmp}/ds"],
    ["train", "--policy", "tdmpc", "--output-dir", "{tmp}/run"],
    ["eval", "--policy", "{tmp}/ckpt"],
    ["demo", "--out", "{tmp}/demo"],
    ["replay", "--dataset", "{tmp}/ds"],
    ["robustness", "--policy", "{tmp}/ckpt"],
    ["fit-dynamics", "--dataset", "{tmp}/ds"],
    ["fit-camera", "--image", "{tmp}/front.png"],
    ["teleop", "--keyboard", "tool"],
], ids=lambda argv: argv[0])  # fmt: skip
def test_every_env_flag_refuses_an_unknown_id_offering_the_nearest(argv: list[str], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A mistyped --env is a usage error before anything runs or is written, naming the ids it was near (the
    `twinarm/` prefix left off is one of those)."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    for typo, near in [("twinarm/SO101-Pick-v0", "twinarm/SO101-PickCube-v0 or twinarm/SO101-PickPlace-v0"),
                       ("Koch-Reach-Real-v0", "did you mean twinarm/Koch-Reach-Real-v0")]:  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main([*argv, "--env", typo])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --env: {typo!r} is not a twinarm env id; did you mean" in err and near in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "said"), [
    (["train", "--policy", "act", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["train", "--policy", "tdmpc", "--steps", "1k"], "argument --steps: expected a whole number, got '1k'"),
    (["eval", "--policy", "{tmp}/ckpt", "--n-envs", "0"], "argument --n-envs: must be at least 1, got 0"),
    (["record", "--episodes", "-3"], "argument --episodes: must be at least 1, got -3"),
    (["robustness", "--policy", "{tmp}/ckpt", "--image-size", "96", "0"], "argument --image-size: must be at least 1"),
    (["demo", "--width", "0"], "argument --width: must be at least 1, got 0"),
    (["train", "--policy", "act", "--dataset", "{tmp}/ds", "--set", "chunk_sizee=5"],
     "--set chunk_sizee: no such act field (did you mean chunk_size?)"),
    (["train", "--policy", "act", "--dataset", "{tmp}/ds", "--dataset", "{tmp}/ds"], "--dataset {tmp}/ds is given more than once"),
    (["train", "--policy", "diffusion", "--dataset", "{tmp}/ds", "--set", "horizon=long", "--set", "use_group_norm=1"],
     '--set horizon="long": expected a whole number; use_group_norm=1: expected true or false'),
    # A negative step limit drove every joint of a real arm to its lower limit; 0 left the follower still.
    (["teleop", "--max-relative-target", "-1"], "argument --max-relative-target: must be above 0, got -1"),
    (["eval", "--policy", "{tmp}/ckpt", "--max-relative-target", "0"], "argument --max-relative-target: must be above 0, got 0"),
    (["replay", "--dataset", "{tmp}/ds", "--max-relative-target", "nan"], "argument --max-relative-target: must be above 0, got nan"),
    (["replay", "--dataset", "{tmp}/ds", "--start-time", "0"], "argument --start-time: must be above 0, got 0"),
    (["teleop", "--duration", "-1"], "argument --duration: must be above 0, got -1"),
    (["dataset", "delete-episodes", "{tmp}/ds", "{tmp}/out", "--episodes", "0", "2-1"], "episode range '2-1' runs backwards"),
    # gymnasium refused a negative seed deep in reset with a traceback (bad-input audit B9)
    (["record", "--root", "{tmp}/ds", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["train", "--policy", "act", "--dataset", "{tmp}/ds", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["demo", "--out", "{tmp}/d", "--seed", "-3"], "argument --seed: must be at least 0, got -3"),
    (["train", "--policy", "act", "--dataset", "{tmp}/ds", "--set", "dim_model=-4", "--set", "n_heads=0"],
     "--set dim_model=-4: must be at least 1; n_heads=0: must be at least 1"),
    (["train", "--policy", "actt", "--dataset", "{tmp}/ds"], "train: error: --policy must be one of ['act', 'diffusion', 'tdmpc'], got 'actt'; did you mean act?"),
    (["robustness", "--policy", "{tmp}/ckpt", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["eval", "--policy", "{tmp}/ckpt", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["eval", "--policy", "{tmp}/ckpt", "--prefetch-at", "-1"], "argument --prefetch-at: must be at least 0, got -1"),
    # a bare line and exit code 1 (docs audit C11); a --config file may still give it (test_cli_config)
    (["eval"], "twinarm eval: error: the following arguments are required: --policy"),
], ids=lambda v: v[0] if isinstance(v, list) else "")  # fmt: skip
def test_bad_numbers_and_config_fields_are_usage_errors(argv: list[str], said: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A count of 0 (a batch size that once failed as a ZeroDivisionError mid-training) or a mistyped `--set`
    field (a TypeError from the config class) is refused before anything is written, naming the flag."""
    with pytest.raises(SystemExit) as info:
        main([a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--output-dir", str(tmp_path / "run")] * (argv[0] == "train"))
    assert info.value.code == 2
    assert said.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_eval_set_names_the_field_of_the_checkpoints_policy(capsys: pytest.CaptureFixture[str]) -> None:
    """`eval --set` on a LeRobot-written ACT checkpoint: the field checked against twinarm's ACT config."""
    ckpt = Path(__file__).resolve().parents[1] / "fixtures/lerobot_policies/act_state/pretrained_model"
    with pytest.raises(SystemExit) as info:
        main(["eval", "--policy", str(ckpt), "--set", "n_action_stepz=5"])
    assert info.value.code == 2
    assert "--set n_action_stepz: no such act field (did you mean n_action_steps" in capsys.readouterr().err


def test_setup_motors_names_a_missing_port_before_asking_for_a_motor(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["setup-motors", "--arm", "koch", "--port", str(tmp_path / "ttyNOPE")]) == 1
    out = capsys.readouterr()
    assert f"serial port '{tmp_path / 'ttyNOPE'}' cannot be opened: no such device" in out.err
    assert "Connect ONLY" not in out.out


def test_a_prompt_with_stdin_closed_ends_with_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run without a terminal (stdin at its end), a command that waits for Enter says so instead of EOFError."""
    import io

    (tmp_path / "ttyFAKE").touch()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(SystemExit, match=r"stdin closed while waiting for Enter \(\"Connect ONLY the 'gripper' motor"):
        main(["setup-motors", "--arm", "koch", "--port", str(tmp_path / "ttyFAKE")])


def test_export_lerobot_of_a_lerobot_checkpoint_says_it_is_one(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    ckpt = Path(__file__).resolve().parents[1] / "fixtures/lerobot_policies/act_state/pretrained_model"
    with pytest.raises(SystemExit) as info:
        main(["export-lerobot", "--policy", str(ckpt), "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    assert f"--policy {ckpt} is a LeRobot checkpoint already" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unknown_flag_is_named_by_its_command_with_the_nearest_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--policy", "act", "--stepz", "5", "--batch_size", "4"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: twinarm train ")  # the subcommand's usage, not the top-level one
    assert err.splitlines()[0] == "usage: twinarm train [options]   (every option: twinarm train --help)"
    assert len(err.splitlines()) == 2  # its forty options' full usage (twenty lines) buried the error line
    assert err.rstrip().endswith("twinarm train: error: unrecognized arguments: --stepz 5 --batch_size 4; --stepz: did "
                                 "you mean --steps?; --batch_size: did you mean --batch-size?")  # fmt: skip


def test_lerobot_style_flags_get_twinarm_s_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    """A LeRobot user types `--policy.path=P --env.task=T --policy.n_action_steps=20 --eval.n_episodes 5`: each got
    no hint (the dotted names are far from any flag); each now gets the twinarm flag, with its value."""
    with pytest.raises(SystemExit) as info:
        main(["eval", "--policy.path=/ckpt", "--env.task=SO101-PickCube-v0", "--policy.n_action_steps=20",
              "--eval.n_episodes", "5", "--rename_map", "{}"])  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err
    for said in ("--policy.path: LeRobot's flag; twinarm's is --policy /ckpt",
                 "--env.task: LeRobot's flag; twinarm's is --env twinarm/SO101-PickCube-v0",
                 "--policy.n_action_steps: LeRobot's flag; twinarm's is --set n_action_steps=20",
                 "--eval.n_episodes: LeRobot's flag; twinarm's is --episodes 5",
                 "--rename_map: LeRobot's flag; twinarm's is --rename-feature POLICY_KEY=ENV_KEY"):  # fmt: skip
        assert said in err, err
    with pytest.raises(SystemExit):
        main(["dataset", "info", "x", "--policy.path=/ckpt"])  # no --policy there: no twinarm flag to offer
    assert "LeRobot's flag" not in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["record", "--root", "{tmp}/rec", "--episodes", "1", "--crf", "99"], "crf 99: libx264 takes 0..51"),
    (["record", "--root", "{tmp}/rec", "--episodes", "1", "--codec", "av1", "--crf", "-5"], "crf -5: libsvtav1 takes 0..63"),
], ids=["h264", "av1"])  # fmt: skip
def test_a_crf_outside_the_encoders_range_is_one_line_before_anything_is_written(
    argv: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was the encoder's OverflowError traceback from avcodec_open2."""
    with pytest.raises(SystemExit) as info:  # record's errors end the process with their message
        main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert str(info.value.code).startswith(f"--{said}")  # not "--root crf ..." (bad-input audit B11)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["train", "--policy", "act", "--dataset", "{ds}", "--steps", "1", "--output-dir", "{file}/run"],
    ["eval", "--policy", "{ckpt}", "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1", "--out", "{file}"],
], ids=["train", "eval"])  # fmt: skip
def test_an_output_where_a_file_is_in_the_way_is_one_line(argv: list[str], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """`--out FILE`, `--output-dir FILE/run`: FileExistsError / NotADirectoryError tracebacks (audit B7, B8)."""
    from twinarm.arms import SO101
    from twinarm.datasets_io.writer import DatasetWriter

    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    (tmp_path / "file").write_text("in the way")
    ds = tmp_path / "ds"
    writer = DatasetWriter.create(ds, SO101.control_hz, SO101.lerobot_features(cameras=()), robot_type=SO101.robot_type)
    for _ in range(3):
        q = SO101.to_lerobot(SO101.home_pose).astype("float32")
        writer.add_frame({"observation.state": q, "action": q}, task="t")
    writer.save_episode()
    writer.finalize()
    ckpt = Path(__file__).resolve().parents[1] / "fixtures/lerobot_policies/act_state/pretrained_model"
    tiny = ["--set", "dim_model=16", "--set", "n_heads=2", "--set", "dim_feedforward=16", "--set", "chunk_size=2",
            "--set", "n_action_steps=2", "--threads", "1", "--no-progress"] if argv[0] == "train" else []  # fmt: skip
    said = {"{file}": str(tmp_path / "file"), "{ds}": str(ds), "{ckpt}": str(ckpt)}
    code = main([_fill(a, said) for a in argv] + tiny)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert f"error: {tmp_path / 'file'}" in err and "a file is in the way where a folder goes" in err


def _fill(arg: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        arg = arg.replace(k, v)
    return arg


def test_an_unwritable_output_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A read-only or full disk where the output goes (root writes anywhere here, so the mkdir is made to fail as
    it does on a read-only mount): one line naming the path, not an OSError traceback (bad-input audit B7)."""
    import errno
    import os

    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    target = tmp_path / "ro" / "demo"

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["demo", "--out", str(target), "--episodes", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"twinarm demo: error: {target}: cannot write here (Read-only file system)\n"), err


def test_demo_refuses_a_real_id_and_a_file_as_out_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """demo on a -Real id was a ValueError traceback from the real env; --out FILE a FileExistsError."""
    with pytest.raises(SystemExit):
        main(["demo", "--env", "twinarm/SO101-Reach-Real-v0", "--out", str(tmp_path / "d")])
    assert "is the real arm; demo rolls out the scripted expert in sim (twinarm/SO101-Reach-v0)" in capsys.readouterr().err
    (tmp_path / "f").write_text("")
    with pytest.raises(SystemExit):
        main(["demo", "--out", str(tmp_path / "f")])
    assert "--out " + str(tmp_path / "f") + " is a file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_dynamics_and_camera_pose_files_are_checked_against_the_arm_when_read(tmp_path: Path) -> None:
    """A joint or camera the arm lacks was a ValueError traceback when the env was made (after config.json was
    written), a directory an IsADirectoryError; the file was named twice in some messages."""
    import json

    (tmp_path / "dyn.json").write_text(json.dumps({"arm": "so101", "joints": {"elbow": {"kp": 10}}}))
    pose = {"pos": [0, 0, 1], "quat": [1, 0, 0, 0], "fovy": 45}
    (tmp_path / "cams.json").write_text(json.dumps({"arm": "so101", "cameras": {"top": pose}}))
    for flags, said in [
        (["--dynamics", str(tmp_path / "dyn.json")], "dyn.json names joints ['elbow'] that so101 lacks; its joints: "
                                                     "shoulder_pan, shoulder_lift"),
        (["--dynamics", str(tmp_path)], f"--dynamics {tmp_path} is a directory, not a `twinarm fit-dynamics` JSON"),
        (["--camera-poses", str(tmp_path / "cams.json")], "cams.json: the so101 sim has no camera top; its cameras: "
                                                          "front, wrist"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main(["record", "--root", str(tmp_path / "rec"), "--episodes", "1", *flags])
        assert said in str(info.value.code)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cams.json", "dyn.json"]


@pytest.mark.parametrize(("argv", "said"), [
    (["dem"], "twinarm: error: unknown command 'dem'; did you mean demo?"),
    (["dataset", "inof", "x"], "twinarm dataset: error: unknown command 'inof'; did you mean info?"),
    (["xyzzy"], "unknown command 'xyzzy'; the commands: envs, demo,"),
])  # fmt: skip
def test_a_mistyped_command_gets_the_nearest(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """argparse listed all nineteen commands and no nearest one."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and said in capsys.readouterr().err
