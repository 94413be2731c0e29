"""`benchmarks/object_grounding.py`: a chunk that ignores the object's pose does not move when it is swapped,
one that reads it does; both imitation policies' observation layouts (stacked or not) go through."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from tests.agents.conftest import TINY
from twinarm.agents.features import ENV_STATE, split_features
from twinarm.agents.registry import get_config_class, get_policy_class
from twinarm.datasets_io.reader import LeRobotDatasetReader

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "object_grounding.py"
_spec = importlib.util.spec_from_file_location("object_grounding", _PATH)
assert _spec is not None and _spec.loader is not None
grounding_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(grounding_script)


def _policy(name: str, root: Path, **overrides: object):
    torch.manual_seed(0)
    reader = LeRobotDatasetReader(root)
    inputs, outputs = split_features(reader.features)
    cfg = get_config_class(name)(input_features=inputs, output_features=outputs, **{**TINY[name], **overrides})
    return get_policy_class(name)(cfg, reader.stats).eval()


def test_a_policy_blind_to_the_object_does_not_move(scripted_dataset: Path) -> None:
    policy = _policy("act", scripted_dataset)
    reading = grounding_script.grounding(policy, scripted_dataset, [5, 30], pairs=2, window=8)
    with torch.no_grad():  # cut the env-state token's input: the chunk no longer depends on the object
        policy.model.env_state_proj.weight.zero_()
    blind = grounding_script.grounding(policy, scripted_dataset, [5, 30], pairs=2, window=8)
    assert all(moved.max() > 0 for moved, _ in reading)
    assert all((moved == 0).all() for moved, _ in blind)
    for (_, gap), (_, same) in zip(reading, blind, strict=True):
        assert (gap == same).all() and gap.max() > 0


@pytest.mark.parametrize("n_obs_steps", [1, 2])
def test_diffusion_reads_the_object_through_stacked_or_single_observations(scripted_dataset: Path,
                                                                             n_obs_steps: int) -> None:
    policy = _policy("diffusion", scripted_dataset, n_obs_steps=n_obs_steps)
    assert ENV_STATE in policy.config.input_features
    (moved, gap), = grounding_script.grounding(policy, scripted_dataset, [10], pairs=2, window=4)
    assert moved.shape == gap.shape == (policy.config.action_dim,)
    assert moved.max() > 0 and gap.max() > 0


def test_cli_prints_a_row_per_policy_and_refuses_a_time_past_the_episodes(scripted_dataset: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _policy("act", scripted_dataset).save_pretrained(tmp_path / "act")
    args = ["--dataset", str(scripted_dataset), "--policy", str(ckpt), "--times", "5", "--pairs", "2", "--window", "8"]
    assert grounding_script.main(args) == 0
    assert f"| {ckpt} | 5 | " in capsys.readouterr().out
    assert grounding_script.main([*args, "--per-joint"]) == 0
    out = capsys.readouterr().out
    assert out.count(" / ") == 6 + 1 and "shoulder_pan" in out  # a cell per named joint, and the caption's
    wide = grounding_script.grounding(_policy("act", scripted_dataset), scripted_dataset, [5], pairs=2, window=50)
    narrow = grounding_script.grounding(_policy("act", scripted_dataset), scripted_dataset, [5], pairs=2, window=8)
    assert all((x == y).all() for x, y in zip(wide[0], narrow[0], strict=True))  # capped at the 8-step chunk
    with pytest.raises(SystemExit, match="past the end of episode"):
        grounding_script.main([*args[:-4], "--times", "100000"])
