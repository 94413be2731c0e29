"""Make the LeRobot-written policy fixtures with the real `lerobot` package (run with the lerobot venv).

    /root/lerobot-venv/bin/python tools/make_lerobot_policy_fixtures.py [--out tests/fixtures/lerobot_policies]

Writes, per case, a checkpoint folder as LeRobot saves one (`pretrained_model/`: config.json, model.safetensors,
the pre/post-processor JSON and stats files) and `io.safetensors`: raw inputs in dataset units and the chunk
LeRobot's own pipeline (preprocessor, `predict_action_chunk`, postprocessor) returns for them, so twinarm's tests
can check that it reads the checkpoint as the same policy without lerobot installed. The networks are small
(no camera: a ResNet-18 alone would be 44 MB) and randomly initialized, with non-trivial normalization stats.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

STATE, ENV = 6, 7  # SO-101's joints; SO101-PickCube's environment state (cube pose)


def act_case(out: Path) -> None:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors
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
    stats = {
        "observation.state": {"mean": torch.linspace(-10, 10, STATE), "std": torch.linspace(1, 3, STATE)},
        "observation.environment_state": {"mean": torch.linspace(-0.2, 0.2, ENV), "std": torch.linspace(0.05, 0.1, ENV)},
        "action": {"mean": torch.linspace(-5, 5, STATE), "std": torch.linspace(2, 4, STATE)},
    }
    for s in stats.values():  # every stat LeRobot's datasets carry
        s["min"], s["max"] = s["mean"] - 3 * s["std"], s["mean"] + 3 * s["std"]
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    model_dir = out / "pretrained_model"
    policy.save_pretrained(model_dir)
    pre.save_pretrained(model_dir)
    post.save_pretrained(model_dir)
    g = torch.Generator().manual_seed(1)
    raw = {"observation.state": torch.randn(2, STATE, generator=g) * 20,
           "observation.environment_state": torch.randn(2, ENV, generator=g) * 0.1}  # fmt: skip
    with torch.no_grad():
        chunk = post(policy.predict_action_chunk(pre(dict(raw))))
    save_file({**raw, "action_chunk": chunk.contiguous()}, out / "io.safetensors")


CASES = {"act_state": act_case}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/fixtures/lerobot_policies")
    args = p.parse_args()
    for name, make in CASES.items():
        make(args.out / name)
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
