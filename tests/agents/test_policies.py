"""Each policy learns (overfits a tiny dataset), round-trips through save/load, and acts in the action space."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from tests.agents.conftest import DOF, ENV_DIM, synthetic_batch, synthetic_stats, tiny_config
from twinarm.agents.env_io import EnvAdapter
from twinarm.agents.features import features_from_spec, stats_from_spec
from twinarm.agents.policy import Policy, count_parameters
from twinarm.agents.registry import POLICIES, get_policy_class, make_policy
from twinarm.arms import get_arm

#: Optimizer steps and dataset size per policy (diffusion's noise-prediction loss needs the longest).
STEPS = {"act": 100, "diffusion": 700, "tdmpc": 250}
SAMPLES = {"act": 8, "diffusion": 4, "tdmpc": 8}


def _loss_at(policy: Policy, batch: dict, seed: int = 123) -> float:
    """Loss with a fixed seed, so stochastic objectives (VAE sample, noise level) compare like for like."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return float(policy(batch)[0])


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_overfits_tiny_dataset(name: str) -> None:
    torch.manual_seed(0)
    cfg = tiny_config(name)
    policy = make_policy(name, cfg, synthetic_stats())
    batch = synthetic_batch(cfg, n=SAMPLES[name])
    policy.train()
    first = _loss_at(policy, batch)
    opt = torch.optim.Adam(policy.get_optim_params(), lr=cfg.optimizer_lr)
    for _ in range(STEPS[name]):
        loss, info = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(policy, "update_target"):
            policy.update_target()
    last = _loss_at(policy, batch)
    assert np.isfinite(last) and last < first / 10, f"{name}: loss {first:.4f} -> {last:.4f}"


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("with_image", [False, True])
def test_save_load_round_trip_gives_identical_actions(name: str, with_image: bool, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_config(name, with_image=with_image)
    policy = make_policy(name, cfg, synthetic_stats(with_image))
    # Perturb every weight so an un-loaded (freshly initialised) model could not pass by accident.
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    policy.eval()
    batch = synthetic_batch(cfg, n=2, seed=1)
    obs = {k: (v[:, -1] if v.dim() > 2 + (k.startswith("observation.images")) * 2 else v) for k, v in batch.items()}
    obs = {k: v for k, v in obs.items() if k in cfg.input_features}
    if name == "tdmpc":
        obs = {k: batch[k][:, 0] for k in cfg.input_features}
    policy.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {"config.json", "model.safetensors", "normalization.safetensors"}
    loaded = Policy.from_pretrained(tmp_path / "ckpt")
    assert type(loaded) is get_policy_class(name)
    assert loaded.config == policy.config
    for a, b in zip(policy.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with torch.inference_mode():  # loaded there, its weights are inference tensors (no version counters)
        loaded_in_inference_mode = Policy.from_pretrained(tmp_path / "ckpt")
    actions = []
    for pol in (policy, loaded, loaded_in_inference_mode):
        pol.reset()
        torch.manual_seed(7)
        actions.append(torch.stack([pol.select_action(obs) for _ in range(3)]))
    assert actions[0].shape == (3, 2, DOF)
    assert torch.equal(actions[0], actions[1]) and torch.equal(actions[0], actions[2])
    # The stats travelled: a policy built without them acts differently.
    fresh = make_policy(name, tiny_config(name, with_image=with_image))
    fresh.load_state_dict(policy.state_dict())
    fresh.eval()
    fresh.reset()
    torch.manual_seed(7)
    assert not torch.equal(fresh.select_action(obs), actions[0][0])


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_select_action_lies_in_env_action_space(name: str) -> None:
    spec = get_arm("so101")
    inputs, outputs = features_from_spec(spec, obs_type="state", env_state_dim=ENV_DIM)
    from tests.agents.conftest import TINY
    from twinarm.agents.registry import get_config_class

    cfg = get_config_class(name)(input_features=inputs, output_features=outputs, **TINY[name])
    policy = make_policy(name, cfg, stats_from_spec(spec, ENV_DIM)).eval()
    # Push outputs far outside the limits; the adapter must still return in-space actions.
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p))
    obs_space = spec.observation_space("state", env_state_dim=ENV_DIM)
    obs_space.seed(0)
    adapter = EnvAdapter(spec, cfg.input_features)
    action_space: gym.spaces.Box = spec.action_space()
    policy.reset()
    for _ in range(4):
        action = adapter.action_to_env(policy.select_action(adapter.obs_to_batch(obs_space.sample())))
        assert action.shape == action_space.shape and action.dtype == np.float32
        assert action_space.contains(action)


def test_units_convert_once_at_the_env_boundary() -> None:
    spec = get_arm("so101")
    adapter = EnvAdapter(spec, features_from_spec(spec, obs_type="state", env_state_dim=3)[0])
    q = np.array([0.5, -0.2, 0.1, 0.0, 1.0, 0.4], dtype=np.float32)
    batch = adapter.obs_to_batch({"agent_pos": q, "environment_state": np.zeros(3, np.float32)})
    np.testing.assert_allclose(batch["observation.state"][0].numpy(), spec.to_lerobot(q), rtol=1e-6)
    back = adapter.action_to_env(torch.from_numpy(spec.to_lerobot(q))[None])
    np.testing.assert_allclose(back, q, rtol=1e-5)


@pytest.mark.parametrize("batched", [False, True])
def test_camera_frames_become_unit_floats_channels_first(batched: bool) -> None:
    """uint8 HWC frames -> (B, 3, H, W) floats equal to torch's x / 255 bit for bit (resized when the policy's
    image size differs), one batch row per env."""
    spec = get_arm("so101")
    inputs = features_from_spec(spec, obs_type="pixels_agent_pos", cameras=spec.resolve_cameras(image_size=(6, 8)))[0]
    adapter = EnvAdapter(spec, inputs)
    rng = np.random.default_rng(0)
    lead = (3,) if batched else ()
    frames = {c: rng.integers(0, 256, (*lead, 6, 8, 3), dtype=np.uint8) for c in ("front", "wrist")}
    batch = adapter.obs_to_batch({"agent_pos": np.zeros((*lead, 6), np.float32), "pixels": frames})
    for cam, f in frames.items():
        img = batch[f"observation.images.{cam}"]
        ref = torch.from_numpy(f if batched else f[None]).permute(0, 3, 1, 2).float().div(255.0)
        assert img.dtype == torch.float32 and img.shape == ((3 if batched else 1), 3, 6, 8)
        assert torch.equal(img, ref)
    small = EnvAdapter(spec, features_from_spec(spec, cameras=spec.resolve_cameras(image_size=(3, 4)))[0])
    one = {c: (f[0] if batched else f) for c, f in frames.items()}
    resized = small.obs_to_batch({"agent_pos": np.zeros(6, np.float32), "pixels": one})["observation.images.front"]
    assert resized.shape == (1, 3, 3, 4) and 0.0 <= float(resized.min()) <= float(resized.max()) <= 1.0


def test_default_architectures_match_lerobot_param_counts() -> None:
    """LeRobot defaults: ACT 51.6M (1 camera, 14-D state), Diffusion 263M; TD-MPC latent 50 / mlp 512."""
    from twinarm.agents.features import Feature

    inputs = {"observation.state": Feature("STATE", (14,)), "observation.images.top": Feature("VISUAL", (3, 240, 320))}
    outputs = {"action": Feature("ACTION", (14,))}
    act = make_policy("act", input_features=inputs, output_features=outputs)
    assert abs(count_parameters(act) / 1e6 - 51.6) < 0.1
    # With LeRobot's frozen batch norms (affine terms as buffers) the count is LeRobot 0.6.1's, to the unit.
    frozen = make_policy("act", input_features=inputs, output_features=outputs, backbone_norm="frozen_batch_norm")
    assert count_parameters(frozen) == 51_613_582
    diffusion = make_policy("diffusion", input_features=inputs, output_features=outputs)
    assert abs(count_parameters(diffusion) / 1e6 - 263) < 1.0
    tdmpc = make_policy("tdmpc", input_features=inputs, output_features=outputs)
    assert tdmpc.model.encoder.state[2].out_features == 50 and len(tdmpc.model.qs) == 5


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_eval_warm_up_leaves_the_random_state_and_the_policy_as_they_were(name: str) -> None:
    """`eval` runs one untimed select_action before the first episode (kernel and cache set-up); episodes must
    then draw exactly what they would have drawn without it."""
    from twinarm.agents.eval import warm_up

    spec = get_arm("so101")
    inputs, outputs = features_from_spec(spec, obs_type="state", env_state_dim=ENV_DIM)
    from tests.agents.conftest import TINY
    from twinarm.agents.registry import get_config_class

    cfg = get_config_class(name)(input_features=inputs, output_features=outputs, **TINY[name])
    policy = make_policy(name, cfg, stats_from_spec(spec, ENV_DIM)).eval()
    obs_space = spec.observation_space("state", env_state_dim=ENV_DIM)
    obs_space.seed(0)
    adapter = EnvAdapter(spec, cfg.input_features)
    batches = [adapter.obs_to_batch(obs_space.sample()) for _ in range(3)]

    def episode(warm: bool) -> torch.Tensor:
        torch.manual_seed(3)
        policy.reset()
        if warm:
            warm_up(policy, batches[-1])
        with torch.inference_mode():
            return torch.stack([policy.select_action(b) for b in batches])

    assert torch.equal(episode(warm=True), episode(warm=False))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_rescaled_joint_units_act_the_same_in_the_new_units(name: str, tmp_path: Path) -> None:
    """`rescale_joint_units(f)` (e.g. LeRobot's -100..100 range mode -> degrees): states given times f give
    actions times f, negative factors included, and the rescaled stats survive save/load."""
    torch.manual_seed(0)
    cfg = tiny_config(name)
    policy = make_policy(name, cfg, synthetic_stats())
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    policy.eval()
    batch = synthetic_batch(cfg, n=2, seed=1)
    if name == "tdmpc":
        obs = {k: batch[k][:, 0] for k in cfg.input_features}
    else:
        obs = {k: (v[:, -1] if v.dim() > 2 else v) for k, v in batch.items() if k in cfg.input_features}
    factors = torch.tensor([0.9, -1.3, 0.5, 2.0, -0.7, 1.0])
    policy.reset()
    torch.manual_seed(7)
    before = policy.select_action(obs)
    policy.rescale_joint_units(factors.numpy())
    policy.save_pretrained(tmp_path / "rescaled")
    for pol in (policy, Policy.from_pretrained(tmp_path / "rescaled")):
        pol.reset()
        torch.manual_seed(7)
        after = pol.select_action({**obs, "observation.state": obs["observation.state"] * factors})
        torch.testing.assert_close(after, before * factors, rtol=1e-4, atol=1e-4)


def test_eval_rescales_a_range_mode_checkpoint_with_the_arms_calibration(
    tiny_act_checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: ANN001
) -> None:
    """`eval --lerobot-range-units FILE`: the factors of that calibration, printed per joint; a file for other
    motors is refused naming what does not match."""
    import json

    from twinarm.cli.main import main
    from twinarm.real.calibration import Calibration

    units = json.loads((Path(__file__).parents[1] / "fixtures" / "lerobot_units.json").read_text())
    cal = tmp_path / "so101_follower.json"
    cal.write_text(json.dumps(units["so101"]["calibration"]))
    common = ["eval", "--policy", str(tiny_act_checkpoint()), "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1",
              "--n-envs", "1", "--videos", "0", "--max-steps", "4", "--out", str(tmp_path / "eval")]  # fmt: skip
    assert main([*common, "--lerobot-range-units", str(cal)]) == 0
    factors = Calibration.load(cal).degrees_per_range_unit(get_arm("so101"))
    assert f"joints from LeRobot's range mode to degrees (shoulder_pan x{factors[0]:.4f}, shoulder_lift x{factors[1]:.4f}" in capsys.readouterr().out
    cal.write_text(json.dumps({k: v for k, v in units["so101"]["calibration"].items() if k != "gripper"}))
    assert main([*common, "--lerobot-range-units", str(cal)]) != 0
    assert "missing motors ['gripper']" in capsys.readouterr().err
