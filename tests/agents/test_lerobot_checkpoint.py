"""LeRobot checkpoints read as twinarm policies: the fixture was written by the real `lerobot` package
(tools/make_lerobot_policy_fixtures.py) with the chunk LeRobot's own pipeline predicts for two raw inputs;
twinarm must predict the same chunk from the same files, evaluate it in sim, and save it as its own checkpoint.
(With a 48x64 camera, ResNet-18 included, the same check gave 7e-6 of 7; its 44 MB of weights stay out of git.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import twinarm  # noqa: F401  (registers the env ids)
from twinarm.agents.lerobot_checkpoint import LeRobotCheckpointError, is_lerobot_checkpoint, load_lerobot
from twinarm.agents.policy import ConfigOverrideError, Policy, PolicyConfigError
from twinarm.cli.main import main

FIXTURE = Path(__file__).parents[1] / "fixtures/lerobot_policies/act_state"
CKPT = FIXTURE / "pretrained_model"


def inputs() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    io = load_file(str(FIXTURE / "io.safetensors"))
    return {k: v for k, v in io.items() if k.startswith("observation.")}, io["action_chunk"]


def test_predicts_the_chunk_lerobot_predicts() -> None:
    assert is_lerobot_checkpoint(CKPT)
    policy = load_lerobot(CKPT, arm="so101")
    batch, expected = inputs()
    got = policy.predict_action_chunk(batch)
    assert got.shape == expected.shape == (2, 10, 6)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
    assert policy.config.arm == "so101" and policy.config.backbone_norm == "frozen_batch_norm"
    assert policy.config.normalization_mapping["STATE"] == "mean_std"


def test_saved_as_a_twinarm_checkpoint_it_stays_the_same_policy(tmp_path: Path) -> None:
    policy = load_lerobot(CKPT)
    policy.save_pretrained(tmp_path / "tw")
    assert not is_lerobot_checkpoint(tmp_path / "tw")
    batch, expected = inputs()
    again = Policy.from_pretrained(tmp_path / "tw")
    assert torch.equal(again.predict_action_chunk(batch), policy.predict_action_chunk(batch))


def test_from_pretrained_reads_a_lerobot_checkpoint_for_the_arm_given() -> None:
    """README: `Policy.from_pretrained` takes either layout; it read LeRobot's config.json as twinarm's and
    failed on "no such act field(s): device, ..."."""
    from twinarm.agents.act.act import ACTPolicy
    from twinarm.agents.diffusion.diffusion import DiffusionPolicy

    batch, expected = inputs()
    policy = Policy.from_pretrained(CKPT, arm="so101")
    torch.testing.assert_close(policy.predict_action_chunk(batch), expected, atol=1e-4, rtol=1e-5)
    assert isinstance(ACTPolicy.from_pretrained(CKPT, arm="so101"), ACTPolicy)
    with pytest.raises(ValueError, match="holds a 'act' policy, not 'diffusion'"):
        DiffusionPolicy.from_pretrained(CKPT, arm="so101")
    with pytest.raises(PolicyConfigError, match=r"a LeRobot checkpoint, which does not say which arm it drives.*arm="):
        Policy.from_pretrained(CKPT)  # no training dataset on this machine to take the arm from


def test_eval_runs_a_lerobot_checkpoint_in_sim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--policy", str(CKPT), "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1", "--n-envs", "1",
                 "--videos", "0", "--max-steps", "12", "--threads", "1", "--set", "n_action_steps=5",
                 "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "a LeRobot act checkpoint, read as twinarm's for the so101 arm" in out
    info = json.loads((tmp_path / "e" / "eval_info.json").read_text())
    assert info["aggregated"]["n_episodes"] == 1 and info["select_action_ms"]["calls"] == 12


def test_a_lerobot_checkpoint_of_another_arms_recordings_is_warned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A LeRobot checkpoint was read for the env's arm whatever it was trained on (a twinarm checkpoint on another
    arm is warned); where its train_config.json names a dataset that is here (root, or repo id in LeRobot's local
    folder), the dataset's robot_type gives its arm, and running it on another arm is warned as twinarm's are."""
    from twinarm.agents.env_io import OtherArmWarning
    from twinarm.agents.lerobot_checkpoint import recorded_arm

    ckpt = tmp_path / "ckpt"
    shutil.copytree(CKPT, ckpt)
    assert recorded_arm(ckpt) is None  # no train_config.json: nothing says
    home = tmp_path / "lerobot_home"
    (home / "me/koch_pick/meta").mkdir(parents=True)
    (home / "me/koch_pick/meta/info.json").write_text(json.dumps({"robot_type": "koch_follower"}))
    monkeypatch.setenv("HF_LEROBOT_HOME", str(home))
    (ckpt / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "me/koch_pick", "root": None}}))
    assert recorded_arm(ckpt) == "koch"
    with pytest.warns(OtherArmWarning, match=r"trained for the koch arm and runs on twinarm/SO101-PickCube-v0"):
        assert main(["eval", "--policy", str(ckpt), "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1",
                     "--videos", "0", "--max-steps", "3", "--threads", "1", "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    assert "read as twinarm's for the koch arm (its training dataset's arm;" in capsys.readouterr().out
    (ckpt / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "me/elsewhere"}}))
    assert recorded_arm(ckpt) is None  # the data is not here: the env's arm, as before


def copy_with(tmp_path: Path, **config: object) -> Path:
    dst = tmp_path / "pretrained_model"
    shutil.copytree(CKPT, dst)
    raw = json.loads((dst / "config.json").read_text())
    for k, v in config.items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = v
    (dst / "config.json").write_text(json.dumps(raw))
    return dst


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "smolvla"}, r"config.json: policy type 'smolvla'; twinarm reads LeRobot's act, diffusion, tdmpc checkpoints"),
        ({"replace_final_stride_with_dilation": True}, r"replace_final_stride_with_dilation=True; twinarm's act supports only False"),
        ({"some_new_field": 1}, r"config.json: field 'some_new_field' has no counterpart in twinarm's act"),
        ({"input_features": {"observation.state": {"shape": [6]}}}, r"config.json: input_features: not LeRobot's"),
    ],
)
def test_what_it_cannot_read_is_named(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(LeRobotCheckpointError, match=message):
        load_lerobot(copy_with(tmp_path, **change))


def test_missing_stats_and_unknown_overrides_are_named(tmp_path: Path) -> None:
    dst = copy_with(tmp_path)
    for f in dst.glob("*normalizer_processor.safetensors"):
        f.unlink()
    (dst / "policy_postprocessor.json").unlink()
    pre = json.loads((dst / "policy_preprocessor.json").read_text())
    pre["steps"] = [s for s in pre["steps"] if "normalizer" not in s["registry_name"]]
    (dst / "policy_preprocessor.json").write_text(json.dumps(pre))
    with pytest.raises(LeRobotCheckpointError, match=r"policy_preprocessor.json: no normalization stats for"):
        load_lerobot(dst)
    with pytest.raises(ConfigOverrideError, match=r"chunk_sise: no such act field \(did you mean chunk_size\?\)"):
        load_lerobot(CKPT, overrides={"chunk_sise": 5})


def test_eval_names_an_unreadable_lerobot_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = copy_with(tmp_path, type="vqbet")
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(dst), "--env", "twinarm/SO101-PickCube-v0", "--out", str(tmp_path / "e")])
    assert f"--policy: {dst / 'config.json'}: policy type 'vqbet'" in capsys.readouterr().err


def test_diffusion_samples_the_chunk_lerobot_samples() -> None:
    """DDIM at 10 steps from the same initial noise: LeRobot passed it explicitly, twinarm draws it from a generator
    seeded alike. LeRobot samples with diffusers' default (the noise estimate as the model gave it), set on import."""
    from tools.make_lerobot_policy_fixtures import NOISE_SEED

    fixture = FIXTURE.parent / "diffusion_state"
    policy = load_lerobot(fixture / "pretrained_model")
    assert policy.config.use_clipped_model_output is False and policy.config.noise_scheduler_type == "DDIM"
    io = load_file(str(fixture / "io.safetensors"))
    batch = {k: v for k, v in io.items() if k.startswith("observation.")}  # (B, n_obs_steps, D)
    got = policy.predict_action_chunk(batch, generator=torch.Generator().manual_seed(NOISE_SEED))
    torch.testing.assert_close(got, io["action_chunk"], atol=2e-4, rtol=1e-5)


def test_tdmpc_world_model_is_lerobots() -> None:
    """Encoder, dynamics, reward, Q ensemble, V and the policy prior on LeRobot's own latents and actions (planning
    itself draws random samples, so the parts it plans with are compared)."""
    fixture = FIXTURE.parent / "tdmpc_state"
    policy = load_lerobot(fixture / "pretrained_model")
    io = load_file(str(fixture / "io.safetensors"))
    m, z, a = policy.model, io["z"], io["action_normalized"]
    with torch.no_grad():
        torch.testing.assert_close(m.encoder(policy.normalize_inputs({"observation.state": io["observation.state"]})), z)
        z_next, reward = m.next(z, a)
        torch.testing.assert_close(z_next, io["z_next"])
        torch.testing.assert_close(reward.reshape(-1), io["reward"].reshape(-1))
        torch.testing.assert_close(m.q_all(z, a).reshape(io["qs"].shape), io["qs"])
        torch.testing.assert_close(m.value(z).reshape(-1), io["v"].reshape(-1))
        torch.testing.assert_close(m.pi(z), io["pi"])
    assert torch.equal(policy.model_target.qs[0][0].weight, policy.model.qs[0][0].weight)  # saved target = online here


def test_cameras_must_be_renamed_to_an_env_camera(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """LeRobot's TD-MPC names its camera `observation.image`; twinarm's envs give `observation.images.<camera>`."""
    features = json.loads((CKPT / "config.json").read_text())["input_features"]
    dst = copy_with(tmp_path, input_features={**features, "observation.image": {"type": "VISUAL", "shape": [3, 84, 84]}})
    with pytest.raises(LeRobotCheckpointError, match=r"camera feature 'observation.image' is not a key twinarm's envs "
                       r"provide \(observation.images.<camera>\): rename it"):  # fmt: skip
        load_lerobot(dst)
    with pytest.raises(LeRobotCheckpointError, match=r"rename \['observation.imag'\]: not input features of"):
        load_lerobot(dst, rename={"observation.imag": "observation.images.front"})
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(dst), "--rename-feature", "observation.image", "--out", str(tmp_path / "e")])
    assert "expected OLD=NEW feature keys" in capsys.readouterr().err


def test_a_renamed_camera_encodes_as_lerobot_does_and_runs_in_sim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixture = FIXTURE.parent / "tdmpc_camera"
    policy = load_lerobot(fixture / "pretrained_model", rename={"observation.image": "observation.images.front"})
    io = load_file(str(fixture / "io.safetensors"))
    obs = {"observation.state": io["observation.state"], "observation.images.front": io["observation.image"]}
    with torch.no_grad():
        torch.testing.assert_close(policy.model.encoder(policy.normalize_inputs(obs)), io["z"])
    assert main(["eval", "--policy", str(fixture / "pretrained_model"), "--env", "twinarm/SO101-Reach-v0",
                 "--rename-feature", "observation.image=observation.images.front", "--episodes", "1", "--n-envs", "1",
                 "--videos", "0", "--max-steps", "3", "--threads", "1", "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    assert "a LeRobot tdmpc checkpoint" in capsys.readouterr().out
    assert json.loads((tmp_path / "e" / "eval_info.json").read_text())["select_action_ms"]["calls"] == 3
