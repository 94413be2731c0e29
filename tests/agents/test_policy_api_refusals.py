"""The policy API refuses, by name, what it used to answer wrongly or with a torch error from deep inside: calls
answered from the action queue with other inputs, observations of another env or with NaN joints, evaluations
of no episodes, an object-pose policy on the real arm."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from twinarm.agents.env_io import PolicyEnvMismatch
from twinarm.agents.eval import evaluate
from twinarm.agents.features import Feature
from twinarm.agents.policy import Policy
from twinarm.agents.registry import make_policy

PICK, REACH = "twinarm/SO101-PickCube-v0", "twinarm/SO101-Reach-v0"
TINY = dict(chunk_size=4, n_action_steps=4, dim_model=16, n_heads=2, dim_feedforward=32, n_encoder_layers=1,
            n_vae_encoder_layers=1, latent_dim=4)  # fmt: skip


def state_policy(env_dim: int = 7) -> Policy:
    inputs = {"observation.state": Feature("STATE", (6,)), "observation.environment_state": Feature("ENV", (env_dim,))}
    return make_policy("act", input_features=inputs, output_features={"action": Feature("ACTION", (6,))}, **TINY).eval()


def test_a_call_answered_from_the_queue_checks_its_inputs_and_batch_size() -> None:
    """They returned the queued action for `{}`, an env observation, or a batch of three after a batch of one."""
    policy = state_policy()
    one = {"observation.state": torch.zeros(1, 6), "observation.environment_state": torch.zeros(1, 7)}
    three = {k: v.repeat(3, 1) for k, v in one.items()}
    policy.reset()
    policy.select_action(one)
    with pytest.raises(ValueError, match="the batch lacks the policy's input"):
        policy.select_action({})
    with pytest.raises(ValueError, match="a batch of 3 where the queued actions are for 1: call policy.reset()"):
        policy.select_action(three)
    policy.reset()
    assert policy.select_action(three).shape == (3, 6)


def test_act_names_what_the_observation_lacks_or_sizes_differently() -> None:
    policy = state_policy()
    env = gym.make(PICK, obs_type="state")
    obs, _ = env.reset(seed=0)
    env.close()
    assert policy.act(obs).shape == (6,)
    cases = [
        ({"agent_pos": obs["agent_pos"]}, PolicyEnvMismatch, "reads observation.environment_state from "
         "'environment_state', which the observation lacks \\(an env made with obs_type='state' gives it\\)"),
        ({**obs, "environment_state": np.zeros(3, np.float32)}, PolicyEnvMismatch,
         "environment_state has shape \\(3,\\); the policy's observation.environment_state is 7-D"),
        ({**obs, "agent_pos": np.full(6, np.nan, np.float32)}, ValueError, "agent_pos holds non-finite values"),
        ([obs["agent_pos"]], TypeError, "the observation must be the env's dict"),
    ]  # fmt: skip
    for bad, kind, said in cases:
        policy.reset()
        with pytest.raises(kind, match=said):
            policy.act(bad)


def test_evaluate_refuses_no_episodes_and_an_object_pose_policy_on_the_real_arm() -> None:
    policy = state_policy(3)
    for n_episodes, n_envs in ((0, 1), (2, 0)):
        with pytest.raises(ValueError, match="n_episodes and n_envs must be at least 1"):
            evaluate(policy, REACH, n_episodes=n_episodes, n_envs=n_envs)
    with pytest.raises(PolicyEnvMismatch, match="reads observation.environment_state .* only the simulator has; "
                       "twinarm/SO101-Reach-Real-v0 is the real arm: evaluate it in sim"):  # fmt: skip
        evaluate(policy, "twinarm/SO101-Reach-Real-v0", n_episodes=1)


def test_eval_cli_refuses_an_object_pose_policy_on_the_real_arm_before_the_port(tmp_path, capsys) -> None:  # noqa: ANN001
    """The same rule and words as `evaluate`'s (the CLI had its own copy), before the port or calibration is read."""
    from twinarm.cli.main import main

    state_policy(3).save_pretrained(tmp_path / "p")
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(tmp_path / "p"), "--env", "twinarm/SO101-Reach-Real-v0", "--port",
              str(tmp_path / "no-port"), "--calibration", str(tmp_path / "no.json")])  # fmt: skip
    assert "only the simulator has; twinarm/SO101-Reach-Real-v0 is the real arm: evaluate it in sim" in \
        capsys.readouterr().err


def test_loading_names_what_does_not_fit(tmp_path) -> None:  # noqa: ANN001
    """A raw load_state_dict dump, safetensors' pin_memory error and a bare TypeError before, each now names its
    argument; the weights file given for its folder is pointed at the folder."""
    from twinarm.agents.policy import ConfigOverrideError

    state_policy().save_pretrained(tmp_path / "ckpt")
    with pytest.raises(ConfigOverrideError, match="weight\\(s\\) change shape .* the override\\(s\\) dim_model change the "
                       "architecture: only inference settings can be overridden"):  # fmt: skip
        Policy.from_pretrained(tmp_path / "ckpt", overrides={"dim_model": 32})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="map_location='cuda': torch .* sees no CUDA device"):
            Policy.from_pretrained(tmp_path / "ckpt", map_location="cuda")
    with pytest.raises(FileNotFoundError, match="model.safetensors is a file of the checkpoint .*: pass that folder"):
        Policy.from_pretrained(tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(ConfigOverrideError, match="dim_modl: no such act field \\(did you mean dim_model\\?\\)"):
        make_policy("act", dim_modl=3)
