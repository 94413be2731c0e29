"""The LeRobot plugin (`twinarm.lerobot_env`) run by LeRobot itself: its env config, and `lerobot-eval` on a twinarm
sim agreeing with `twinarm eval` episode by episode. Needs the lerobot venv with twinarm installed in it
(TWINARM_LEROBOT_PYTHON, default /root/lerobot-venv/bin/python; there: `pip install -e .`); skipped without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEROBOT_PYTHON = Path(os.environ.get("TWINARM_LEROBOT_PYTHON", "/root/lerobot-venv/bin/python"))
FIXTURE = ROOT / "tests/fixtures/lerobot_policies/act_state/pretrained_model"  # written by LeRobot 0.6.1


def _lerobot_with_twinarm() -> str | None:
    """Why the plugin cannot be run here, or None when it can."""
    if not LEROBOT_PYTHON.exists():
        return f"no lerobot venv at {LEROBOT_PYTHON} (TWINARM_LEROBOT_PYTHON)"
    probe = subprocess.run([str(LEROBOT_PYTHON), "-c", "import lerobot, twinarm.envs.lerobot_view"],
                           capture_output=True, text=True, cwd="/")  # fmt: skip
    return None if probe.returncode == 0 else f"twinarm is not installed in {LEROBOT_PYTHON} (pip install -e . there)"


_WHY_NOT = _lerobot_with_twinarm()  # once: it starts LeRobot's python
pytestmark = [pytest.mark.lerobot, pytest.mark.skipif(_WHY_NOT is not None, reason=_WHY_NOT or "")]

CONFIG_PROBE = r"""
import json
from lerobot.configs.parser import load_plugin
load_plugin("twinarm.lerobot_env")
from lerobot.envs.configs import EnvConfig
from lerobot.envs.utils import env_to_policy_features
cls = EnvConfig.get_choice_class("twinarm")
out = {}
for task, kw in [("SO101-PickCube-v0", {"obs_type": "state"}), ("twinarm/Aloha-TransferCube-v0",
                 {"observation_height": 48, "observation_width": 64})]:
    cfg = cls(task=task, **kw)
    out[task] = {"fps": cfg.fps, "gym_id": cfg.gym_id,
                 "policy": {k: [f.type.name, list(f.shape)] for k, f in env_to_policy_features(cfg).items()}}
import pathlib, tempfile
poses = pathlib.Path(tempfile.mkdtemp()) / "camera_poses.json"
poses.write_text(json.dumps({"arm": "so101", "cameras": {"front": {"pos": [0.5, 0.2, 0.4], "quat": [1, 0, 0, 0],
                                                                   "fovy": 50}}}))
out["camera_poses"] = cls(task="SO101-PickCube-v0", camera_poses=str(poses)).gym_kwargs["camera_poses"]
errors = []
for kw in [{"task": "SO101-PickCube-Real-v0"}, {"task": "SO101-Fold-v0"}, {"task": "Koch-Reach-v0", "fps": 50},
           {"task": "SO101-Reach-v0", "randomization": "sunny"}, {"task": "Koch-Reach-v0", "camera_poses": str(poses)}]:
    try:
        cls(**kw)
        errors.append(None)
    except ValueError as exc:
        errors.append(str(exc))
out["errors"] = errors
print(json.dumps(out))
"""


def test_lerobots_env_config_reads_the_spec_and_names_bad_values() -> None:
    run = subprocess.run([str(LEROBOT_PYTHON), "-c", CONFIG_PROBE], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    pick = out["SO101-PickCube-v0"]
    assert pick["fps"] == 30 and pick["gym_id"] == "twinarm/SO101-PickCube-v0"
    assert pick["policy"] == {"action": ["ACTION", [6]], "observation.state": ["STATE", [6]],
                              "observation.environment_state": ["ENV", [7]]}  # fmt: skip
    aloha = out["twinarm/Aloha-TransferCube-v0"]
    assert aloha["fps"] == 50 and aloha["gym_id"] == "twinarm/Aloha-TransferCube-v0"
    assert aloha["policy"]["observation.images.top"] == ["VISUAL", [3, 48, 64]]
    assert aloha["policy"]["observation.state"] == ["STATE", [14]]
    assert out["camera_poses"]["cameras"]["front"]["fovy"] == 50  # `--env.camera_poses FILE` reaches gym.make
    real, unknown, fps, randomization, poses = out["errors"]
    assert "is a real arm" in real and "twinarm eval --env twinarm/SO101-PickCube-Real-v0" in real
    assert "--env.task='SO101-Fold-v0' is not a twinarm sim" in unknown and "SO101-PickCube-v0" in unknown
    assert "--env.fps=50" in fps and "30 Hz" in fps
    assert "--env.randomization 'sunny'" in randomization
    assert poses.startswith("--env.camera_poses ") and "places the cameras of arm 'so101', not 'koch'" in poses


IMAGE_PROBE = r"""
import json, gymnasium as gym, numpy as np
from lerobot.configs.parser import load_plugin
load_plugin("twinarm.lerobot_env")
from lerobot.envs.configs import EnvConfig
from lerobot.envs.factory import make_env
from lerobot.envs.utils import preprocess_observation
out = {}
for task in ("SO101-PickCube-v0", "Aloha-TransferCube-v0"):
    cfg = EnvConfig.get_choice_class("twinarm")(task=task, observation_height=48, observation_width=64)
    vec = make_env(cfg, n_envs=2, use_async_envs=False)["twinarm"][0]
    batch = preprocess_observation(vec.reset(seed=[4, 5], options={"lerobot_new_rollout": True})[0])
    out[task] = {"keys": sorted(batch), "diffs": {}}
    for i, seed in enumerate((4, 5)):
        raw = gym.make("twinarm/" + task, image_size=(48, 64))
        obs, _ = raw.reset(seed=seed)
        spec = raw.unwrapped.spec_arm
        for cam in obs["pixels"]:
            seen = (batch["observation.images." + cam][i].numpy().transpose(1, 2, 0) * 255).round()
            out[task]["diffs"][f"{cam}{i}"] = float(np.abs(seen - obs["pixels"][cam]).max())
        state = batch["observation.state"][i].numpy()
        out[task]["diffs"][f"state{i}"] = float(np.abs(state - spec.to_lerobot(obs["agent_pos"])).max())
print(json.dumps(out))
"""


def test_what_lerobots_rollout_hands_the_policy_is_the_sims_own_observation() -> None:
    """After LeRobot's `preprocess_observation`: each camera's image under its own key, pixel for pixel what the
    sim renders for that seed, and the joint state in LeRobot's units (degrees for SO-101, radians for ALOHA)."""
    run = subprocess.run([str(LEROBOT_PYTHON), "-c", IMAGE_PROBE], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["SO101-PickCube-v0"]["keys"] == ["observation.images.front", "observation.images.wrist",
                                                "observation.state"]  # fmt: skip
    assert out["Aloha-TransferCube-v0"]["keys"] == ["observation.images.top", "observation.state"]
    for task, found in out.items():
        assert len(found["diffs"]) == 2 * (len(found["keys"])), task
        for key, diff in found["diffs"].items():
            assert diff <= (1e-3 if key.startswith("state") else 0.0), (task, key, diff)


def _lerobot_and_twinarm_eval(tmp_path: Path, lerobot_ckpt: Path, twinarm_ckpt: Path, obs_type: str,
                              image: tuple[int, int], steps: int = 12, seed: int = 7,
                              async_envs: bool = True) -> list[tuple[float, float, float, float]]:
    """Both eval loops over 2 episodes of `steps` from `seed`: (twinarm sum, LeRobot sum, twinarm max, LeRobot max)
    reward per episode. LeRobot's runs in async forkserver workers, as its default is, unless `async_envs` is
    off (its sync vector env: the workers' start-up is ~8 s of each run)."""
    run = subprocess.run(
        [str(LEROBOT_PYTHON.parent / "lerobot-eval"), "--env.discover_packages_path=twinarm.lerobot_env",
         "--env.type=twinarm", "--env.task=SO101-PickCube-v0", f"--env.obs_type={obs_type}",
         f"--env.observation_height={image[0]}", f"--env.observation_width={image[1]}", f"--env.episode_length={steps}",
         f"--policy.path={lerobot_ckpt}", "--policy.device=cpu", "--eval.n_episodes=2", "--eval.batch_size=2",
         f"--eval.use_async_envs={str(async_envs).lower()}", f"--seed={seed}", f"--output_dir={tmp_path / 'lerobot'}"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    lerobot = json.loads((tmp_path / "lerobot" / "eval_info.json").read_text())["per_task"][0]["metrics"]
    assert len(list((tmp_path / "lerobot" / "videos").rglob("*.mp4"))) == 2
    ours = subprocess.run(
        [sys.executable, "-m", "twinarm.cli.main", "eval", "--policy", str(twinarm_ckpt), "--env",
         "twinarm/SO101-PickCube-v0", "--episodes", "2", "--n-envs", "2", "--seed", str(seed), "--max-steps",
         str(steps), "--image-size", str(image[0]), str(image[1]), "--videos", "0", "--out", str(tmp_path / "twinarm")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ours.returncode == 0, ours.stderr[-3000:]
    twinarm = json.loads((tmp_path / "twinarm" / "eval_info.json").read_text())["per_episode"]
    assert [e["length"] for e in twinarm] == [steps, steps]
    return [(e["sum_reward"], lr_sum, e["max_reward"], lr_max)
            for e, lr_sum, lr_max in zip(twinarm, lerobot["sum_rewards"], lerobot["max_rewards"], strict=True)]


def test_lerobot_eval_on_the_sim_agrees_with_twinarm_eval(tmp_path: Path) -> None:
    """LeRobot's ACT and rollout against twinarm's, one checkpoint LeRobot wrote, same seeds and length: the same
    rewards, so states, actions and units crossed the plugin as twinarm's own eval has them."""
    for ours, theirs, ours_max, theirs_max in _lerobot_and_twinarm_eval(tmp_path, FIXTURE, FIXTURE, "state", (48, 64)):
        assert ours == pytest.approx(theirs, abs=1e-3) and ours_max == pytest.approx(theirs_max, abs=1e-4)


def test_lerobot_eval_reads_the_sims_cameras_as_twinarm_eval_does(tmp_path: Path, tiny_act_checkpoint) -> None:
    """A camera policy (twinarm's, exported for LeRobot) runs under lerobot-eval at the size asked for and drives the
    arm as under twinarm eval (that each image is the right camera's is the test above: this random policy barely
    looks at them). LeRobot's sync vector env here; the async workers are the state test's."""
    ckpt = tiny_act_checkpoint(cameras=("front",), image=(48, 64))
    exported = tmp_path / "exported"
    done = subprocess.run([sys.executable, "-m", "twinarm.cli.main", "export-lerobot", "--policy", str(ckpt), "--out",
                           str(exported)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _lerobot_and_twinarm_eval(tmp_path, exported, ckpt, "pixels_agent_pos", (48, 64), steps=8,
                                      async_envs=False)
    for ours, theirs, ours_max, theirs_max in rows:
        assert ours == pytest.approx(theirs, abs=1e-3) and ours_max == pytest.approx(theirs_max, abs=1e-4)


def test_doctor_in_lerobots_env_says_the_plugin_loads() -> None:
    probe = "from twinarm.cli.doctor_cmd import check_lerobot_plugin as c; r = c(); print(r.status + '|' + r.detail)"
    run = subprocess.run([str(LEROBOT_PYTHON), "-c", probe], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == (
        "ok|lerobot 0.6.1: --env.discover_packages_path=twinarm.lerobot_env --env.type=twinarm")
