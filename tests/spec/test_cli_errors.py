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
