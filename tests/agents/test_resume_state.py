"""What `--resume` restores besides the weights and the optimizer: the run's own policy config (a run fine-tuned
with `--init-from` too), the CUDA generators, logs without the rows of a killed attempt, and a note when the LR
schedule is laid out over another --steps."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.agents.conftest import TINY
from twinarm.agents import checkpoints
from twinarm.agents.train import TrainConfig, train
from twinarm.cli.main import main

TINY_ACT = ["--set", "chunk_size=10", "--set", "n_action_steps=10", "--set", "dim_model=32", "--set", "n_heads=2",
            "--set", "dim_feedforward=64", "--set", "n_encoder_layers=1", "--set", "n_vae_encoder_layers=1",
            "--set", "latent_dim=4", "--set", "kl_weight=3.0"]  # fmt: skip
ACT = TINY["act"]


def _steps(path: Path) -> list[int]:
    with path.open(newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def _act(dataset: Path, out: Path, steps: int, **kw: object) -> Path:
    common = dict(policy="act", dataset=str(dataset), output_dir=str(out), policy_overrides=ACT, batch_size=2,
                  log_freq=1, eval_freq=0, threads=1, progress=False, device="cpu")  # fmt: skip
    return train(TrainConfig(**{**common, "steps": steps, **kw}))  # type: ignore[arg-type]


def test_a_run_started_with_init_from_resumes_with_its_own_config(scripted_dataset: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """The fine-tuned run's config is its source's (dim_model=32, kl_weight=3.0), which its config.json does not
    record: resuming it built twinarm's defaults (dim_model 512) and failed on the weights."""
    base = ["train", "--dataset", str(scripted_dataset), "--batch-size", "2", "--eval-freq", "0", "--threads", "1",
            "--no-progress", "--device", "cpu"]  # fmt: skip
    src, run = tmp_path / "src", tmp_path / "tuned"
    assert main([*base, "--policy", "act", "--steps", "1", "--output-dir", str(src), *TINY_ACT]) == 0
    assert main([*base, "--init-from", str(src), "--steps", "2", "--output-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--output-dir", str(run), "--steps", "3", "--no-progress"]) == 0
    assert f"last checkpoint: {run}/checkpoints/00000003/pretrained_model" in capsys.readouterr().out
    cfg = json.loads((run / "checkpoints/00000003/pretrained_model/config.json").read_text())
    assert (cfg["dim_model"], cfg["kl_weight"], cfg["chunk_size"]) == (32, 3.0, 10)
    assert _steps(run / "train_log.csv")[-1] == 3
    shutil.rmtree(src)  # the Python API, given init_from again: the run's own checkpoint, not the (gone) source
    train(TrainConfig(policy="act", dataset=str(scripted_dataset), output_dir=str(run), init_from=str(src),
                      resume=True, steps=4, batch_size=2, eval_freq=0, threads=1, progress=False, device="cpu"))  # fmt: skip
    assert json.loads((run / "checkpoints/00000004/pretrained_model/config.json").read_text())["kl_weight"] == 3.0


def test_resume_refuses_a_checkpoint_whose_features_are_not_the_datasets(scripted_dataset: Path, tmp_path: Path) -> None:
    from twinarm.agents.policy import PolicyConfigError

    out = tmp_path / "run"
    _act(scripted_dataset, out, 1)
    path = out / "checkpoints/00000001/pretrained_model/config.json"
    cfg = json.loads(path.read_text())
    cfg["input_features"]["observation.state"]["shape"] = [5]
    path.write_text(json.dumps(cfg))
    with pytest.raises(PolicyConfigError, match=r"--resume: .*config.json: its input features differ from the "
                       r"dataset's \(observation.state: checkpoint"):  # fmt: skip
        _act(scripted_dataset, out, 2, resume=True)


def test_resume_after_a_kill_between_checkpoints_drops_the_killed_attempts_rows(scripted_dataset: Path,
                                                                               tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "run"
    _act(scripted_dataset, out, 4, save_freq=2)
    (out / "eval_log.csv").write_text("step,pc_success\n2,10.0\n4,20.0\n")  # as periodic evals at 2 and 4 left it
    (out / "checkpoints/00000004/training_state.pt").unlink()  # killed while step 4's checkpoint was written
    _act(scripted_dataset, out, 4, save_freq=2, resume=True)  # resumes at 2, trains 3 and 4 again
    assert _steps(out / "train_log.csv") == [1, 2, 3, 4]  # was 1, 2, 3, 4, 3, 4
    assert _steps(out / "eval_log.csv") == [2]  # this attempt evaluates nothing (eval_freq 0): 4's row is gone


def test_a_run_restarted_before_its_first_checkpoint_starts_its_logs_afresh(tmp_path: Path) -> None:
    from twinarm.agents.run_log import RunLog

    path = tmp_path / "train_log.csv"
    path.write_text("step,loss\n1,0.5\n2,0.4\n3,0.3\n")
    RunLog(path, None, start=1).write({"step": 2, "loss": 0.25})
    assert path.read_text().splitlines() == ["step,loss", "1,0.5", "2,0.25"]
    RunLog(path, None, start=0)
    assert path.read_text().splitlines() == ["step,loss"]


def test_extending_a_cosine_run_says_its_lr_rises_again(scripted_dataset: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "run"
    cosine = dict(lr_schedule="cosine", lr_warmup_steps=1)
    _act(scripted_dataset, out, 2, **cosine)
    capsys.readouterr()
    _act(scripted_dataset, out, 2, resume=True, **cosine)  # nothing to train; the hint names the schedule
    said = capsys.readouterr().out
    assert "nothing to train (a larger --steps continues; a cosine LR schedule is then laid out over the new --steps" in said
    assert "learning-rate schedule" not in said  # same --steps: same schedule, no note
    _act(scripted_dataset, out, 4, resume=True, **cosine)
    lr = 1e-3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi / 3)).item())  # step 2 of a cosine over 4, warmup 1
    assert (f"--resume: the learning-rate schedule was cosine over --steps 2 and is now cosine over --steps 4: at step "
            f"2 the LR goes from 0 to {lr:.3g} (as in LeRobot") in capsys.readouterr().out  # fmt: skip
    _act(scripted_dataset, out, 5, resume=True)  # constant (ACT's default) after cosine: the LR changes too
    assert "was cosine over --steps 4 and is now constant: at step 4 the LR goes from 0 to 0.001" in capsys.readouterr().out


def test_cpu_checkpoints_hold_no_cuda_state_and_older_ones_resume(scripted_dataset: Path, tmp_path: Path) -> None:
    """A CPU run saves no CUDA generator states; a training_state.pt written before they (and the schedule's
    layout) were kept still resumes."""
    out = tmp_path / "run"
    _act(scripted_dataset, out, 2)
    path = out / "checkpoints/00000002/training_state.pt"
    state = torch.load(path, weights_only=False)
    assert "cuda_rng" not in state and state["scheduler"]["schedule"] == {"kind": "constant"}
    del state["scheduler"]["schedule"]
    torch.save(state, path)
    last = _act(scripted_dataset, out, 3, resume=True)
    assert last.name == "00000003" and _steps(out / "train_log.csv") == [1, 2, 3]


def test_cuda_generator_states_are_saved_and_restored(scripted_dataset: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The wiring, without a GPU: a policy on CUDA (faked) saves every device's generator state, and a resume
    sets them back, the policy's device taking the saved policy device's state."""
    saved = [torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)]
    restored: dict[str, object] = {}
    monkeypatch.setattr(checkpoints, "_cuda_device", lambda policy: torch.device("cuda", 1))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: list(saved))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.setdefault("all", states))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.setdefault("own", (s, device)))
    out = tmp_path / "run"
    _act(scripted_dataset, out, 1)
    state = torch.load(out / "checkpoints/00000001/training_state.pt", weights_only=False)
    assert [t.tolist() for t in state["cuda_rng"]] == [[1], [2]] and state["cuda_device"] == 1
    _act(scripted_dataset, out, 2, resume=True)
    assert [t.tolist() for t in restored["all"]] == [[1], [2]]  # type: ignore[union-attr]
    own, device = restored["own"]  # type: ignore[misc]
    assert own.tolist() == [2] and device == torch.device("cuda", 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_resume_restores_the_cuda_generator(scripted_dataset: Path, tmp_path: Path) -> None:
    """ACT's dropout and VAE samples draw from the CUDA generator: a resume must not re-draw the first steps'."""
    out = tmp_path / "run"
    _act(scripted_dataset, out, 2, device="cuda", policy_overrides={**ACT, "dropout": 0.1})
    state = torch.load(out / "checkpoints/00000002/training_state.pt", weights_only=False)
    device = torch.device("cuda", state["cuda_device"])
    torch.manual_seed(0)  # anything else
    _act(scripted_dataset, out, 2, device="cuda", resume=True, policy_overrides={**ACT, "dropout": 0.1})  # nothing to train
    assert torch.equal(torch.cuda.get_rng_state(device), state["cuda_rng"][state["cuda_device"]])
