"""`train --init-from`: fine-tuning starts at a checkpoint's weights (the dataset's stats normalize), takes overrides
that keep the architecture (Diffusion's horizon: its U-Net is convolutional over time), and refuses, naming the
checkpoint, an override that changes it, another policy type or other features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from twinarm.agents.policy import Policy
from twinarm.agents.train import TrainConfig, train
from twinarm.cli.main import main

ACT = dict(chunk_size=10, n_action_steps=10, dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1,
           n_vae_encoder_layers=1, latent_dim=4)  # fmt: skip
DIFFUSION = dict(horizon=8, n_action_steps=4, down_dims=[16, 32], diffusion_step_embed_dim=16, kernel_size=3,
                 n_groups=4, num_train_timesteps=20)  # fmt: skip
NORMS = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")


def _run(dataset: Path, out: Path, policy: str, overrides: dict, steps: int = 2, **kw: object) -> Path:
    return train(TrainConfig(policy=policy, dataset=str(dataset), output_dir=str(out), policy_overrides=overrides,
                             steps=steps, batch_size=4, save_freq=steps, log_freq=1, threads=1, progress=False,
                             device="cpu", **kw))  # fmt: skip


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "pretrained_model" / "model.safetensors"))


@pytest.fixture(scope="module")
def act_run(scripted_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(scripted_dataset, tmp_path_factory.mktemp("act_base"), "act", ACT, steps=3)


def test_fine_tuning_starts_at_the_checkpoint_and_moves_on(scripted_dataset: Path, act_run: Path,
                                                           tmp_path: Path) -> None:
    from twinarm.agents.train import build_policy_offline
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    tc = TrainConfig(policy="act", dataset=str(scripted_dataset), output_dir=str(tmp_path), init_from=str(act_run))
    start = build_policy_offline(tc, LeRobotDatasetReader(scripted_dataset)).state_dict()
    base = _weights(act_run)
    assert start.keys() == base.keys()
    assert all(torch.equal(start[k], base[k]) for k in base)  # same dataset: the stats agree too
    scratch = build_policy_offline(TrainConfig(policy="act", dataset=str(scripted_dataset), output_dir=str(tmp_path),
                                               policy_overrides=ACT), LeRobotDatasetReader(scripted_dataset))
    assert not all(torch.equal(scratch.state_dict()[k], base[k]) for k in base if not k.startswith(NORMS))
    tuned = _weights(_run(scripted_dataset, tmp_path / "tuned", "act", {}, init_from=str(act_run)))
    assert not all(torch.equal(tuned[k], base[k]) for k in base)  # it trained on from there
    saved = json.loads((tmp_path / "tuned" / "train_config.json").read_text())
    assert saved["init_from"] == str(act_run)


def test_diffusion_takes_a_longer_horizon_from_the_same_weights(scripted_dataset: Path, tmp_path: Path) -> None:
    from twinarm.agents.train import build_policy_offline
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    base = _run(scripted_dataset, tmp_path / "base", "diffusion", DIFFUSION)
    longer = {"horizon": 16, "n_action_steps": 8}
    tc = TrainConfig(policy="diffusion", dataset=str(scripted_dataset), output_dir=str(tmp_path), init_from=str(base),
                     policy_overrides=longer)
    start, weights = build_policy_offline(tc, LeRobotDatasetReader(scripted_dataset)).state_dict(), _weights(base)
    assert all(torch.equal(start[k], weights[k]) for k in weights)
    tuned = Policy.from_pretrained(_run(scripted_dataset, tmp_path / "longer", "diffusion", longer, steps=1,
                                        init_from=str(base)))
    assert (tuned.config.horizon, tuned.config.n_action_steps, tuple(tuned.config.down_dims)) == (16, 8, (16, 32))


def test_what_cannot_start_from_the_checkpoint_is_refused(scripted_dataset: Path, act_run: Path,
                                                          tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--init-from .*tensors change shape .*differ from the checkpoint's config: dim_model=64\)"):
        _run(scripted_dataset, tmp_path / "a", "act", {"dim_model": 64}, init_from=str(act_run))
    with pytest.raises(ValueError, match=r"--init-from .* holds a 'act' policy, not 'diffusion'"):
        _run(scripted_dataset, tmp_path / "b", "diffusion", DIFFUSION, init_from=str(act_run))
    with pytest.raises(FileNotFoundError, match=r"--init-from: .* holds no model\.safetensors: pass a policy checkpoint"):
        _run(scripted_dataset, tmp_path / "c", "act", ACT, init_from=str(tmp_path))


def test_other_features_are_named(scripted_dataset: Path, act_run: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    policy = Policy.from_pretrained(act_run)
    policy.save_pretrained(ckpt)
    raw = json.loads((ckpt / "config.json").read_text())
    raw["input_features"].pop("observation.environment_state")
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"input features differ.*observation\.environment_state: checkpoint None"):
        _run(scripted_dataset, tmp_path / "a", "act", {}, init_from=str(ckpt))


def test_cli_takes_the_policy_type_from_the_checkpoint(scripted_dataset: Path, act_run: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["train", "--init-from", str(act_run), "--dataset", str(scripted_dataset), "--output-dir", str(out),
                 "--steps", "1", "--batch-size", "4", "--eval-freq", "0", "--threads", "1", "--no-progress"]) == 0
    assert "initialized from" in capsys.readouterr().out
    assert json.loads((out / "train_config.json").read_text())["policy"] == "act"
    with pytest.raises(SystemExit, match="--init-from .*not a policy checkpoint"):
        main(["train", "--init-from", str(tmp_path / "nothing"), "--dataset", str(scripted_dataset)])


def test_online_tdmpc_is_told_it_starts_from_scratch(act_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--init-from starts offline training .* online TD-MPC starts from scratch"):
        train(TrainConfig(policy="tdmpc", env="twinarm/SO101-Reach-v0", output_dir=str(tmp_path), steps=1,
                          init_from=str(act_run), threads=1, progress=False, device="cpu"))


LEROBOT_FIXTURES = Path(__file__).parents[1] / "fixtures/lerobot_policies"


def _cli_train(init_from: Path, dataset: Path, out: Path, *extra: str) -> int:
    return main(["train", "--init-from", str(init_from), "--dataset", str(dataset), "--output-dir", str(out),
                 "--steps", "1", "--batch-size", "4", "--eval-freq", "0", "--threads", "1", "--no-progress", *extra])


@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_fine_tunes_a_lerobot_written_checkpoint(scripted_dataset: Path, tmp_path: Path, kind: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint LeRobot 0.6.1 wrote (its config fields, tensor names, processor files) starts fine-tuning as
    `twinarm eval` reads it: the same weights, the dataset's stats; through the CLI, the type from its config."""
    from twinarm.agents.lerobot_checkpoint import load_lerobot
    from twinarm.agents.policy import NORMALIZER_PREFIXES
    from twinarm.agents.train import build_policy_offline
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    ckpt = LEROBOT_FIXTURES / f"{kind}_state" / "pretrained_model"
    tc = TrainConfig(policy=kind, dataset=str(scripted_dataset), output_dir=str(tmp_path), init_from=str(ckpt))
    start = build_policy_offline(tc, LeRobotDatasetReader(scripted_dataset)).state_dict()
    read = {k: v for k, v in load_lerobot(ckpt).state_dict().items() if not k.startswith(NORMALIZER_PREFIXES)}
    assert set(read) <= set(start) and all(torch.equal(start[k], v) for k, v in read.items())
    assert _cli_train(ckpt, scripted_dataset, tmp_path / "tuned") == 0
    assert f"initialized from {ckpt} (a LeRobot checkpoint, {len(read)} tensors)" in capsys.readouterr().out
    assert Policy.from_pretrained(tmp_path / "tuned").name == kind


def test_fine_tunes_a_twinarm_export(scripted_dataset: Path, act_run: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`export-lerobot`'s folder starts from the weights of the run it was exported from."""
    assert main(["export-lerobot", "--policy", str(act_run), "--out", str(tmp_path / "exp")]) == 0
    assert _cli_train(tmp_path / "exp", scripted_dataset, tmp_path / "tuned") == 0
    assert "(a LeRobot checkpoint, " in capsys.readouterr().out
    from twinarm.agents.train import build_policy_offline
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    tc = TrainConfig(policy="act", dataset=str(scripted_dataset), output_dir=str(tmp_path), init_from=str(tmp_path / "exp"))
    start, base = build_policy_offline(tc, LeRobotDatasetReader(scripted_dataset)).state_dict(), _weights(act_run)
    assert all(torch.equal(start[k], base[k]) for k in base if not k.startswith(NORMS))


def test_a_lerobot_checkpoint_it_cannot_take_is_one_error_line(scripted_dataset: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    ckpt = tmp_path / "lr"
    shutil.copytree(LEROBOT_FIXTURES / "act_state" / "pretrained_model", ckpt)
    raw = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**raw, "replace_final_stride_with_dilation": True}))
    assert _cli_train(ckpt, scripted_dataset, tmp_path / "a") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"--init-from {ckpt / 'config.json'}: replace_final_stride_with_dilation=True" in err
    assert not (tmp_path / "a").exists()
