"""Shared test setup: headless rendering and the list of registered env ids."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


@pytest.fixture
def tiny_act_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """`make(dof=6, cameras=(), image=(48, 64))` saves a random-init ACT small enough for CLI tests (joint state,
    the named cameras; for the SO-101, or ALOHA at 14 joints) and returns its checkpoint directory."""

    def make(dof: int = 6, cameras: tuple[str, ...] = (), image: tuple[int, int] = (48, 64)) -> Path:
        from twinarm.agents.features import Feature
        from twinarm.agents.registry import make_policy

        inputs = {"observation.state": Feature("STATE", (dof,))}
        inputs |= {f"observation.images.{c}": Feature("VISUAL", (3, *image)) for c in cameras}
        path = tmp_path / ("act_" + "_".join(("state", *cameras)))
        make_policy("act", input_features=inputs, output_features={"action": Feature("ACTION", (dof,))},
                    arm="aloha" if dof == 14 else "so101", chunk_size=4, n_action_steps=4, dim_model=16, n_heads=2,
                    dim_feedforward=32, n_encoder_layers=1, n_vae_encoder_layers=1, latent_dim=4,
                    ).save_pretrained(path)  # fmt: skip
        return path

    return make
