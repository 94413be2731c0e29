"""A LeRobot checkpoint fine-tuned with `lerobot-train --rename_map` (0.6.1) keeps its normalizer's stats under
the dataset's camera keys while its policy's cameras are other keys; LeRobot's normalizer skips a feature it has
no stats for, so those cameras were never normalized, in training or eval. twinarm reads it the same way (identity
normalization, with one printed note naming the features and the rename map) and predicts LeRobot's chunk; an
action without stats, or a twinarm checkpoint missing stats, is still an error. Against the real `lerobot` where
its venv is installed (TWINARM_LEROBOT_PYTHON, default /root/lerobot-venv/bin/python), else skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from twinarm.agents.lerobot_checkpoint import LeRobotCheckpointError, load_lerobot
from twinarm.agents.policy import Policy

ROOT = Path(__file__).parents[2]
LEROBOT_PYTHON = Path(os.environ.get("TWINARM_LEROBOT_PYTHON", "/root/lerobot-venv/bin/python"))
ACT_STATE = ROOT / "tests/fixtures/lerobot_policies/act_state/pretrained_model"
STATE = "observation.state"


@pytest.fixture(scope="module")
def renamed_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LeRobot's own checkpoint and chunk (tools/make_lerobot_policy_fixtures.py act_rename_map), written by one
    lerobot process; skipped without it."""
    if not LEROBOT_PYTHON.exists():
        pytest.skip(f"no lerobot venv at {LEROBOT_PYTHON} (TWINARM_LEROBOT_PYTHON)")
    out = tmp_path_factory.mktemp("lerobot_rename_map")
    run = subprocess.run([str(LEROBOT_PYTHON), str(ROOT / "tools/make_lerobot_policy_fixtures.py"), "--out", str(out),
                          "--case", "act_rename_map"], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    if "No module named 'lerobot'" in run.stderr:
        pytest.skip(f"lerobot does not import in {LEROBOT_PYTHON}")
    assert run.returncode == 0, run.stderr[-2000:]
    return out / "act_rename_map"


def test_cameras_lerobot_never_normalized_predict_lerobots_chunk(renamed_case: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = renamed_case / "pretrained_model"
    policy = load_lerobot(ckpt)
    said = capsys.readouterr().out
    assert said.count("normalization:") == 1
    assert ("['observation.images.front', 'observation.images.wrist'] left unnormalized, as LeRobot runs this "
            "checkpoint") in said  # fmt: skip
    assert "its stats are under ['observation.images.laptop', 'observation.images.phone']" in said
    assert '(trained with rename_map {"observation.images.laptop": "observation.images.front"' in said
    io = load_file(str(renamed_case / "io.safetensors"))
    got = policy.predict_action_chunk({k: v for k, v in io.items() if k.startswith("observation.")})
    torch.testing.assert_close(got, io["action_chunk"], atol=2e-5, rtol=1e-5)


def _without_stats(tmp_path: Path, key: str) -> Path:
    """The act_state fixture (LeRobot-written) with `key`'s stats moved to another key, as a rename map leaves them."""
    dst = tmp_path / "pretrained_model"
    shutil.copytree(ACT_STATE, dst)
    for f in dst.glob("*normalizer_processor.safetensors"):
        save_file({k.replace(f"{key}.", "observation.old_key.", 1): v for k, v in load_file(str(f)).items()}, str(f))
    return dst


def test_an_input_without_stats_is_read_unnormalized_and_the_rest_as_before(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    dst = _without_stats(tmp_path, STATE)
    policy, full = load_lerobot(dst), load_lerobot(ACT_STATE)
    said = capsys.readouterr().out
    assert f"normalization: {dst}: ['{STATE}'] left unnormalized" in said and "under ['observation.old_key']" in said
    assert "rename_map" not in said  # no train_config.json to name it
    x = {STATE: torch.randn(2, 6) * 20, "observation.environment_state": torch.randn(2, 7) * 3}
    assert torch.equal(policy.normalize_inputs(x)[STATE], x[STATE])
    assert not torch.allclose(full.normalize_inputs(x)[STATE], x[STATE])
    torch.testing.assert_close(policy.model.state_dict(), full.model.state_dict())
    # Saved as a twinarm checkpoint it stays that policy (its stats now hold the identity).
    again = Policy.from_pretrained(policy.save_pretrained(tmp_path / "tw"))
    torch.testing.assert_close(again.predict_action_chunk(x), policy.predict_action_chunk(x))


def test_an_action_without_stats_and_a_twinarm_checkpoint_without_stats_are_errors(tmp_path: Path) -> None:
    with pytest.raises(LeRobotCheckpointError, match=r"no normalization stats for \['action'\]"):
        load_lerobot(_without_stats(tmp_path / "a", "action"))
    tw = load_lerobot(ACT_STATE).save_pretrained(tmp_path / "tw")
    stats = load_file(str(tw / "normalization.safetensors"))
    save_file({k: v for k, v in stats.items() if not k.startswith(STATE)}, str(tw / "normalization.safetensors"))
    with pytest.raises(KeyError, match=STATE):
        Policy.from_pretrained(tw)
    assert json.loads((tw / "config.json").read_text())["type"] == "act"
