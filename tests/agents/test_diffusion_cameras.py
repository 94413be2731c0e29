"""Diffusion with several cameras, as LeRobot builds it: one image encoder per camera by default (or one shared),
and the cameras in the order the config lists them (their features are concatenated into the conditioning, so a
LeRobot checkpoint listing `wrist` before `front`, or a dataset whose cameras are not in sorted order, must not be
re-sorted). Against the real `lerobot` where its venv is installed (TWINARM_LEROBOT_PYTHON, default
/root/lerobot-venv/bin/python): both directions, load and export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.agents.test_lerobot_export import OUT, TINY, stats
from twinarm.agents.features import Feature
from twinarm.agents.lerobot_checkpoint import load_lerobot
from twinarm.agents.lerobot_export import save_lerobot
from twinarm.agents.registry import make_policy

ROOT = Path(__file__).parents[2]
LEROBOT_PYTHON = Path(os.environ.get("TWINARM_LEROBOT_PYTHON", "/root/lerobot-venv/bin/python"))
CAM = Feature("VISUAL", (3, 48, 64))
WRIST_FIRST = {"observation.state": Feature("STATE", (6,)), "observation.images.wrist": CAM, "observation.images.front": CAM}
NOISE = 3


def diffusion(features: dict[str, Feature], **overrides):  # noqa: ANN003, ANN201
    torch.manual_seed(0)
    tiny = {**TINY["diffusion"], "crop_shape": None, "spatial_softmax_num_keypoints": 8, **overrides}
    return make_policy("diffusion", input_features=features, output_features=OUT, stats=stats(features), **tiny).eval()


def images() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"observation.state": torch.randn(2, 2, 6, generator=g) * 20,
            "a": torch.rand(2, 2, 3, 48, 64, generator=g), "b": torch.rand(2, 2, 3, 48, 64, generator=g)}  # fmt: skip


def chunk(policy, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # noqa: ANN001
    return policy.predict_action_chunk(batch, generator=torch.Generator().manual_seed(NOISE))


def test_diffusion_stacks_cameras_in_the_listed_order() -> None:
    """The same weights listed wrist-first and front-first: the first-listed camera takes the first slot, so
    giving each the other's images yields the same chunk, and giving both the same images does not."""
    wrist_first = diffusion(WRIST_FIRST)
    front_first = diffusion({k: WRIST_FIRST[k] for k in ("observation.state", "observation.images.front",
                                                        "observation.images.wrist")})  # fmt: skip
    front_first.load_state_dict(wrist_first.state_dict())
    assert wrist_first.config.image_keys == ["observation.images.wrist", "observation.images.front"]
    x = images()
    a = {"observation.state": x["observation.state"], "observation.images.wrist": x["a"], "observation.images.front": x["b"]}
    b = {"observation.state": x["observation.state"], "observation.images.front": x["a"], "observation.images.wrist": x["b"]}
    torch.testing.assert_close(chunk(wrist_first, a), chunk(front_first, b))
    assert not torch.allclose(chunk(wrist_first, a), chunk(front_first, a), atol=1e-3)


def test_each_camera_has_its_own_encoder_by_default() -> None:
    """LeRobot's default: the encoders start alike (one seed) but are separate weights; shared: one encoder."""
    separate, shared = diffusion(WRIST_FIRST), diffusion(WRIST_FIRST, use_separate_rgb_encoder_per_camera=False)
    assert len(separate.model.rgbs) == 2 and not hasattr(separate.model, "rgb") and not hasattr(shared.model, "rgbs")
    encoder = sum(p.numel() for p in shared.model.rgb.parameters())
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in shared.parameters()) == encoder
    x = images()
    batch = {"observation.state": x["observation.state"], "observation.images.wrist": x["a"], "observation.images.front": x["b"]}
    before = chunk(separate, batch)
    with torch.no_grad():
        separate.model.rgbs[1].out.bias.add_(1.0)  # the front camera's encoder only
    assert not torch.allclose(chunk(separate, batch), before, atol=1e-3)


@pytest.mark.parametrize("separate", [True, False], ids=["separate", "shared"])
def test_the_order_and_encoders_survive_both_checkpoint_formats(tmp_path: Path, separate: bool) -> None:
    policy = diffusion(WRIST_FIRST, use_separate_rgb_encoder_per_camera=separate)
    with torch.no_grad():
        for p in policy.parameters():  # no two encoders alike, so a swap would show
            p.add_(torch.randn_like(p) * 0.01)
    policy.save_pretrained(tmp_path / "tw")
    save_lerobot(policy, tmp_path / "lr")
    x = images()
    batch = {"observation.state": x["observation.state"], "observation.images.wrist": x["a"], "observation.images.front": x["b"]}
    for again in (type(policy).from_pretrained(tmp_path / "tw"), load_lerobot(tmp_path / "lr")):
        assert again.config.image_keys == policy.config.image_keys
        assert again.config.use_separate_rgb_encoder_per_camera == separate
        torch.testing.assert_close(chunk(again, batch), chunk(policy, batch))


def test_a_checkpoint_saved_before_the_option_existed_shares_one_encoder(tmp_path: Path) -> None:
    policy = diffusion(WRIST_FIRST, use_separate_rgb_encoder_per_camera=False)
    policy.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old/config.json").read_text())
    del config["use_separate_rgb_encoder_per_camera"]
    (tmp_path / "old/config.json").write_text(json.dumps(config))
    assert type(policy).from_pretrained(tmp_path / "old").config.use_separate_rgb_encoder_per_camera is False


LEROBOT_SIDE = """
import sys, torch
from pathlib import Path
root, tmp = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(root))
from safetensors.torch import load_file, save_file
from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
from lerobot.policies.factory import make_pre_post_processors
from tools.make_lerobot_policy_fixtures import EXTRA_CASES
for case in ("diffusion_cameras", "diffusion_cameras_shared"):  # LeRobot's own checkpoints, with their chunks
    EXTRA_CASES[case](tmp / case)
src = tmp / "lr"  # twinarm's export, run by LeRobot on the inputs twinarm saved
policy = DiffusionPolicy.from_pretrained(src).eval()
pre, post = make_pre_post_processors(policy.config, pretrained_path=str(src))
io = load_file(str(tmp / "io.safetensors"))
with torch.no_grad():
    chunk = post(policy.predict_action_chunk(pre({k: v for k, v in io.items() if k.startswith("observation.")}),
                                             noise=io["noise"]))
print(list(policy.config.image_features), len(policy.diffusion.rgb_encoder))
save_file({"action_chunk": chunk.contiguous()}, str(tmp / "out.safetensors"))
"""


@pytest.fixture(scope="module")
def lerobot_side(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One lerobot process for both directions (its import and ResNet-18s take most of the time): it writes
    LeRobot's two-camera checkpoints and runs twinarm's export of `diffusion(WRIST_FIRST)`; skipped without it."""
    if not LEROBOT_PYTHON.exists():
        pytest.skip(f"no lerobot venv at {LEROBOT_PYTHON} (TWINARM_LEROBOT_PYTHON)")
    tmp = tmp_path_factory.mktemp("lerobot_side")
    policy = diffusion(WRIST_FIRST)
    save_lerobot(policy, tmp / "lr")
    noise = torch.randn(2, policy.config.horizon, 6, generator=torch.Generator().manual_seed(NOISE))
    save_file({**wrist_first_batch(), "noise": noise}, str(tmp / "io.safetensors"))
    run = subprocess.run([str(LEROBOT_PYTHON), "-c", LEROBOT_SIDE, str(ROOT), str(tmp)], capture_output=True,
                         text=True, cwd="/")  # fmt: skip
    if "No module named 'lerobot'" in run.stderr:
        pytest.skip(f"lerobot does not import in {LEROBOT_PYTHON}")
    assert run.returncode == 0, run.stderr[-2000:]
    return tmp, run.stdout


def wrist_first_batch() -> dict[str, torch.Tensor]:
    x = images()
    return {"observation.state": x["observation.state"], "observation.images.wrist": x["a"], "observation.images.front": x["b"]}


def test_lerobot_checkpoints_listing_wrist_first_predict_lerobots_chunk(lerobot_side: tuple[Path, str]) -> None:
    """LeRobot's defaults (an encoder per camera) and one shared encoder, both written by LeRobot itself."""
    tmp, _ = lerobot_side
    for case, separate in {"diffusion_cameras": True, "diffusion_cameras_shared": False}.items():
        policy = load_lerobot(tmp / case / "pretrained_model")
        assert policy.config.image_keys == ["observation.images.wrist", "observation.images.front"]
        assert hasattr(policy.model, "rgbs") == separate
        io = load_file(str(tmp / case / "io.safetensors"))
        got = chunk(policy, {k: v for k, v in io.items() if k.startswith("observation.")})
        torch.testing.assert_close(got, io["action_chunk"], atol=2e-4, rtol=1e-5, msg=case)


def test_an_export_listing_wrist_first_runs_in_lerobot_as_in_twinarm(lerobot_side: tuple[Path, str]) -> None:
    tmp, printed = lerobot_side
    assert "['observation.images.wrist', 'observation.images.front'] 2" in printed  # two encoders, LeRobot's default
    want = load_file(str(tmp / "out.safetensors"))["action_chunk"]
    torch.testing.assert_close(chunk(diffusion(WRIST_FIRST), wrist_first_batch()), want, atol=2e-4, rtol=1e-5)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
