"""`--config FILE` on the CLI: YAML values become a command's defaults, flags on the command line win, the
resolved options are saved with the run, unknown keys are named, and a repeatable flag may be given once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from twinarm.cli.main import main


@pytest.fixture
def tiny_policy(tiny_act_checkpoint: Callable[..., Path]) -> Path:
    return tiny_act_checkpoint()


def test_file_values_are_defaults_and_flags_win(tiny_policy: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"policy: {tiny_policy}\nenv: twinarm/SO101-Reach-v0\nepisodes: 1\nmax_steps: 2\nvideos: 0\n"
                   f"threads: 1\nout: {out}\nrandomization:\n  obs_noise_std: 0.01\n")
    assert main(["eval", "--config", str(cfg), "--max-steps", "3"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["max_steps"] == 3 and saved["episodes"] == 1 and saved["env"] == "twinarm/SO101-Reach-v0"
    assert saved["randomization"] == {"obs_noise_std": 0.01}
    assert json.loads((out / "eval_info.json").read_text())["per_episode"][0]["length"] == 3


def test_unknown_keys_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("episodes: 1\nepsiodes: 2\n")
    with pytest.raises(SystemExit):
        main(["eval", "--config", str(cfg)])
    assert f"config file {cfg}: unknown option(s) ['epsiodes']" in capsys.readouterr().err


def test_a_repeatable_flag_given_once_in_the_file(tiny_policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "cam.yaml"
    cfg.write_text(f"policy: {tiny_policy}\ncamera: front=0\n")
    with pytest.raises(SystemExit) as info:
        main(["eval", "--config", str(cfg), "--camera", "wrist=1", "--out", str(tmp_path / "e")])
    assert info.value.code == 2  # the file's camera became a list of one, the flag's was appended to it
    assert "--camera: only for a real arm" in capsys.readouterr().err


def test_the_file_can_give_options_the_command_requires(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`teleop --port/--calibration` are required; a config file that gives them satisfies that (the command
    then fails on the bogus port itself, which shows the values arrived)."""
    cfg = tmp_path / "teleop.json"
    cfg.write_text(json.dumps({"port": str(tmp_path / "no-such-port"), "calibration": str(tmp_path / "c.json"),
                               "keyboard": True}))  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main(["teleop", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert "the following arguments are required" not in err
    assert "no-such-port" in err or "c.json" in err or "terminal" in err, err
    assert info.value.code != 0


def test_saved_paths_are_absolute_so_the_run_relaunches_from_any_folder(
    tiny_policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative --policy and --out (path options) are saved absolute; the env id (text naming no file) as given
    (determinism audit F8)."""
    monkeypatch.chdir(tiny_policy.parent)
    assert main(["eval", "--policy", tiny_policy.name, "--env", "twinarm/SO101-Reach-v0", "--episodes", "1",
                 "--max-steps", "2", "--videos", "0", "--threads", "1", "--out", "ev"]) == 0  # fmt: skip
    saved = tiny_policy.parent / "ev" / "config.json"
    config = json.loads(saved.read_text())
    assert config["policy"] == str(tiny_policy) and config["out"] == str(tiny_policy.parent / "ev")
    assert config["env"] == "twinarm/SO101-Reach-v0"
    monkeypatch.chdir(tmp_path.parent)
    assert main(["eval", "--config", str(saved), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "eval_info.json").read_text())
    assert again["per_episode"] == json.loads((tiny_policy.parent / "ev" / "eval_info.json").read_text())["per_episode"]


def test_a_train_config_json_given_to_train_config_says_which_file_relaunches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train_config.json (TrainConfig's fields, not the flags) is refused with the way to use it (audit F7)."""
    from twinarm.agents.train_config import TrainConfig

    tc = TrainConfig(policy="act", dataset=str(tmp_path / "data"), output_dir=str(tmp_path / "run"), image_size=(48, 64))
    saved = tmp_path / "train_config.json"
    saved.write_text(json.dumps(tc.to_json()))
    assert TrainConfig(**json.loads(saved.read_text())).to_json() == tc.to_json()  # what the message offers
    with pytest.raises(SystemExit):
        main(["train", "--config", str(saved)])
    assert "`train --config` takes the config.json a `twinarm train` run saves beside it" in capsys.readouterr().err
