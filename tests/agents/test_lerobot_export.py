"""twinarm policies written as LeRobot checkpoints: read back as the same policy, laid out as the LeRobot-written
fixtures are (tests/fixtures/lerobot_policies), every parameter under a LeRobot name that reads back to it.
(By hand, lerobot 0.6.1 loads such exports with strict=True and reproduces twinarm's outputs: ACT with a camera
5e-6 of 9, Diffusion with a camera 3e-5 of 22, TD-MPC exactly.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import twinarm  # noqa: F401  (registers the env ids)
from twinarm.agents.features import Feature
from twinarm.agents.lerobot_checkpoint import (
    POSTPROCESSOR,
    PREPROCESSOR,
    LeRobotCheckpointError,
    is_lerobot_checkpoint,
    load_lerobot,
)
from twinarm.agents.lerobot_export import LEROBOT_FIELDS, save_lerobot
from twinarm.agents.lerobot_names import lerobot_name, twinarm_name
from twinarm.agents.registry import make_policy
from twinarm.cli.main import main

FIXTURES = Path(__file__).parents[1] / "fixtures/lerobot_policies"
STATE = {"observation.state": Feature("STATE", (6,)), "observation.environment_state": Feature("ENV", (7,))}
CAMERA = {"observation.state": Feature("STATE", (6,)), "observation.images.front": Feature("VISUAL", (3, 64, 80))}
OUT = {"action": Feature("ACTION", (6,))}
TINY = {
    "act": dict(dim_model=32, n_heads=2, dim_feedforward=64, chunk_size=10, n_action_steps=10, latent_dim=8,
                n_encoder_layers=2, n_vae_encoder_layers=2),
    "diffusion": dict(down_dims=(16, 32), horizon=16, n_action_steps=8, diffusion_step_embed_dim=16, n_groups=4,
                      noise_scheduler_type="DDIM", num_inference_steps=10, use_clipped_model_output=False),
    "tdmpc": dict(latent_dim=16, mlp_dim=32, state_encoder_hidden_dim=32),
}  # fmt: skip


def stats(features: dict[str, Feature]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for i, (key, f) in enumerate({**features, **OUT}.items()):
        if f.kind == "VISUAL":
            out[key] = {"mean": np.full((3, 1, 1), 0.4, np.float32), "std": np.full((3, 1, 1), 0.2, np.float32),
                        "min": np.zeros((3, 1, 1), np.float32), "max": np.ones((3, 1, 1), np.float32)}  # fmt: skip
        else:
            mean, std = np.linspace(-5 - i, 5 + i, f.shape[0], dtype=np.float32), np.linspace(1, 3 + i, f.shape[0], dtype=np.float32)
            out[key] = {"mean": mean, "std": std, "min": mean - 3 * std, "max": mean + 3 * std}
    return out


def tiny(kind: str, features: dict[str, Feature] = STATE):  # noqa: ANN201
    torch.manual_seed(0)
    features = {"observation.state": STATE["observation.state"]} if kind == "tdmpc" else features
    return make_policy(kind, input_features=features, output_features=OUT, stats=stats(features), **TINY[kind]).eval()


def test_act_reads_back_as_the_same_policy(tmp_path: Path) -> None:
    policy = tiny("act")
    save_lerobot(policy, tmp_path / "lr")
    assert is_lerobot_checkpoint(tmp_path / "lr")
    batch = {"observation.state": torch.randn(2, 6) * 20, "observation.environment_state": torch.randn(2, 7) * 0.1}
    again = load_lerobot(tmp_path / "lr")
    torch.testing.assert_close(again.predict_action_chunk(batch), policy.predict_action_chunk(batch))


def test_diffusion_reads_back_as_the_same_policy(tmp_path: Path) -> None:
    policy = tiny("diffusion")
    save_lerobot(policy, tmp_path / "lr")
    batch = {"observation.state": torch.randn(2, 2, 6) * 20, "observation.environment_state": torch.randn(2, 2, 7) * 0.1}
    again = load_lerobot(tmp_path / "lr")
    got, want = (p.predict_action_chunk(batch, generator=torch.Generator().manual_seed(3)) for p in (again, policy))
    torch.testing.assert_close(got, want)


def test_tdmpc_reads_back_as_the_same_world_model(tmp_path: Path) -> None:
    policy = tiny("tdmpc")
    save_lerobot(policy, tmp_path / "lr")
    again = load_lerobot(tmp_path / "lr")
    for (name, a), (_, b) in zip(policy.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_every_weight_with_a_camera_has_a_lerobot_name_that_reads_back(kind: str) -> None:
    policy = tiny(kind, CAMERA)
    keys = [k for k in policy.state_dict() if not k.startswith("normalize")]
    names = {lerobot_name(k, kind) for k in keys}
    assert all(twinarm_name(lerobot_name(k, kind), kind) == k for k in keys)
    backbone = "model.backbone.layer4.1.conv2.weight" if kind == "act" else "diffusion.rgb_encoder.backbone.7.1.conv2.weight"
    assert backbone in names and len(names) == len(keys)


@pytest.mark.parametrize("kind", ["act", "diffusion", "tdmpc"])
def test_files_are_laid_out_as_lerobot_writes_them(tmp_path: Path, kind: str) -> None:
    """The same files, processor steps and state files as the lerobot-written fixture of that type; every config
    field LeRobot wrote that describes the policy (not where it ran or was published) is written."""
    save_lerobot(tiny(kind), tmp_path / "lr")
    fixture = FIXTURES / f"{kind}_state" / "pretrained_model"
    assert sorted(p.name for p in (tmp_path / "lr").iterdir()) == sorted(p.name for p in fixture.iterdir())
    for name in (PREPROCESSOR, POSTPROCESSOR):
        ours, theirs = (json.loads((d / name).read_text()) for d in (tmp_path / "lr", fixture))
        assert [(s["registry_name"], s.get("state_file")) for s in ours["steps"]] == \
            [(s["registry_name"], s.get("state_file")) for s in theirs["steps"]]  # fmt: skip
    ours, theirs = (json.loads((d / "config.json").read_text()) for d in (tmp_path / "lr", fixture))
    runtime = {"push_to_hub", "repo_id", "private", "tags", "license", "pretrained_path", "pretrained_revision",
               "use_peft"}  # fmt: skip
    assert set(theirs) - runtime - {"drop_n_last_frames", "gradient_checkpointing", "compile_model", "compile_mode",
                                    "optimizer_eps", "scheduler_name", "scheduler_warmup_steps"} <= set(ours)  # fmt: skip
    assert set(ours) <= set(theirs)
    assert LEROBOT_FIELDS[kind] <= set(theirs)


def test_what_lerobot_would_run_differently_is_refused(tmp_path: Path) -> None:
    policy = tiny("diffusion")
    policy.config.use_clipped_model_output = True
    with pytest.raises(LeRobotCheckpointError, match="DDIM with use_clipped_model_output=True .twinarm's default.: "):
        save_lerobot(policy, tmp_path / "a")


def test_tdmpc_camera_is_written_as_observation_image_and_reads_back_under_the_env_camera(tmp_path: Path) -> None:
    """LeRobot's TD-MPC plans only from `observation.image`: the export keys the camera so, its preprocessor
    renames the env's camera onto it, and reading it back (no --rename-feature) gives the env's key again."""
    torch.manual_seed(0)
    features = {**CAMERA, "observation.images.front": Feature("VISUAL", (3, 84, 84))}
    policy = make_policy("tdmpc", input_features=features, output_features=OUT, stats=stats(features), **TINY["tdmpc"]).eval()
    lr = save_lerobot(policy, tmp_path / "lr")
    config = json.loads((lr / "config.json").read_text())
    assert list(config["input_features"]) == ["observation.state", "observation.image"]
    rename = json.loads((lr / PREPROCESSOR).read_text())["steps"][0]
    assert rename == {"registry_name": "rename_observations_processor",
                      "config": {"rename_map": {"observation.images.front": "observation.image"}}}  # fmt: skip
    from safetensors.torch import load_file

    saved = set(load_file(str(lr / rename_state(lr))))
    assert {"observation.state.min", "action.min"} <= saved and not any("images" in k for k in saved)
    again = load_lerobot(lr)
    assert list(again.config.input_features) == list(features)
    for (name, a), (_, b) in zip(policy.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    obs = {"observation.state": torch.randn(1, 6) * 20, "observation.images.front": torch.rand(1, 3, 84, 84)}
    with torch.no_grad():
        torch.testing.assert_close(again.model.encoder(again.normalize_inputs(obs)), policy.model.encoder(policy.normalize_inputs(obs)))


def rename_state(lr: Path) -> str:
    """The normalizer state file the preprocessor names."""
    return next(s["state_file"] for s in json.loads((lr / PREPROCESSOR).read_text())["steps"] if s.get("state_file"))


def test_export_then_eval_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tiny("diffusion")
    policy.config.use_clipped_model_output = True  # twinarm's default
    policy.save_pretrained(tmp_path / "tw")
    with pytest.raises(SystemExit):
        main(["export-lerobot", "--policy", str(tmp_path / "tw"), "--out", str(tmp_path / "lr")])
    said = capsys.readouterr().err
    assert ": pass --lerobot-ddim to export it sampling as LeRobot does" in said
    assert "or train it with --set use_clipped_model_output=false" in said and "policy.config" not in said
    assert main(["export-lerobot", "--policy", str(tmp_path / "tw"), "--out", str(tmp_path / "lr"), "--lerobot-ddim"]) == 0
    assert "wrote a LeRobot diffusion checkpoint" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["export-lerobot", "--policy", str(tmp_path / "tw"), "--out", str(tmp_path / "lr")])
    assert f"--out {tmp_path / 'lr'} is not empty (a checkpoint there)" in capsys.readouterr().err
    # Nor among another folder's files (a dataset's, a run's), nor onto a file.
    (tmp_path / "data").mkdir()
    (tmp_path / "data/info.txt").write_text("a dataset's own file")
    for out, said in ((tmp_path / "data", "is not empty (1 entries there)"), (tmp_path / "data/info.txt", "is a file")):
        with pytest.raises(SystemExit):
            main(["export-lerobot", "--policy", str(tmp_path / "tw"), "--out", str(out), "--lerobot-ddim"])
        assert said in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["info.txt"]
    assert main(["eval", "--policy", str(tmp_path / "lr"), "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1",
                 "--n-envs", "1", "--videos", "0", "--max-steps", "4", "--threads", "1", "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    assert "a LeRobot diffusion checkpoint" in capsys.readouterr().out


def test_lerobot_per_camera_diffusion_encoders_read_as_the_shared_one(tmp_path: Path) -> None:
    """LeRobot's Diffusion keeps one image encoder per camera by default (`rgb_encoder.0.` with one camera); with
    one camera that is twinarm's single encoder (several: tests/agents/test_diffusion_cameras.py)."""
    from safetensors.torch import load_file, save_file

    policy = tiny("diffusion", CAMERA)
    lr = save_lerobot(policy, tmp_path / "lr")
    state = load_file(str(lr / "model.safetensors"))
    save_file({k.replace("diffusion.rgb_encoder.", "diffusion.rgb_encoder.0.", 1): v for k, v in state.items()},
              str(lr / "model.safetensors"))  # fmt: skip
    config = json.loads((lr / "config.json").read_text())
    (lr / "config.json").write_text(json.dumps({**config, "use_separate_rgb_encoder_per_camera": True}))
    batch = {"observation.state": torch.randn(1, 2, 6), "observation.images.front": torch.rand(1, 2, 3, 64, 80)}
    got, want = (p.predict_action_chunk(batch, generator=torch.Generator().manual_seed(3)) for p in (load_lerobot(lr), policy))
    torch.testing.assert_close(got, want)


def test_default_batch_norm_act_exports_lerobots_tensors_and_reads_back(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """twinarm's default ACT backbone (`backbone_norm=batch_norm`) keeps `num_batches_tracked` counters, which
    LeRobot's FrozenBatchNorm2d has not: the export leaves them out (its tensors are then exactly those of the
    same policy with LeRobot's frozen norm, whose export lerobot 0.6.1 loads strict), and reading back gives the
    same actions, through `twinarm eval` too. A LeRobot checkpoint holding such counters (twinarm's exports before)
    still reads: they are ignored, as LeRobot's from_pretrained ignores them."""
    from safetensors.torch import load_file, save_file

    policy = tiny("act", CAMERA)
    assert policy.config.backbone_norm == "batch_norm"
    with torch.no_grad():  # trained running stats, so a read that dropped them would show
        for name, buf in policy.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buf.copy_(torch.rand_like(buf) * 0.5 + (0.75 if name.endswith("var") else -0.25))
            elif name.endswith("num_batches_tracked"):
                buf.fill_(1234)
    lr = save_lerobot(policy, tmp_path / "lr")
    exported = load_file(str(lr / "model.safetensors"))
    frozen = make_policy("act", input_features=CAMERA, output_features=OUT, stats=stats(CAMERA),
                         backbone_norm="frozen_batch_norm", **TINY["act"])  # fmt: skip
    assert set(exported) == set(load_file(str(save_lerobot(frozen, tmp_path / "frozen") / "model.safetensors")))
    batch = {"observation.state": torch.randn(2, 6) * 20, "observation.images.front": torch.rand(2, 3, 64, 80)}
    with torch.no_grad():
        want = policy.predict_action_chunk(batch)
        torch.testing.assert_close(load_lerobot(lr).predict_action_chunk(batch), want)
        counters = {k.replace(".running_mean", ".num_batches_tracked"): torch.tensor(1234)
                    for k in exported if k.endswith(".running_mean")}  # fmt: skip
        save_file({**exported, **counters}, str(lr / "model.safetensors"))
        torch.testing.assert_close(load_lerobot(lr).predict_action_chunk(batch), want)
    assert main(["eval", "--policy", str(lr), "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1", "--n-envs", "1",
                 "--videos", "0", "--max-steps", "2", "--threads", "1", "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    assert "a LeRobot act checkpoint" in capsys.readouterr().out


def test_default_ddpm_diffusion_exports_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """twinarm's default Diffusion (DDPM, use_clipped_model_output=True) is exported without --lerobot-ddim: a DDPM
    step uses only the clipped clean-sample estimate (twinarm's scheduler, and diffusers' DDPMScheduler.step, which
    LeRobot samples with, has no such option), so the export samples exactly as twinarm does. DDIM is still refused
    (test_export_then_eval_through_the_cli)."""
    torch.manual_seed(0)
    ddpm = {**TINY["diffusion"], "noise_scheduler_type": "DDPM", "num_train_timesteps": 20, "num_inference_steps": None}
    ddpm.pop("use_clipped_model_output")
    policy = make_policy("diffusion", input_features=STATE, output_features=OUT, stats=stats(STATE), **ddpm).eval()
    assert policy.config.use_clipped_model_output is True and policy.config.noise_scheduler_type == "DDPM"
    policy.save_pretrained(tmp_path / "tw")
    assert main(["export-lerobot", "--policy", str(tmp_path / "tw"), "--out", str(tmp_path / "lr")]) == 0
    assert "wrote a LeRobot diffusion checkpoint" in capsys.readouterr().out
    batch = {"observation.state": torch.randn(2, 2, 6) * 20, "observation.environment_state": torch.randn(2, 2, 7) * 0.1}
    again = load_lerobot(tmp_path / "lr")
    assert again.config.noise_scheduler_type == "DDPM"
    got, want = (p.predict_action_chunk(batch, generator=torch.Generator().manual_seed(3)) for p in (again, policy))
    torch.testing.assert_close(got, want)
