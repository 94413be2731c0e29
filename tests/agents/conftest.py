"""Tiny policy configs and synthetic batches shared by the agents tests (fast on 2 CPU cores)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import twinarm  # noqa: F401  (registers the env ids the fixtures make)
from twinarm.agents.features import Feature
from twinarm.agents.registry import get_config_class

PICK = "twinarm/SO101-PickCube-v0"
DOF = 6
ENV_DIM = 7
IMG = (3, 48, 48)

#: Small architecture overrides per policy; same code paths as the defaults, far fewer parameters.
TINY: dict[str, dict] = {
    "act": dict(
        chunk_size=8, n_action_steps=8, dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1,
        n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=4, dropout=0.0, optimizer_lr=1e-3,
        optimizer_lr_backbone=1e-3, kl_weight=1.0,
    ),
    "diffusion": dict(
        horizon=8, n_action_steps=4, down_dims=(32, 64), diffusion_step_embed_dim=16, kernel_size=3,
        n_groups=4, num_train_timesteps=20, spatial_softmax_num_keypoints=4, optimizer_lr=1e-3,
    ),
    "tdmpc": dict(
        horizon=3, latent_dim=16, mlp_dim=32, state_encoder_hidden_dim=32, image_encoder_hidden_dim=8,
        n_gaussian_samples=32, n_pi_samples=4, n_elites=8, cem_iterations=2, q_ensemble_size=2,
        optimizer_lr=1e-3,
    ),
}  # fmt: skip


def features(with_image: bool = False) -> tuple[dict[str, Feature], dict[str, Feature]]:
    inputs = {"observation.state": Feature("STATE", (DOF,)), "observation.environment_state": Feature("ENV", (ENV_DIM,))}
    if with_image:
        inputs["observation.images.front"] = Feature("VISUAL", IMG)
    return inputs, {"action": Feature("ACTION", (DOF,))}


def tiny_config(name: str, with_image: bool = False, **overrides: object):
    inputs, outputs = features(with_image)
    return get_config_class(name)(input_features=inputs, output_features=outputs, **{**TINY[name], **overrides})


def synthetic_stats(with_image: bool = False) -> dict[str, dict[str, np.ndarray]]:
    def stat(n: int, scale: float) -> dict[str, np.ndarray]:
        return {
            "mean": np.zeros(n, np.float32),
            "std": np.full(n, scale, np.float32),
            "min": np.full(n, -2 * scale, np.float32),
            "max": np.full(n, 2 * scale, np.float32),
        }

    stats = {"observation.state": stat(DOF, 30.0), "observation.environment_state": stat(ENV_DIM, 0.2), "action": stat(DOF, 30.0)}
    if with_image:
        stats["observation.images.front"] = {k: v[:3].reshape(3, 1, 1) * 0 + (0.5 if k != "std" else 0.25) for k, v in stat(3, 1.0).items()}
    return stats


def synthetic_batch(config, n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """A small learnable dataset: actions are a smooth function of the (time-stacked) observations."""
    g = torch.Generator().manual_seed(seed)
    t_obs = len(config.observation_delta_indices()) if config.n_obs_steps > 1 or config.type == "tdmpc" else 0
    t_act = len(config.action_delta_indices())
    lead = (n, t_obs) if t_obs else (n,)
    state = torch.randn(*lead, DOF, generator=g) * 30
    env = torch.randn(*lead, ENV_DIM, generator=g) * 0.2
    base = (state if not t_obs else state[:, -1 if config.type != "tdmpc" else 0]) / 30
    steps = torch.linspace(0, 1, t_act)[None, :, None]
    action = 30 * torch.tanh(base[:, None, :] * (1 + steps))
    batch = {
        "observation.state": state,
        "observation.environment_state": env,
        "action": action,
        "action_is_pad": torch.zeros(n, t_act, dtype=torch.bool),
    }
    if "observation.images.front" in config.input_features:
        batch["observation.images.front"] = torch.rand(*lead, *IMG, generator=g)
    if config.type == "tdmpc":
        batch["action"] = action.clamp(-59, 59)
        batch["next.reward"] = -action.abs().mean(-1) / 30
    return batch


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def scripted_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scripted PickCube episodes with state observations, in LeRobot units (recorded once per session)."""
    from twinarm.arms import get_arm
    from twinarm.datasets_io.recorder import gym_frame, record
    from twinarm.datasets_io.writer import DatasetWriter
    from twinarm.envs.experts import make_expert

    root = tmp_path_factory.mktemp("data") / "pick2"
    spec = get_arm("so101")
    env = gym.make(PICK, obs_type="state")
    dim = env.observation_space["environment_state"].shape[0]
    env.close()
    writer = DatasetWriter.create(root, spec.control_hz, spec.lerobot_features(cameras=(), env_state_dim=dim),
                                  robot_type=spec.robot_type)
    record(partial(gym.make, PICK, obs_type="state"), make_expert, writer, episodes=2, task="Pick up the cube.",
           to_frame=partial(gym_frame, convert=spec.to_lerobot), progress=False)
    writer.finalize()
    return root


@pytest.fixture
def one_core_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every policy call sees exactly one core kept busy by others (the machine's busy time less the call's own =
    the call's wall time), whatever this machine's real load, and the thread budget decides after every call.
    Faked at the sample: the calls these tests time last a few ms, the size of the scheduling noise between
    the readings of /proc a real sample takes."""
    import time

    from twinarm.agents import thread_budget

    monkeypatch.setattr(thread_budget, "WINDOW_S", 0.0)
    monkeypatch.setattr(thread_budget.ThreadBudget, "_sample", lambda self: (time.monotonic(),) * 2 + (0.0,))
