"""Make the LeRobot-written policy fixtures with the real `lerobot` package (run with the lerobot venv).

    /root/lerobot-venv/bin/python tools/make_lerobot_policy_fixtures.py [--out tests/fixtures/lerobot_policies]

Writes, per case, a checkpoint folder as LeRobot saves one (`pretrained_model/`: config.json, model.safetensors,
the pre/post-processor JSON and stats files) and `io.safetensors`: raw inputs in dataset units and the chunk
LeRobot's own pipeline (preprocessor, `predict_action_chunk`, postprocessor) returns for them (Diffusion: from
noise drawn by a generator seeded with NOISE_SEED; TD-MPC: its world model's outputs), so twinarm's tests
can check that it reads the checkpoint as the same policy without lerobot installed. The networks are small
(no camera: a ResNet-18 alone would be 44 MB) and randomly initialized, with non-trivial normalization stats.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

STATE, ENV = 6, 7  # SO-101's joints; SO101-PickCube's environment state (cube pose)


def act_case(out: Path) -> None:
    """A state and environment-state ACT (no camera): its chunk for two inputs."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from safetensors.torch import save_file

    torch.manual_seed(0)
    cfg = ACTConfig(
        input_features={
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE,)),
            "observation.environment_state": PolicyFeature(type=FeatureType.ENV, shape=(ENV,)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(STATE,))},
        pretrained_backbone_weights=None, device="cpu", dim_model=32, n_heads=2, dim_feedforward=64, chunk_size=10,
        n_action_steps=10, latent_dim=8, n_encoder_layers=2, n_vae_encoder_layers=2,
    )  # fmt: skip
    policy = ACTPolicy(cfg).eval()
    pre, post = _save(out, policy, cfg, _stats({"observation.state": STATE, "observation.environment_state": ENV,
                                                "action": STATE}))  # fmt: skip
    g = torch.Generator().manual_seed(1)
    raw = {"observation.state": torch.randn(2, STATE, generator=g) * 20,
           "observation.environment_state": torch.randn(2, ENV, generator=g) * 0.1}  # fmt: skip
    with torch.no_grad():
        chunk = post(policy.predict_action_chunk(pre(dict(raw))))
    save_file({**raw, "action_chunk": chunk.contiguous()}, out / "io.safetensors")


def _stats(keys: dict[str, int]) -> dict[str, dict[str, torch.Tensor]]:
    """Non-trivial stats (every one LeRobot's datasets carry) for features of these sizes."""
    stats = {}
    for i, (key, n) in enumerate(keys.items()):
        mean, std = torch.linspace(-5.0 - i, 5.0 + i, n), torch.linspace(1.0, 3.0 + i, n)
        stats[key] = {"mean": mean, "std": std, "min": mean - 3 * std, "max": mean + 3 * std}
    return stats


def _save(out: Path, policy, cfg, stats):  # noqa: ANN001, ANN202
    """Save the policy and its processors (built from `stats`) as LeRobot does; returns the processors."""
    from lerobot.policies.factory import make_pre_post_processors

    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(out / "pretrained_model")
    pre.save_pretrained(out / "pretrained_model")
    post.save_pretrained(out / "pretrained_model")
    return pre, post


def diffusion_case(out: Path) -> None:
    """DDIM at 10 steps from explicit noise: the chunk is then a function of the inputs and that noise."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from safetensors.torch import save_file

    torch.manual_seed(0)
    cfg = DiffusionConfig(
        input_features={
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE,)),
            "observation.environment_state": PolicyFeature(type=FeatureType.ENV, shape=(ENV,)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(STATE,))},
        device="cpu", down_dims=(16, 32), horizon=16, n_action_steps=8, diffusion_step_embed_dim=16, kernel_size=3,
        n_groups=4, noise_scheduler_type="DDIM", num_inference_steps=10,
    )  # fmt: skip
    policy = DiffusionPolicy(cfg).eval()
    stats = _stats({"observation.state": STATE, "observation.environment_state": ENV, "action": STATE})
    pre, post = _save(out, policy, cfg, stats)
    g = torch.Generator().manual_seed(1)
    raw = {"observation.state": torch.randn(2, cfg.n_obs_steps, STATE, generator=g) * 20,
           "observation.environment_state": torch.randn(2, cfg.n_obs_steps, ENV, generator=g) * 0.1}  # fmt: skip
    noise = torch.randn(2, cfg.horizon, STATE, generator=torch.Generator().manual_seed(NOISE_SEED))
    with torch.no_grad():
        chunk = post(policy.predict_action_chunk(pre(dict(raw)), noise=noise))
    save_file({**raw, "action_chunk": chunk.contiguous()}, out / "io.safetensors")


def tdmpc_case(out: Path) -> None:
    """The world model's parts on fixed latents and actions (planning itself draws random samples)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.tdmpc.configuration_tdmpc import TDMPCConfig
    from lerobot.policies.tdmpc.modeling_tdmpc import TDMPCPolicy
    from safetensors.torch import save_file

    torch.manual_seed(0)
    cfg = TDMPCConfig(
        input_features={"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE,))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(STATE,))},
        device="cpu", latent_dim=16, mlp_dim=32, state_encoder_hidden_dim=32,
    )  # fmt: skip
    policy = TDMPCPolicy(cfg).eval()
    stats = _stats({"observation.state": STATE, "action": STATE})
    pre, _ = _save(out, policy, cfg, stats)
    g = torch.Generator().manual_seed(1)
    raw = {"observation.state": torch.randn(3, STATE, generator=g) * 20}
    a = torch.rand(3, STATE, generator=g) * 2 - 1  # normalized actions
    m = policy.model
    with torch.no_grad():
        z = m.encode(pre(dict(raw)))
        z_next, reward = m.latent_dynamics_and_reward(z, a)
        tensors = {"z": z, "action_normalized": a, "z_next": z_next, "reward": reward, "qs": m.Qs(z, a), "v": m.V(z),
                   "pi": m.pi(z)}  # fmt: skip
    save_file({**raw, **{k: v.contiguous() for k, v in tensors.items()}}, out / "io.safetensors")


def tdmpc_camera_case(out: Path) -> None:
    """TD-MPC with LeRobot's one camera key, `observation.image` (84x84), and the state: the latent it encodes."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.tdmpc.configuration_tdmpc import TDMPCConfig
    from lerobot.policies.tdmpc.modeling_tdmpc import TDMPCPolicy
    from safetensors.torch import save_file

    torch.manual_seed(0)
    cfg = TDMPCConfig(
        input_features={"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE,)),
                        "observation.image": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 84, 84))},
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(STATE,))},
        device="cpu", latent_dim=16, mlp_dim=32, state_encoder_hidden_dim=32, image_encoder_hidden_dim=8,
    )  # fmt: skip
    policy = TDMPCPolicy(cfg).eval()
    stats = _stats({"observation.state": STATE, "action": STATE})
    stats["observation.image"] = {"mean": torch.full((3, 1, 1), 0.4), "std": torch.full((3, 1, 1), 0.2),
                                  "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}  # fmt: skip
    pre, _ = _save(out, policy, cfg, stats)
    g = torch.Generator().manual_seed(1)
    raw = {"observation.state": torch.randn(3, STATE, generator=g) * 20,
           "observation.image": torch.rand(3, 3, 84, 84, generator=g)}  # fmt: skip
    with torch.no_grad():
        z = policy.model.encode(pre(dict(raw)))
    save_file({**raw, "z": z.contiguous()}, out / "io.safetensors")


def diffusion_cameras_case(out: Path, separate: bool = True) -> None:
    """Diffusion with two 48x64 cameras listed wrist first (not sorted): LeRobot stacks them in that order, each
    through its own encoder (`separate`, LeRobot's default) or one shared. A ResNet-18 is 44 MB, so these cases
    are not kept in git: tests write them to a temporary folder when lerobot is installed
    (tests/agents/test_diffusion_cameras.py)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from safetensors.torch import save_file

    torch.manual_seed(0)
    cameras = [f"observation.images.{name}" for name in ("wrist", "front")]
    features = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE,))}
    features.update({key: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 48, 64)) for key in cameras})
    cfg = DiffusionConfig(
        input_features=features, output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(STATE,))},
        device="cpu", down_dims=(16, 32), horizon=16, n_action_steps=8, diffusion_step_embed_dim=16, kernel_size=3,
        n_groups=4, noise_scheduler_type="DDIM", num_inference_steps=10, crop_shape=None,
        pretrained_backbone_weights=None, use_separate_rgb_encoder_per_camera=separate, spatial_softmax_num_keypoints=8,
    )  # fmt: skip
    policy = DiffusionPolicy(cfg).eval()
    stats = _stats({"observation.state": STATE, "action": STATE})
    for i, key in enumerate(cameras):  # unequal per camera, so a swap shows in the normalized images too
        stats[key] = {"mean": torch.full((3, 1, 1), 0.3 + 0.2 * i), "std": torch.full((3, 1, 1), 0.2 + 0.1 * i),
                      "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}  # fmt: skip
    pre, post = _save(out, policy, cfg, stats)
    g = torch.Generator().manual_seed(1)
    raw = {"observation.state": torch.randn(2, cfg.n_obs_steps, STATE, generator=g) * 20}
    raw.update({key: torch.rand(2, cfg.n_obs_steps, 3, 48, 64, generator=g) for key in cameras})
    noise = torch.randn(2, cfg.horizon, STATE, generator=torch.Generator().manual_seed(NOISE_SEED))
    with torch.no_grad():
        chunk = post(policy.predict_action_chunk(pre(dict(raw)), noise=noise))
    save_file({**raw, "action_chunk": chunk.contiguous()}, out / "io.safetensors")


def act_rename_map_case(out: Path) -> None:
    """An ACT with two 48x64 cameras (front, wrist) saved as `lerobot-train --policy.path=... --rename_map=...`
    (0.6.1) saves a fine-tune on a dataset whose cameras are `laptop`/`phone`: the preprocessor renames them onto
    the policy's cameras, but the normalizer's stats stay under the dataset's keys, so LeRobot never normalizes
    the images (its normalizer skips features without stats); `train_config.json` holds the rename map. Its chunk
    is LeRobot's for inputs under the policy's keys (as an env gives them). Not kept in git (a ResNet-18):
    tests/agents/test_lerobot_rename_map.py writes it when lerobot is installed."""
    import json

    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors.torch import save_file

    rename = {"observation.images.laptop": "observation.images.front", "observation.images.phone": "observation.images.wrist"}
    torch.manual_seed(0)
    features = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(STATE,))}
    features.update({key: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 48, 64)) for key in rename.values()})
    cfg = ACTConfig(
        input_features=features, output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(STATE,))},
        pretrained_backbone_weights=None, device="cpu", dim_model=32, n_heads=2, dim_feedforward=64, chunk_size=10,
        n_action_steps=10, latent_dim=8, n_encoder_layers=2, n_vae_encoder_layers=2,
    )  # fmt: skip
    policy = ACTPolicy(cfg).eval()
    stats = _stats({"observation.state": STATE, "action": STATE})
    for i, key in enumerate(rename):  # the dataset's camera keys
        stats[key] = {"mean": torch.full((3, 1, 1), 0.3 + 0.2 * i), "std": torch.full((3, 1, 1), 0.2 + 0.1 * i),
                      "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}  # fmt: skip
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats,
                                         preprocessor_overrides={"rename_observations_processor": {"rename_map": rename}})  # fmt: skip
    for part in (policy, pre, post):
        part.save_pretrained(out / "pretrained_model")
    (out / "pretrained_model" / "train_config.json").write_text(json.dumps({"rename_map": rename}, indent=4))
    g = torch.Generator().manual_seed(1)
    raw = {"observation.state": torch.randn(2, STATE, generator=g) * 20}
    raw.update({key: torch.rand(2, 3, 48, 64, generator=g) for key in rename.values()})
    with torch.no_grad():
        chunk = post(policy.predict_action_chunk(pre(dict(raw))))
    save_file({**raw, "action_chunk": chunk.contiguous()}, out / "io.safetensors")


NOISE_SEED = 3  # the generator seed of the diffusion case's initial noise
CASES = {"act_state": act_case, "diffusion_state": diffusion_case, "tdmpc_state": tdmpc_case,
         "tdmpc_camera": tdmpc_camera_case}  # fmt: skip
EXTRA_CASES = {"diffusion_cameras": diffusion_cameras_case,  # too large for git; written on demand
               "diffusion_cameras_shared": lambda out: diffusion_cameras_case(out, separate=False),
               "act_rename_map": act_rename_map_case}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/lerobot_policies")
    p.add_argument("--case", action="append", choices=sorted({**CASES, **EXTRA_CASES}),
                   help="write only this case (repeatable; default: every case kept in git)")
    args = p.parse_args()
    for name in args.case or CASES:
        {**CASES, **EXTRA_CASES}[name](args.out / name)
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
