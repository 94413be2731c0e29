"""A damaged or inconsistent checkpoint (a full disk, a failed copy, a hand edit) gets a one-line error naming the file
and field at fault, and `--resume` says which earlier checkpoint is intact and how to continue from it (bad-input
audit B5, B6, B10: bare tracebacks without the path before, and a `--set` error when no --set was given)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agents.conftest import TINY
from twinarm.agents.policy import ConfigOverrideError, Policy, PolicyConfigError
from twinarm.agents.train import TrainConfig, train
from twinarm.cli.main import main


def _act(dataset: Path, out: Path, steps: int, **kw: object) -> Path:
    common = dict(policy="act", dataset=str(dataset), output_dir=str(out), policy_overrides=TINY["act"], batch_size=2,
                  log_freq=1, save_freq=2, eval_freq=0, threads=1, progress=False, device="cpu")  # fmt: skip
    return train(TrainConfig(**{**common, "steps": steps, **kw}))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained_run(scripted_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ACT run with checkpoints at steps 2 and 4 (trained once; tests damage copies of it)."""
    out = tmp_path_factory.mktemp("damaged") / "run"
    _act(scripted_dataset, out, 4)
    return out


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    """This test's own copy of the run, to damage."""
    return Path(shutil.copytree(trained_run, tmp_path / "run", symlinks=True))


def _cut(path: Path, keep: float) -> None:
    """Truncate `path` to `keep` of its bytes, as a full disk or a failed copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _edit_config(**fields: object) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        cfg = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**cfg, **fields}))

    return edit


#: How the audit damaged a policy checkpoint (B5, B10): the file at fault, and what the error must say about it.
POLICY_DAMAGES = {
    "weights_cut_in_half": (lambda m: _cut(m / "model.safetensors", 0.5), "model.safetensors",
                            r"model\.safetensors is damaged \(.*incomplete metadata"),
    "config_not_json": (lambda m: (m / "config.json").write_text('{"type": "act",\n'), "config.json",
                        r"config\.json: not valid JSON \(Expecting property name"),
    "config_of_another_type": (_edit_config(type="diffusion"), "config.json",
                               r"config\.json: no such diffusion field\(s\): .*chunk_size.*its fields are act's"),
    "unknown_field": (_edit_config(dim_modell=64), "config.json",
                      r"config\.json: no such act field\(s\): dim_modell \(did you mean dim_model\?\)"),
    "wrong_typed_field": (_edit_config(chunk_size="ten"), "config.json",
                          r'config\.json: chunk_size="ten": expected a whole number'),
    "config_disagrees_with_weights": (_edit_config(dim_model=64), "config.json",
                                      r"config\.json and .*model\.safetensors disagree: \d+ weight\(s\) change shape"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(POLICY_DAMAGES))
def test_loading_a_damaged_checkpoint_names_the_file(run: Path, damage: str) -> None:
    """Policy.from_pretrained raises a PolicyConfigError (one line in the CLI) naming the damaged file, not a
    SafetensorError, JSONDecodeError, bare ValueError or TypeError without the path."""
    model = run / "checkpoints/00000004/pretrained_model"
    spoil, name, said = POLICY_DAMAGES[damage]
    spoil(model)
    with pytest.raises(PolicyConfigError, match=said) as caught:
        Policy.from_pretrained(model)
    assert str(model / name) in str(caught.value)
    assert not isinstance(caught.value, ConfigOverrideError)  # no override was given: nothing to blame on one


@pytest.mark.parametrize("damage", list(POLICY_DAMAGES))
def test_eval_reports_a_damaged_checkpoint_in_one_line(run: Path, damage: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`twinarm eval` says `error: <file>: ...` in one line (no traceback), never `--set` when none was given (B10:
    a config.json edited to disagree with its weights was reported as `--set <dir>: ... change shape`)."""
    model = run / "checkpoints/00000004/pretrained_model"
    spoil, name, said = POLICY_DAMAGES[damage]
    spoil(model)
    out = tmp_path / "ev"
    assert main(["eval", "--policy", str(model), "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1", "--n-envs",
                 "1", "--videos", "0", "--max-steps", "2", "--threads", "1", "--out", str(out)]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith(f"twinarm eval: error: {model}/") and str(model / name) in err
    assert "--set" not in err and "Traceback" not in err
    assert not out.exists()  # nothing written


def test_an_inference_override_is_not_blamed_for_a_config_that_disagrees_with_its_weights(run: Path) -> None:
    """With an override that does not touch the architecture, the file is still the one at fault; an override that
    changes it is blamed as before."""
    model = run / "checkpoints/00000004/pretrained_model"
    with pytest.raises(ConfigOverrideError, match=r"the override\(s\) dim_model change the architecture"):
        Policy.from_pretrained(model, overrides={"dim_model": 64})
    _edit_config(dim_model=64)(model)
    with pytest.raises(PolicyConfigError, match=r"config\.json and .*model\.safetensors disagree") as caught:
        Policy.from_pretrained(model, overrides={"n_action_steps": 4})
    assert not isinstance(caught.value, ConfigOverrideError)


#: How the audit damaged the last checkpoint before `--resume` (B6): the file, relative to the run, and the damage.
RESUME_DAMAGES = {
    "training_state_cut": ("checkpoints/00000004/training_state.pt", lambda p: _cut(p, 1 / 3)),
    "weights_empty": ("checkpoints/00000004/pretrained_model/model.safetensors", lambda p: p.write_bytes(b"")),
}


@pytest.mark.parametrize("damage", list(RESUME_DAMAGES))
def test_resume_names_the_damaged_file_and_the_intact_checkpoint(run: Path, scripted_dataset: Path,
                                                                 damage: str) -> None:  # fmt: skip
    """The error names the file and checkpoint 00000002 as intact; moving the damaged folder aside, as it says,
    resumes from there."""
    relative, spoil = RESUME_DAMAGES[damage]
    spoil(run / relative)
    damaged = run / "checkpoints/00000004"
    with pytest.raises(PolicyConfigError, match=r"--resume: .* cannot be read \(.*\); checkpoint 00000002 is intact: "
                       r"move the folder .*00000004 out of .*checkpoints \(or delete it\)") as caught:  # fmt: skip
        _act(scripted_dataset, run, 4, resume=True)
    assert str(run / relative) in str(caught.value)
    shutil.move(damaged, run / "damaged-00000004")
    _act(scripted_dataset, run, 4, resume=True)  # trains steps 3 and 4 again from 00000002
    assert (damaged / "training_state.pt").is_file()
    Policy.from_pretrained(damaged / "pretrained_model")  # the new step 4 loads


def test_resume_says_when_no_earlier_checkpoint_is_intact(run: Path, scripted_dataset: Path) -> None:
    for step in ("00000002", "00000004"):
        _cut(run / "checkpoints" / step / "training_state.pt", 0.5)
    with pytest.raises(PolicyConfigError, match=r"--resume: .*00000004/training_state\.pt cannot be read .*no earlier "
                       r"checkpoint of this run is intact: name a new --output-dir"):  # fmt: skip
        _act(scripted_dataset, run, 4, resume=True)


def test_resume_names_a_damaged_train_config(run: Path, scripted_dataset: Path) -> None:
    """train_config.json cut short: `error: Expecting value: line 2 column 1` without the file before; now named,
    with the way to resume (the policy's config is the checkpoint's own), and resuming so works."""
    saved = run / "train_config.json"
    saved.write_text('{"bad":\n')
    with pytest.raises(PolicyConfigError, match=r"--resume: .*train_config\.json cannot be read \(Expecting value.*\); "
                       r"checkpoint 00000004 keeps the policy's config: move train_config\.json out of") as caught:  # fmt: skip
        _act(scripted_dataset, run, 4, resume=True)
    assert str(saved) in str(caught.value)
    saved.unlink()
    _act(scripted_dataset, run, 5, resume=True)
    assert json.loads(saved.read_text())["steps"] == 5
