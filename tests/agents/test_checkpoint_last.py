"""`<run>/checkpoints/last` is a relative link to the newest step folder, as LeRobot's (it was a file naming the step,
so `cd last` failed and so did LeRobot's `--policy.path=.../checkpoints/last/pretrained_model`); runs written as a
file before, and filesystems without links, still resolve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agents.conftest import synthetic_stats, tiny_config
from twinarm.agents.checkpoints import point_last
from twinarm.agents.policy import last_step, resolve_checkpoint
from twinarm.agents.registry import get_policy_class


def _run(tmp_path: Path, steps: tuple[str, ...] = ("00000001", "00000002")) -> Path:
    run = tmp_path / "run"
    cfg = tiny_config("act")
    for step in steps:
        get_policy_class("act")(cfg, synthetic_stats()).save_pretrained(run / "checkpoints" / step / "pretrained_model")
    return run


def test_last_is_a_relative_link_moved_to_each_new_step(tmp_path: Path) -> None:
    run = _run(tmp_path)
    ckpts = run / "checkpoints"
    point_last(ckpts, "00000001")
    assert os.readlink(ckpts / "last") == "00000001" and (ckpts / "last" / "pretrained_model").is_dir()
    point_last(ckpts, "00000002")
    assert os.readlink(ckpts / "last") == "00000002" and last_step(ckpts / "last") == "00000002"
    assert sorted(p.name for p in ckpts.iterdir()) == ["00000001", "00000002", "last"]  # no temporary left
    want = ckpts / "00000002" / "pretrained_model"
    for given in (run, ckpts / "last", ckpts / "last" / "pretrained_model"):
        assert resolve_checkpoint(given) == want  # the step is what gets printed, not `last`
    moved = tmp_path / "moved"
    run.rename(moved)  # relative: the run folder moves (or is copied) with its link intact
    assert resolve_checkpoint(moved / "checkpoints" / "last") == moved / "checkpoints" / "00000002" / "pretrained_model"


def test_a_last_file_from_older_runs_is_read_and_replaced_by_a_link(tmp_path: Path) -> None:
    run = _run(tmp_path)
    ckpts = run / "checkpoints"
    (ckpts / "last").write_text("00000001\n")
    assert resolve_checkpoint(ckpts / "last" / "pretrained_model") == ckpts / "00000001" / "pretrained_model"
    assert resolve_checkpoint(run) == ckpts / "00000001" / "pretrained_model"
    point_last(ckpts, "00000002")  # a resumed run's next checkpoint
    assert (ckpts / "last").is_symlink() and resolve_checkpoint(run) == ckpts / "00000002" / "pretrained_model"


def test_without_links_last_is_a_file_naming_the_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(self: Path, target: str, target_is_directory: bool = False) -> None:
        raise OSError("links not supported here")

    monkeypatch.setattr(Path, "symlink_to", no_links)
    run = _run(tmp_path)
    point_last(run / "checkpoints", "00000002")
    assert not (run / "checkpoints" / "last").is_symlink()
    assert (run / "checkpoints" / "last").read_text() == "00000002\n"
    assert resolve_checkpoint(run / "checkpoints" / "last") == run / "checkpoints" / "00000002" / "pretrained_model"


def test_a_link_to_a_deleted_step_says_so(tmp_path: Path) -> None:
    run = _run(tmp_path, ("00000001",))
    (run / "checkpoints" / "last").symlink_to("00000009", target_is_directory=True)
    with pytest.raises(FileNotFoundError, match=r"last names .*00000009/pretrained_model, which holds no"):
        resolve_checkpoint(run)
