"""Diffusion with `n_obs_steps=1` (a valid config, as in LeRobot) trains on camera datasets: twinarm's loop reads one
observation step without a time axis, (B, C, H, W), which the policy takes as (B, 1, C, H, W) (it folded the
channels into the batch: "expected input[1, 6, 16, 24] to have 3 channels"). And `crop_shape` larger than the images
is refused when the policy is built, naming the crop and each camera's size, before a run folder is written (it was
a bare torch error at the first step, or an off-centre slice at inference)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.agents.conftest import synthetic_stats, tiny_config
from twinarm.agents.diffusion.diffusion import DiffusionPolicy
from twinarm.agents.policy import Policy, PolicyConfigError
from twinarm.cli.main import main

IMAGES = Path(__file__).resolve().parents[1] / "fixtures/lerobot_v3/images"  # 2 episodes, a 16x24 wrist camera
TINY = ["--set", "down_dims=[16,32]", "--set", "horizon=8", "--set", "n_action_steps=4", "--set",
        "spatial_softmax_num_keypoints=4", "--set", "diffusion_step_embed_dim=16", "--set", "kernel_size=3",
        "--set", "n_groups=4", "--set", "num_train_timesteps=10"]  # fmt: skip


def _train(out: Path, *extra: str) -> int:
    return main(["train", "--policy", "diffusion", "--dataset", str(IMAGES), "--output-dir", str(out), "--steps", "2",
                 "--batch-size", "2", "--eval-freq", "0", "--threads", "1", "--device", "cpu", "--no-progress",
                 *TINY, *extra])  # fmt: skip


def test_one_observation_step_trains_on_a_camera_dataset(tmp_path: Path) -> None:
    assert _train(tmp_path / "run", "--set", "n_obs_steps=1") == 0
    policy = Policy.from_pretrained(tmp_path / "run")
    assert policy.config.n_obs_steps == 1
    one = {"observation.state": torch.randn(2, 3), "observation.images.wrist": torch.rand(2, 3, 16, 24)}
    stacked = {k: v[:, None] for k, v in one.items()}

    def chunk(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return policy.predict_action_chunk(batch, generator=torch.Generator().manual_seed(0))

    # One env step's observation (the prefetcher's and int8 calibration's input) is the one-step stack.
    torch.testing.assert_close(chunk(one), chunk(stacked), rtol=0, atol=0)
    assert chunk(one).shape == (2, 4, 3)


def test_a_batch_without_the_step_axis_is_the_one_step_stack() -> None:
    """The loss on (B, ...) observations equals the loss on (B, 1, ...), state and images alike."""
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_config("diffusion", with_image=True, n_obs_steps=1), synthetic_stats(True))
    g = torch.Generator().manual_seed(1)
    flat = {"observation.state": torch.randn(3, 6, generator=g) * 30,
            "observation.environment_state": torch.randn(3, 7, generator=g) * 0.2,
            "observation.images.front": torch.rand(3, 3, 48, 48, generator=g),
            "action": torch.randn(3, 8, 6, generator=g) * 30}  # fmt: skip
    stacked = {k: v if k == "action" else v[:, None] for k, v in flat.items()}
    losses = []
    for batch in (flat, stacked):
        torch.manual_seed(2)  # the same noise and timesteps
        losses.append(policy(batch)[0])
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)


def test_more_steps_refuse_a_batch_without_the_step_axis() -> None:
    policy = DiffusionPolicy(tiny_config("diffusion", with_image=True, n_obs_steps=2), synthetic_stats(True))
    batch = {"observation.state": torch.zeros(2, 2, 6), "observation.environment_state": torch.zeros(2, 2, 7),
             "observation.images.front": torch.rand(2, 3, 48, 48), "action": torch.zeros(2, 8, 6)}  # fmt: skip
    with pytest.raises(ValueError, match=r"observation.images.front: shape \(2, 3, 48, 48\) has no observation-step "
                       r"axis; with n_obs_steps=2 Diffusion needs \(B, 2, 3, 48, 48\)"):  # fmt: skip
        policy(batch)


@pytest.mark.parametrize(("crop", "said"), [
    ([20, 20], "crop_shape=[20, 20] (height, width) is larger than the images (observation.images.wrist is 16x24, "
               "height x width)"),
    ([16, 25], "crop_shape=[16, 25] (height, width) is larger than the images"),
    ([0, 8], "crop_shape=[0, 8]: expected two positive whole numbers"),
])  # fmt: skip
def test_a_crop_larger_than_the_images_is_refused_before_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], crop: list[int], said: str
) -> None:
    out = tmp_path / "run"
    assert _train(out, "--set", f"crop_shape={crop}") == 1
    assert said in capsys.readouterr().err
    assert not out.exists()


def test_crop_is_checked_against_every_camera_when_built() -> None:
    config = tiny_config("diffusion", with_image=True, crop_shape=(48, 49))  # the camera is 48x48
    with pytest.raises(PolicyConfigError, match=r"observation.images.front is 48x48"):
        DiffusionPolicy(config)
    DiffusionPolicy(tiny_config("diffusion", with_image=True, crop_shape=(48, 48)))  # the whole image fits
