"""`--config FILE` values go through the option's own type, choices, nargs and flag handling, as on the command
line: a bad value is a usage error naming the file and key (not a traceback, nor a string "false" taken as true),
the keys may be the long flags or a run's saved config.json, and the saved copy of a run's options reproduces it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from twinarm.cli.config import resolved_config
from twinarm.cli.main import _apply_config_file, build_parser, main


def parse(argv: list[str]) -> argparse.Namespace:
    """argv parsed as `main` parses it (config file applied first), without running the command."""
    parser = build_parser()
    _apply_config_file(parser, argv)
    args, extra = parser.parse_known_args(argv)
    assert not extra
    return args


def write(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    return cfg


@pytest.mark.parametrize(
    ("command", "text", "said"),
    [
        ("record", 'only_success: "false"\n',
         "only_success: expected true or false (a YAML boolean, not a string or number), got 'false'"),
        ("train", "no_progress: 1\n", "no_progress: expected true or false"),
        ("demo", "episodes: [1, 2]\n", "episodes: expected one value, got a list [1, 2]"),
        ("train", "steps: 3.5\n", "steps: expected a whole number, got '3.5'"),
        ("demo", "episodes: 0\n", "episodes: must be at least 1, got 0"),
        ("robustness", "episodes: 0\n", "episodes: must be at least 1, got 0"),
        ("record", "obs_type: sttate\n", "obs_type: invalid choice: 'sttate'"),
        ("robustness", "sweep: latancy\n", "sweep: invalid choice: 'latancy'"),
        ("robustness", "only: [latency-1, latancy]\n", "only: invalid choice: 'latancy'"),
        ("eval", "image_size: [64]\n", "image_size: expected 2 values, got 1"),
        ("train", "set: [dim_model]\n", "set: expected FIELD=VALUE, got 'dim_model'"),
        ("train", "set: [a=1]\npolicy_overrides: [b=2]\n", "policy_overrides: set gives --set too"),
        ("robustness", "only: [latency-1]\nsweep: latency\n",
         "sweep: not allowed with only (argument --sweep: not allowed with argument --only)"),
        ("demo", "command: eval\n", "command: the file is for `twinarm eval`, not `twinarm demo`"),
        ("demo", "config: other.yaml\n", "config: a config file cannot name another one"),
    ],
)  # fmt: skip
def test_a_bad_value_is_the_command_lines_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, text: str, said: str
) -> None:
    cfg = write(tmp_path, text)
    with pytest.raises(SystemExit) as info:
        main([command, "--config", str(cfg)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert f"usage: twinarm {command}" in err
    assert f"twinarm {command}: error: config file {cfg}: {said}" in err, err


def test_keys_may_be_the_long_flags(tmp_path: Path) -> None:
    """`no_progress: true` is --no-progress (dest `progress`), `set:` is --set (as a mapping, pairs or texts)."""
    cfg = write(tmp_path, "no_progress: true\nset: {dim_model: 32, chunk_size: 10, name: abc, norm: [1, 2]}\n"
                          "steps: 5\nema: false\n")  # fmt: skip
    args = parse(["train", "--config", str(cfg), "--set", "n_heads=2"])
    assert args.progress is False and args.ema is False and args.steps == 5
    assert args.policy_overrides == [("dim_model", 32), ("chunk_size", 10), ("name", "abc"), ("norm", [1, 2]),
                                     ("n_heads", 2)]  # fmt: skip
    cfg = write(tmp_path, "set: [dim_model=32, [chunk_size, 10]]\nno_ema: true\n")
    args = parse(["train", "--config", str(cfg)])
    assert args.policy_overrides == [("dim_model", 32), ("chunk_size", 10)] and args.ema is False


def test_lists_scalars_and_mappings_take_the_options_shape(tmp_path: Path) -> None:
    cfg = write(tmp_path, "policy: p\nenv: twinarm/SO101-Reach-v0\nonly: latency-1\nrename_feature: {a: b}\n"
                          "image_size: [48, 64]\nno_yield_cores: true\n")  # fmt: skip
    args = parse(["robustness", "--config", str(cfg)])
    assert args.only == ["latency-1"] and args.image_size == [48, 64]
    assert args.rename_features == [("observation.images.a", "observation.images.b")]  # short names, as eval's
    assert args.yield_cores is False
    cfg = write(tmp_path, "randomization: {obs_noise_std: 0.01}\nseed: null\nepisodes: 2\n")
    args = parse(["record", "--config", str(cfg), "--root", str(tmp_path / "r")])
    assert args.randomization == {"obs_noise_std": 0.01} and args.seed is None and args.episodes == 2
    cfg = write(tmp_path, "board_center: [0.1, 0.2]\nboard_yaw: 90\nimage: a.png\n")
    args = parse(["fit-camera", "--config", str(cfg)])
    assert args.board_center == [[0.1, 0.2]] and args.board_yaw == [90.0] and args.image == [Path("a.png")]
    # --camera-map takes one or more pairs per use (extend): a file's pairs are one flat list, as on the command line.
    for text in ("camera_map: {laptop: front, phone: wrist}\n", "camera_map: [laptop=front, phone=wrist]\n"):
        args = parse(["replay", "--config", str(write(tmp_path, text)), "--dataset", "d", "--env", "twinarm/SO101-Reach-v0"])
        assert args.camera_map == ["laptop=front", "phone=wrist"], text
    for text in ("rename_feature: {a.x: b.y, c: d}\n", "rename_feature: [a.x=b.y, [c, d]]\n"):  # --rename-feature too
        args = parse(["eval", "--config", str(write(tmp_path, text))])
        assert args.rename_features == [("a.x", "b.y"), ("observation.images.c", "observation.images.d")], text


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--policy", "act", "--dataset", "d1", "--dataset", "d2", "--env", "twinarm/SO101-Reach-v0",
         "--steps", "7", "--image-size", "48", "64", "--set", "chunk_size=10", "--set", "name=x", "--no-progress",
         "--no-ema", "--randomization", "sim2real", "--output-dir", "out"],
        ["eval", "--policy", "ckpt", "--episodes", "2", "--set", "n_action_steps=5", "--rename-feature",
         "observation.images.top=observation.images.front", "observation.images.cam=observation.images.wrist",
         "--rename-feature", "a=b", "--no-yield-cores", "--camera", "front=0"],
        ["robustness", "--policy", "p", "--env", "twinarm/SO101-Reach-v0", "--sweep", "latency", "--episodes", "3"],
        ["record", "--root", "r", "--only-success", "--obs-type", "state", "--codec", "av1", "--no-progress"],
        ["replay", "--dataset", "d", "--env", "twinarm/SO101-Reach-v0", "--episode", "3", "5-8", "--no-video"],
        ["replay", "--dataset", "d", "--env", "twinarm/SO101-Reach-v0", "--camera-map", "laptop=front", "phone=wrist",
         "--camera-map", "top=top"],
        ["fit-camera", "--board-center", "0.1", "0.2", "--board-center", "0.3", "0.4", "--image", "a.png", "b.png"],
        ["demo", "--episodes", "2", "--height", "48"],
    ],
)  # fmt: skip
def test_a_runs_saved_config_reproduces_it(tmp_path: Path, argv: list[str]) -> None:
    """The config.json a run saves (write_resolved_config: dest names, `command`, pairs for --set) given back as
    --config gives the same options."""
    args = parse(argv)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(resolved_config(args), default=str))
    again = parse([argv[0], "--config", str(cfg)])
    assert resolved_config(again) == resolved_config(args)


def test_the_command_line_wins_over_the_files_exclusive_option(tmp_path: Path) -> None:
    cfg = write(tmp_path, "policy: p\nenv: twinarm/SO101-Reach-v0\nonly: [latency-1]\n")
    args = parse(["robustness", "--config", str(cfg), "--sweep", "latency"])
    assert args.sweep == "latency" and args.only is None


def test_a_directory_is_named_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--config", str(tmp_path)])
    assert f"config file {tmp_path} is a directory, not a YAML or JSON file" in capsys.readouterr().err


def test_doctor_takes_a_config_file(tmp_path: Path) -> None:
    """doctor said "config file not found" for a missing file and "unrecognized arguments" for an existing one."""
    cfg = write(tmp_path, "json: true\nno_render: true\n")
    args = parse(["doctor", "--config", str(cfg)])
    assert args.json is True and args.no_render is True


def test_a_dataset_action_takes_its_own_options(tmp_path: Path) -> None:
    """`dataset info --config FILE`: the file's keys are info's options (they were looked up in `dataset`'s)."""
    cfg = write(tmp_path, "episodes: true\ncommand: dataset\ndataset_command: info\n")
    assert parse(["dataset", "info", "--config", str(cfg), "root"]).episodes is True
    assert parse(["dataset", "--config", str(cfg), "info", "root"]).episodes is True
