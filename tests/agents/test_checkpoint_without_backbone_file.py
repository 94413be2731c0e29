"""A checkpoint trained from `pretrained_backbone_weights=FILE` (a local ImageNet ResNet-18) loads once FILE is gone
(another machine, a Hub download): its trained backbone is in model.safetensors, so loading never reads FILE (it
raised FileNotFoundError). The config keeps the recorded path; a fresh policy still reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from twinarm.agents.backbone import ResNet18
from twinarm.agents.features import Feature
from twinarm.agents.policy import Policy, build_for_weights
from twinarm.agents.registry import get_policy_class, make_policy
from twinarm.cli.main import main

IMAGES = Path(__file__).resolve().parents[1] / "fixtures/lerobot_v3/images"  # 2 episodes, a 16x24 wrist camera
ACT = ["--set", "dim_model=16", "--set", "n_heads=2", "--set", "dim_feedforward=32", "--set", "n_encoder_layers=1",
       "--set", "n_vae_encoder_layers=1", "--set", "latent_dim=4", "--set", "chunk_size=4", "--set",
       "n_action_steps=4"]  # fmt: skip
CAM = {"observation.state": Feature("STATE", (3,)), "observation.images.wrist": Feature("VISUAL", (3, 16, 24))}
OUT = {"action": Feature("ACTION", (3,))}


def backbone_file(path: Path) -> Path:
    """A torchvision-named ResNet-18 state dict (random: it only has to be read)."""
    torch.manual_seed(5)
    torch.save(ResNet18("batch_norm").state_dict(), path)
    return path


def chunk(policy: Policy) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    batch = {"observation.state": torch.randn(2, 3, generator=g) * 10,
             "observation.images.wrist": torch.rand(2, 3, 16, 24, generator=g)}  # fmt: skip
    if policy.config.type == "diffusion":
        return policy.predict_action_chunk(batch, generator=torch.Generator().manual_seed(1))
    return policy.predict_action_chunk(batch)


def test_a_trained_act_checkpoint_loads_without_its_backbone_file(tmp_path: Path) -> None:
    weights = backbone_file(tmp_path / "r18.pth")
    run = tmp_path / "run"
    assert main(["train", "--policy", "act", "--dataset", str(IMAGES), "--output-dir", str(run), "--steps", "1",
                 "--batch-size", "2", "--eval-freq", "0", "--threads", "1", "--device", "cpu", "--no-progress",
                 "--set", f"pretrained_backbone_weights={weights}", *ACT]) == 0  # fmt: skip
    before = chunk(Policy.from_pretrained(run))
    weights.unlink()
    after = Policy.from_pretrained(run)
    torch.testing.assert_close(chunk(after), before, rtol=0, atol=0)
    assert after.config.pretrained_backbone_weights == str(weights)  # where its training started, as recorded
    # ... and it fine-tunes (--init-from) and resumes without it too (both read FILE: FileNotFoundError)
    tuned = tmp_path / "tuned"
    common = ["--dataset", str(IMAGES), "--output-dir", str(tuned), "--batch-size", "2", "--eval-freq", "0",
              "--threads", "1", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(["train", "--policy", "act", "--init-from", str(run), "--steps", "1", *common]) == 0
    assert main(["train", "--resume", "--steps", "2", *common]) == 0


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_save_delete_load_gives_identical_actions(tmp_path: Path, name: str) -> None:
    weights = backbone_file(tmp_path / "r18.pth")
    tiny = (dict(dim_model=16, n_heads=2, dim_feedforward=32, n_encoder_layers=1, n_vae_encoder_layers=1,
                 latent_dim=4, chunk_size=4, n_action_steps=4) if name == "act" else
            dict(horizon=8, n_action_steps=4, down_dims=(16, 32), diffusion_step_embed_dim=16, kernel_size=3,
                 n_groups=4, num_train_timesteps=10, spatial_softmax_num_keypoints=4, use_group_norm=False,
                 n_obs_steps=1))  # fmt: skip
    policy = make_policy(name, input_features=CAM, output_features=OUT, pretrained_backbone_weights=str(weights),
                         **tiny).eval()  # fmt: skip
    with torch.no_grad():  # "trained": the backbone is no longer the file's
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    policy.save_pretrained(tmp_path / "ckpt")
    weights.unlink()
    loaded = Policy.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(chunk(loaded), chunk(policy), rtol=0, atol=0)
    # A policy built to be trained from the config still reads the file: it is gone, and says so.
    with pytest.raises(FileNotFoundError):
        get_policy_class(name)(loaded.config)
    # What the loader builds with: the file not read, the value kept on the policy's config.
    built = build_for_weights(get_policy_class(name), loaded.config)
    assert built.config.pretrained_backbone_weights == str(weights)
