"""A dataset edit given a source folder that is not there says so as `dataset info` and `check` do ("X: no such
dataset directory"), in one line, before anything is written; it said "X/meta/info.json: file not found", a file
the user never named (docs audit C6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinarm.cli.main import TRACEBACK_ENV, main


@pytest.mark.parametrize("argv", [
    ["delete-episodes", "{missing}", "{tmp}/out", "--episodes", "1"],
    ["merge", "{missing}", "{tmp}/other", "--out", "{tmp}/out"],
    ["split", "{missing}", "--out", "{tmp}/out", "--splits", "train=0.5", "val=0.5"],
    ["convert-units", "{missing}", "{tmp}/out", "--calibration", "{tmp}/cal.json"],
    ["remove-feature", "{missing}", "{tmp}/out", "--feature", "observation.images.wrist"],
    ["rename-feature", "{missing}", "{tmp}/out", "--rename", "observation.images.front=observation.images.top"],
    ["modify-tasks", "{missing}", "{tmp}/out", "--task", "Lift the cube."],
    ["convert-to-video", "{missing}", "{tmp}/out"],
], ids=lambda argv: argv[0])  # fmt: skip
def test_a_missing_source_is_named_as_dataset_info_names_it(argv: list[str], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    missing = tmp_path / "nosuch"
    filled = [a.replace("{missing}", str(missing)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["dataset", *filled]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"twinarm dataset: error: {missing}: no such dataset directory\n"), err
    assert "info.json" not in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
