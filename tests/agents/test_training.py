"""Training and evaluation end to end: CLI train+eval, exact resume, 2-process gloo replicas, online TD-MPC."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

import twinarm  # noqa: F401
from twinarm.cli.main import main

PICK = "twinarm/SO101-PickCube-v0"
REACH = "twinarm/SO101-Reach-v0"
TINY_ACT = ["--set", "chunk_size=10", "--set", "n_action_steps=10", "--set", "dim_model=32", "--set", "n_heads=2",
            "--set", "dim_feedforward=64", "--set", "n_encoder_layers=1", "--set", "n_vae_encoder_layers=1",
            "--set", "latent_dim=4", "--set", "optimizer_lr=1e-3"]  # fmt: skip


def test_cotraining_on_two_datasets_uses_their_pooled_stats(scripted_dataset: Path, tmp_path: Path) -> None:
    """`--dataset A --dataset B` (sim and real recordings of one arm, say): one policy, normalized by the stats of
    every frame of both."""
    from twinarm.agents.policy import Policy
    from twinarm.arms import get_arm
    from twinarm.datasets_io.reader import LeRobotDatasetReader
    from twinarm.datasets_io.recorder import gym_frame, record
    from twinarm.datasets_io.writer import DatasetWriter
    from twinarm.envs.experts import make_expert

    other = tmp_path / "other"
    spec = get_arm("so101")
    writer = DatasetWriter.create(other, spec.control_hz, LeRobotDatasetReader(scripted_dataset).features,
                                  robot_type=spec.robot_type)
    record(partial(gym.make, PICK, obs_type="state"), make_expert, writer, episodes=1, task="Pick up the cube.",
           to_frame=partial(gym_frame, convert=spec.to_lerobot), seed=7, progress=False)
    writer.finalize()
    out = tmp_path / "run"
    rc = main(["train", "--policy", "act", "--dataset", str(scripted_dataset), "--dataset", str(other), "--env", PICK,
               "--output-dir", str(out), "--steps", "2", "--batch-size", "4", "--threads", "1", "--no-progress",
               *TINY_ACT])  # fmt: skip
    assert rc == 0
    actions = np.concatenate([
        np.stack(pq.read_table(f).column("action").to_numpy(zero_copy_only=False))
        for root in (scripted_dataset, other) for f in sorted((root / "data").rglob("*.parquet"))
    ])  # fmt: skip
    stats = Policy.from_pretrained(out / "checkpoints" / "00000002" / "pretrained_model").normalization_stats()
    np.testing.assert_allclose(stats["action.mean"].numpy(), actions.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["action.std"].numpy(), actions.std(0), rtol=1e-4, atol=1e-5)
    assert json.loads((out / "train_config.json").read_text())["dataset"] == [str(scripted_dataset), str(other)]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_training_centres_without_scaling_what_the_demonstrations_never_varied(
    scripted_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--min-std`: a state dimension whose spread in the dataset is below it goes into the checkpoint with std 1
    (said at the start of training); with 0 the checkpoint keeps the dataset's spread, as LeRobot does."""
    from twinarm.datasets_io.reader import LeRobotDatasetReader

    raw = LeRobotDatasetReader(scripted_dataset, cameras=[]).stats["observation.state"]["std"]
    cut = float(np.sort(raw)[1]) * 1.01  # the two least varied joints fall below it
    base = ["train", "--policy", "act", "--dataset", str(scripted_dataset), "--env", PICK, "--steps", "1",
            "--batch-size", "2", "--eval-freq", "0", "--threads", "1", "--no-progress", *TINY_ACT]  # fmt: skip
    for min_std, out in ((cut, tmp_path / "floored"), (0.0, tmp_path / "raw")):
        assert main([*base, "--output-dir", str(out), "--min-std", str(min_std)]) == 0
    printed = capsys.readouterr().out
    assert f"normalization: observation.state: 2 dimension(s) with a spread below {cut:g}" in printed
    stats = {name: load_file(str(out / "checkpoints" / "00000001" / "pretrained_model" / "normalization.safetensors"))
             for name, out in (("floored", tmp_path / "floored"), ("raw", tmp_path / "raw"))}  # fmt: skip
    np.testing.assert_allclose(stats["raw"]["observation.state.std"].numpy(), raw, rtol=1e-6)
    expected = np.where(raw < cut, 1.0, raw)
    np.testing.assert_allclose(stats["floored"]["observation.state.std"].numpy(), expected, rtol=1e-6)


def test_cli_train_then_eval_end_to_end(
    scripted_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    rc = main(["train", "--policy", "act", "--dataset", str(scripted_dataset), "--env", PICK, "--output-dir", str(out),
               "--steps", "30", "--batch-size", "8", "--log-freq", "10", "--save-freq", "15", "--eval-freq", "30",
               "--eval-episodes", "1", "--eval-n-envs", "1", "--threads", "1", "--no-progress", *TINY_ACT])  # fmt: skip
    assert rc == 0
    log = _rows(out / "train_log.csv")
    assert [int(r["step"]) for r in log] == [10, 20, 30]
    assert float(log[-1]["loss"]) < float(log[0]["loss"])
    assert json.loads((out / "config.json").read_text())["policy"] == "act"
    assert os.readlink(out / "checkpoints" / "last") == "00000030"  # a relative link, as LeRobot's
    assert (out / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").is_file()  # `cd last` works
    assert (out / "checkpoints" / "00000015" / "training_state.pt").is_file()
    evals = _rows(out / "eval_log.csv")
    assert len(evals) == 1 and 0.0 <= float(evals[0]["pc_success"]) <= 100.0
    printed = capsys.readouterr().out  # the evaluation is reported as it happens, and where the logs went
    assert f"step 30: eval pc_success {float(evals[0]['pc_success']):.0f} % over 1 episode," in printed
    assert f"{out / 'learning_curve.png'}" in printed
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = out / "checkpoints" / "00000030" / "pretrained_model"
    from twinarm.agents.policy import resolve_checkpoint

    assert resolve_checkpoint(out / "checkpoints" / "00000015") == out / "checkpoints" / "00000015" / "pretrained_model"
    assert resolve_checkpoint(ckpt) == ckpt
    for lerobot_style in ("checkpoints/last", "checkpoints/last/pretrained_model"):  # as LeRobot's docs write it
        assert resolve_checkpoint(out / lerobot_style) == ckpt
    ev = tmp_path / "eval"
    rc = main(["eval", "--policy", str(out), "--env", PICK, "--episodes", "2", "--n-envs", "2", "--videos", "1",
               "--out", str(ev), "--threads", "1", "--max-steps", "25", "--record", str(tmp_path / "rollouts")])  # fmt: skip
    assert rc == 0
    assert f"policy: {ckpt}\n" in capsys.readouterr().out  # the run directory stands for its newest checkpoint
    from twinarm.datasets_io.validator import check_dataset

    rollouts = tmp_path / "rollouts"  # both parallel episodes, with the features a state recording has
    assert check_dataset(rollouts, deep=True) == []
    meta = json.loads((rollouts / "meta" / "info.json").read_text())
    assert meta["total_episodes"] == 2 and meta["total_frames"] == 50
    assert set(meta["features"]) >= {"observation.state", "observation.environment_state", "action"}
    info = json.loads((ev / "eval_info.json").read_text())
    # Each evaluated episode names its recorded one: the first frame there is the scene its seed draws.
    table = pq.read_table(next((rollouts / "data").rglob("*.parquet")))
    first = np.asarray(table.column("frame_index").to_pylist()) == 0
    starts = np.stack(table.column("observation.environment_state").to_numpy(zero_copy_only=False))[first]
    probe = gym.make(PICK, obs_type="state")
    for row in info["per_episode"]:
        drawn = probe.reset(seed=row["seed"])[0]["environment_state"]
        np.testing.assert_allclose(starts[row["recorded_episode_index"]], drawn, atol=1e-6)
    probe.close()
    assert sorted(r["recorded_episode_index"] for r in info["per_episode"]) == [0, 1]
    agg = info["aggregated"]
    assert set(agg) >= {"pc_success", "avg_sum_reward", "avg_max_reward"}
    assert agg["n_episodes"] == 2 and len(info["per_episode"]) == 2
    assert info["select_action_ms"]["calls"] == 25 and 0 < info["select_action_ms"]["p50"] <= info["select_action_ms"]["max"]
    assert agg["avg_max_reward"] <= agg["avg_sum_reward"] + 1e-9 or agg["avg_sum_reward"] < 0
    videos = list((ev / "videos").glob("*.mp4"))
    assert len(videos) == 1
    import av

    with av.open(str(videos[0])) as container:
        n_frames = sum(1 for _ in container.decode(video=0))
    assert n_frames == info["per_episode"][0]["length"] == 25


@pytest.mark.usefixtures("one_core_busy")
def test_train_yield_cores_runs_steps_and_evals_on_the_granted_threads(scripted_dataset: Path, tmp_path: Path) -> None:
    """With another process seen keeping one of two cores busy, every step after the first runs on one thread,
    logged in the threads column; the periodic eval on the same budget."""
    out = tmp_path / "run"
    before = torch.get_num_threads()
    try:
        rc = main(["train", "--policy", "act", "--dataset", str(scripted_dataset), "--env", PICK, "--output-dir", str(out),
                   "--steps", "3", "--batch-size", "4", "--threads", "2", "--yield-cores", "--log-freq", "1",
                   "--eval-freq", "3", "--eval-episodes", "1", "--eval-n-envs", "1", "--no-progress", *TINY_ACT])  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    assert [int(r["threads"]) for r in _rows(out / "train_log.csv")] == [2, 1, 1]
    evaluated = json.loads((out / "eval" / "00000003" / "eval_info.json").read_text())
    assert evaluated["threads"] == {"1": evaluated["select_action_ms"]["calls"]}  # its own calls only
    assert json.loads((out / "train_config.json").read_text())["yield_cores"] is True


def test_resume_continues_exactly(scripted_dataset: Path, tmp_path: Path) -> None:
    from twinarm.agents.train import TrainConfig, train

    overrides = dict(chunk_size=10, n_action_steps=10, dim_model=32, n_heads=2, dim_feedforward=64,
                     n_encoder_layers=1, n_vae_encoder_layers=1, latent_dim=4)  # fmt: skip
    common = dict(policy="act", dataset=str(scripted_dataset), policy_overrides=overrides, batch_size=4,
                  save_freq=3, log_freq=1, threads=1, progress=False, seed=7)  # fmt: skip
    straight = train(TrainConfig(output_dir=str(tmp_path / "a"), steps=6, **common))
    train(TrainConfig(output_dir=str(tmp_path / "b"), steps=3, **common))
    resumed = train(TrainConfig(output_dir=str(tmp_path / "b"), steps=6, resume=True, **common))
    wa = load_file(str(straight / "pretrained_model" / "model.safetensors"))
    wb = load_file(str(resumed / "pretrained_model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    la, lb = _rows(tmp_path / "a" / "train_log.csv"), _rows(tmp_path / "b" / "train_log.csv")
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    # A different seed gives different weights (the comparison above is not vacuous).
    other = train(TrainConfig(output_dir=str(tmp_path / "c"), steps=6, **{**common, "seed": 8}))
    wc = load_file(str(other / "pretrained_model" / "model.safetensors"))
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_diffusion_ema_is_saved_and_resumes_exactly(scripted_dataset: Path, tmp_path: Path) -> None:
    """Diffusion keeps an EMA by default: pretrained_model/ holds the average (not the raw weights), and a
    resumed run continues both the raw weights and the average bit for bit."""
    from twinarm.agents.train import TrainConfig, train

    overrides = dict(horizon=8, n_action_steps=4, down_dims=[16, 32], diffusion_step_embed_dim=16, kernel_size=3,
                     n_groups=4, num_train_timesteps=20)  # fmt: skip
    common = dict(policy="diffusion", dataset=str(scripted_dataset), policy_overrides=overrides, batch_size=4,
                  save_freq=3, log_freq=1, threads=1, progress=False, seed=3, device="cpu")  # fmt: skip
    straight = train(TrainConfig(output_dir=str(tmp_path / "a"), steps=6, **common))
    train(TrainConfig(output_dir=str(tmp_path / "b"), steps=3, **common))
    resumed = train(TrainConfig(output_dir=str(tmp_path / "b"), steps=6, resume=True, **common))
    wa = load_file(str(straight / "pretrained_model" / "model.safetensors"))
    wb = load_file(str(resumed / "pretrained_model" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    state = torch.load(straight / "training_state.pt", weights_only=False)
    raw, ema = state["model"], state["ema"]
    assert ema["steps"] == 6
    moved = [k for k in wa if k.startswith("model.unet") and not torch.equal(wa[k], raw[k])]
    assert moved, "the saved weights should be the moving average, not the last raw weights"
    plain = train(TrainConfig(output_dir=str(tmp_path / "c"), steps=6, ema=False, **common))
    wc = load_file(str(plain / "pretrained_model" / "model.safetensors"))
    assert all(torch.equal(wc[k], raw[k]) for k in wc)


def test_two_process_gloo_replicas_stay_identical(scripted_dataset: Path, tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    assert torchrun is not None, "torchrun ships with torch"
    out = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "twinarm.cli.main", "train", "--policy", "act",
           "--dataset", str(scripted_dataset), "--output-dir", str(out), "--steps", "4", "--batch-size", "4",
           "--save-freq", "2", "--log-freq", "1", "--threads", "1", "--no-progress", *TINY_ACT]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = json.loads((out / "replica_check.json").read_text())
    assert check["world_size"] == 2 and check["step"] == 4
    assert check["max_abs_diff"] == 0.0
    assert len(set(check["fingerprint_sums"])) == 1
    first = load_file(str(out / "checkpoints" / "00000002" / "pretrained_model" / "model.safetensors"))
    last = load_file(str(out / "checkpoints" / "00000004" / "pretrained_model" / "model.safetensors"))
    assert any(not torch.equal(first[k], last[k]) for k in first), "the replicas did not train"


def test_online_tdmpc_through_cli(tmp_path: Path) -> None:
    out = tmp_path / "tdmpc"
    dyn = tmp_path / "dyn.json"  # a fitted arm (`twinarm fit-dynamics`) for the online and eval envs
    dyn.write_text(json.dumps({"arm": "so101", "action_delay_steps": 0, "joints": {"elbow_flex": {"kp": 9.0}}}))
    cams = tmp_path / "cams.json"  # and its front camera placed (`twinarm fit-camera`)
    cams.write_text(json.dumps({"arm": "so101", "cameras": {"front": {"pos": [0.5, 0.2, 0.4], "quat": [1, 0, 0, 0], "fovy": 50}}}))
    rc = main(["train", "--policy", "tdmpc", "--env", REACH, "--obs-type", "state", "--output-dir", str(out),
               "--steps", "220", "--seed-steps", "110", "--batch-size", "16", "--save-freq", "220", "--eval-freq", "220",
               "--eval-episodes", "1", "--eval-n-envs", "1", "--threads", "1", "--yield-cores", "--no-progress",
               "--set", "mlp_dim=32", "--set", "latent_dim=16", "--set", "n_gaussian_samples=16", "--set", "n_pi_samples=4",
               "--set", "n_elites=4", "--set", "cem_iterations=2", "--set", "horizon=3",
               "--randomization", '{"obs_noise_std": 0.002, "action_delay_steps": 1}', "--dynamics", str(dyn),
               "--camera-poses", str(cams)])  # fmt: skip
    assert rc == 0
    config = json.loads((out / "train_config.json").read_text())
    saved = config["randomization"]
    assert saved["obs_noise_std"] == 0.002 and saved["action_delay_steps"] == 1  # the online and eval env's
    assert config["dynamics"]["joints"]["elbow_flex"] == {"kp": 9.0}
    assert config["camera_poses"]["cameras"]["front"]["fovy"] == 50
    rows = _rows(out / "train_log.csv")
    assert rows and "episode_return" in rows[0]
    # Episodes that end after the seed steps log the world-model losses, although the first row had none.
    assert [int(r["step"]) for r in rows] == [100, 200]  # episodes of 100 steps; learning starts at 110
    assert rows[0]["loss"] == "" and float(rows[1]["loss"]) > 0 and float(rows[1]["consistency_loss"]) >= 0
    assert rows[1]["threads"] == "1"  # --yield-cores: updates on the budget (of one thread here)
    from twinarm.agents.policy import Policy

    policy = Policy.from_pretrained(out / "checkpoints" / "00000220" / "pretrained_model")
    assert policy.config.type == "tdmpc" and policy.config.has_env_state
    assert len(_rows(out / "eval_log.csv")) == 1


def test_eval_noise_seed_fixes_diffusion_sampling(tmp_path: Path) -> None:
    """`--noise-seed N` seeds the sampling noise, so a Diffusion evaluation repeats exactly; without it, --seed does."""
    from tests.agents.conftest import TINY
    from twinarm.agents.features import Feature
    from twinarm.agents.registry import make_policy

    ckpt = tmp_path / "diffusion"
    torch.manual_seed(0)
    make_policy("diffusion", input_features={"observation.state": Feature("STATE", (6,))},
                output_features={"action": Feature("ACTION", (6,))},
                **{**TINY["diffusion"], "num_inference_steps": 2, "noise_scheduler_type": "DDIM"}).save_pretrained(ckpt)  # fmt: skip

    def rewards(seed: int, out: str) -> list[float]:
        torch.rand(7)  # the global random state moves on between runs, as it does in a long process
        assert main(["eval", "--policy", str(ckpt), "--env", PICK, "--episodes", "1", "--n-envs", "1", "--videos", "0",
                     "--max-steps", "8", "--threads", "1", "--noise-seed", str(seed), "--out", str(tmp_path / out)]) == 0  # fmt: skip
        info = json.loads((tmp_path / out / "eval_info.json").read_text())
        return [e["sum_reward"] for e in info["per_episode"]]

    first = rewards(3, "a")
    assert rewards(3, "b") == first
    assert rewards(4, "c") != first
    # Without --noise-seed, a run seeds with --seed's value (torch starts each process from a random state).
    assert main(["eval", "--policy", str(ckpt), "--env", PICK, "--episodes", "1", "--n-envs", "1", "--videos", "0",
                 "--max-steps", "8", "--threads", "1", "--seed", "3", "--out", str(tmp_path / "d")]) == 0  # fmt: skip
    torch.rand(7)
    assert main(["eval", "--policy", str(ckpt), "--env", PICK, "--episodes", "1", "--n-envs", "1", "--videos", "0",
                 "--max-steps", "8", "--threads", "1", "--seed", "3", "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    assert (json.loads((tmp_path / "d" / "eval_info.json").read_text())["per_episode"]
            == json.loads((tmp_path / "e" / "eval_info.json").read_text())["per_episode"])  # fmt: skip


def test_push_to_hub_publishes_the_last_checkpoint(
    scripted_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--push-to-hub` uploads the run's last checkpoint when training ends (the Hub client's calls are replaced:
    no network here); a malformed repo id is refused before any training."""
    import huggingface_hub

    sent: dict[str, set[str]] = {}
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: f"https://huggingface.co/{repo_id}")
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, repo_id, folder_path, **kw: sent.update({repo_id: {p.name for p in Path(folder_path).iterdir()}}))  # fmt: skip
    args = ["train", "--policy", "act", "--dataset", str(scripted_dataset), "--output-dir", str(tmp_path / "run"),
            "--steps", "2", "--batch-size", "2", "--save-freq", "2", "--threads", "1", "--no-progress", *TINY_ACT]  # fmt: skip
    with pytest.raises(SystemExit):
        main([*args, "--push-to-hub", "nobody"])
    assert "--push-to-hub 'nobody': expected USER/NAME" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert main([*args, "--push-to-hub", "me/tiny_act"]) == 0
    assert "pushed the last checkpoint to https://huggingface.co/me/tiny_act" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "normalization.safetensors", "README.md"} <= sent["me/tiny_act"]


def test_a_push_that_cannot_reach_the_hub_keeps_the_run_and_says_how_to_push_later(
    scripted_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real Hub client against an endpoint where nothing listens (a refused connection, as offline): one
    message naming the repo and what to check, and the saved checkpoint's push-policy command; exit code 1."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    out = tmp_path / "run"
    assert main(["train", "--policy", "act", "--dataset", str(scripted_dataset), "--output-dir", str(out), "--steps",
                 "2", "--batch-size", "2", "--threads", "1", "--no-progress", *TINY_ACT, "--push-to-hub", "me/x"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    ckpt = out / "checkpoints" / "00000002" / "pretrained_model"
    assert "twinarm train: pushing the policy to the Hub model repo me/x failed: " in err
    assert "check the network, your token" in err and "Traceback" not in err
    assert f"push it later with `twinarm push-policy --policy {ckpt} --repo-id me/x`" in err
    assert (ckpt / "model.safetensors").is_file()


def test_train_refuses_a_bad_override_before_writing_anything(tmp_path: Path) -> None:
    """From Python as from the CLI: a `policy_overrides` value of the wrong type is named before the run exists."""
    from twinarm.agents.policy import ConfigOverrideError
    from twinarm.agents.train import TrainConfig, train

    tc = TrainConfig(policy="act", dataset=str(tmp_path / "ds"), output_dir=str(tmp_path / "run"),
                     policy_overrides={"chunk_size": "fifty", "dim_model": 64})  # fmt: skip
    with pytest.raises(ConfigOverrideError, match=r'^chunk_size="fifty": expected a whole number$'):
        train(tc)
    assert not (tmp_path / "run").exists()


def test_resume_keeps_the_runs_own_policy_and_settings(scripted_dataset: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`--resume` of another policy type, or with other `--set` values, is refused before the run's configs are
    written over (it used to fail on the weights after overwriting train_config.json); without `--set` it resumes
    with the run's own; in a folder with no checkpoint it says it starts a new run."""
    out = tmp_path / "run"
    base = ["train", "--dataset", str(scripted_dataset), "--output-dir", str(out), "--batch-size", "2", "--threads", "1",
            "--no-progress"]  # fmt: skip
    assert main([*base, "--policy", "act", "--steps", "2", *TINY_ACT]) == 0
    saved = {n: (out / n).read_text() for n in ("train_config.json", "config.json")}
    capsys.readouterr()
    for extra, said in [(["--policy", "diffusion"], "trains the act policy, not diffusion: resume it with --policy act"),
                        (["--policy", "act", *TINY_ACT[:-2], "--set", "optimizer_lr=0.01"],
                         "other --set values (optimizer_lr: run 0.001, now 0.01)")]:  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main([*base, "--steps", "4", "--resume", *extra])
        assert info.value.code == 2 and said in capsys.readouterr().err
        assert {n: (out / n).read_text() for n in saved} == saved
    assert main([*base, "--policy", "act", "--steps", "4", "--resume"]) == 0
    assert "--resume: with the run's own --set chunk_size=10 --set n_action_steps=10 --set dim_model=32" in capsys.readouterr().out
    assert [int(r["step"]) for r in _rows(out / "train_log.csv")][-1] == 4
    assert ["chunk_size", 10] in json.loads((out / "config.json").read_text())["policy_overrides"]
    fresh = tmp_path / "fresh"
    assert main([*base[:4], str(fresh), *base[5:], "--policy", "act", "--steps", "1", "--resume", *TINY_ACT]) == 0
    assert f"--resume: no checkpoint under {fresh}; starting a new run there" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "said"), [
    (["--policy", "tdmpc"], "online TD-MPC learns by trial and error in sim (twinarm/SO101-Reach-v0)"),
    (["--policy", "act", "--dataset", "{data}"], "periodic evaluation runs unattended: evaluate in sim"),
])  # fmt: skip
def test_train_on_a_real_id_is_refused(extra: list[str], said: str, scripted_dataset: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main(["train", "--env", "twinarm/SO101-Reach-Real-v0", "--output-dir", str(tmp_path / "run"),
              *[a.replace("{data}", str(scripted_dataset)) for a in extra]])  # fmt: skip
    assert info.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_finished_run_is_not_trained_over_without_resume(scripted_dataset: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """As LeRobot: a second `train` into a run folder used to rewrite its checkpoints silently."""
    out = tmp_path / "run"
    argv = ["train", "--policy", "act", "--dataset", str(scripted_dataset), "--output-dir", str(out), "--steps", "1",
            "--batch-size", "2", "--threads", "1", "--no-progress", *TINY_ACT]  # fmt: skip
    assert main(argv) == 0
    saved = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert f"{out} holds a run (checkpoint 00000001): --resume continues it" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == saved


def test_a_dataset_train_cannot_use_leaves_no_run_folder(scripted_dataset: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Refused in one line, and before config.json / train_config.json are written: a missing stats file (a
    traceback before), and actions of another size than the env's joints with no periodic evaluation (trained
    silently before)."""
    no_stats = tmp_path / "no_stats"
    shutil.copytree(scripted_dataset, no_stats)
    (no_stats / "meta/stats.json").unlink()
    lerobot = Path(__file__).parents[1] / "fixtures/lerobot_v3/video_h264"  # 3 joints, 10 fps
    for data, extra, said in [
        (no_stats, [], f"{no_stats}: no meta/stats.json, which normalization needs"),
        (lerobot, ["--env", "twinarm/SO101-PickCube-v0", "--eval-freq", "0"],
         "the policy does not fit twinarm/SO101-PickCube-v0: its actions are 3-D, the so101 arm has 6 joints"),
    ]:  # fmt: skip
        run = tmp_path / f"run_{data.name}"
        assert main(["train", "--policy", "act", "--dataset", str(data), "--output-dir", str(run), "--steps", "1",
                     "--batch-size", "2", "--no-progress", *extra, *TINY_ACT]) == 1  # fmt: skip
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err
        assert not run.exists()


def test_a_dataset_at_another_rate_than_the_env_is_warned(scripted_dataset: Path, tmp_path: Path) -> None:
    from twinarm.agents.train import OtherRateWarning, warn_other_rate

    with pytest.warns(OtherRateWarning, match=r"d is at 15 fps and twinarm/SO101-PickCube-v0 steps at 30 Hz: the "
                      r"policy's actions will play 2x as fast as recorded"):  # fmt: skip
        warn_other_rate(15, "twinarm/SO101-PickCube-v0", ["d"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_other_rate(30, "twinarm/SO101-PickCube-v0", ["d"])


def test_resume_takes_the_runs_own_options_and_refuses_other_data(scripted_dataset: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`--resume` alone continues the run with its policy and data (it said '--policy must be one of ...'); other
    data is refused (its normalization would change under the trained weights); a run already at --steps says
    there is nothing to train instead of printing its checkpoint as if it had trained."""
    out = tmp_path / "run"
    base = ["train", "--output-dir", str(out), "--batch-size", "2", "--threads", "1", "--no-progress"]
    assert main([*base, "--policy", "act", "--dataset", str(scripted_dataset), "--steps", "1", *TINY_ACT]) == 0
    capsys.readouterr()
    assert main([*base, "--resume", "--steps", "2"]) == 0
    said = capsys.readouterr().out
    assert f"--resume: with the run's own --policy act, --dataset {scripted_dataset}" in said
    assert [int(r["step"]) for r in _rows(out / "train_log.csv")][-1] == 2
    assert main([*base, "--resume", "--steps", "2"]) == 0
    assert f"--resume: {out} is at step 2 of --steps 2: nothing to train" in capsys.readouterr().out
    other = tmp_path / "other"
    shutil.copytree(scripted_dataset, other)
    with pytest.raises(SystemExit):
        main([*base, "--resume", "--dataset", str(other), "--steps", "3"])
    assert f"--resume: {out} trains on --dataset {scripted_dataset}, not {other}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base[:2], str(tmp_path / "none"), *base[3:], "--resume"])
    assert "holds no run (no config.json)" in capsys.readouterr().err


def test_resume_alone_continues_the_run_with_all_its_options(scripted_dataset: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`train --output-dir RUN --resume --steps N`, as the README shows, took only policy, data, env and --set from
    the run: --batch-size, --lr-schedule, --log-freq and the rest went back to their defaults and config.json was
    rewritten with them, so the resumed run silently trained another way. Now every option not given is the
    run's, and the run continues as the straight one did, batch for batch."""
    run = ["train", "--no-progress"]
    options = ["--policy", "act", "--dataset", str(scripted_dataset), "--batch-size", "4", "--lr-schedule", "cosine",
               "--log-freq", "1", "--save-freq", "2", "--eval-freq", "0", "--threads", "1", "--seed", "7", *TINY_ACT]  # fmt: skip
    assert main([*run, "--output-dir", str(tmp_path / "a"), "--steps", "4", *options]) == 0
    assert main([*run, "--output-dir", str(tmp_path / "b"), "--steps", "2", *options]) == 0
    capsys.readouterr()
    assert main([*run, "--output-dir", str(tmp_path / "b"), "--resume", "--steps", "4"]) == 0
    said = capsys.readouterr().out
    assert "--batch-size 4, --seed 7, --log-freq 1, --save-freq 2, --eval-freq 0, --lr-schedule cosine, --threads 1" in said
    straight, resumed = _rows(tmp_path / "a" / "train_log.csv"), _rows(tmp_path / "b" / "train_log.csv")
    assert [(r["step"], r["loss"], r["lr"]) for r in resumed] == [(r["step"], r["loss"], r["lr"]) for r in straight]
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (saved["batch_size"], saved["lr_schedule"], saved["steps"], saved["resume"]) == (4, "cosine", 4, True)
    capsys.readouterr()
    assert main([*run, "--output-dir", str(tmp_path / "b"), "--resume", "--steps", "5", "--log-freq", "5"]) == 0
    assert "--log-freq" not in capsys.readouterr().out  # a given option wins
    assert [r["step"] for r in _rows(tmp_path / "b" / "train_log.csv")][-1] == "5"


@pytest.mark.parametrize(("extra", "said"), [
    (["--buffer-capacity", "3"], "--buffer-capacity 3 / --steps 40: the replay buffer must hold a 4-step sequence"),
    (["--seed-steps", "2"], "--seed-steps 2: the first update samples a 4-step sequence"),
    (["--obs-type", "pixels", "--image-size", "32", "32"], "needs images of at least 41x41 pixels"),
    (["--device", "cuda:0"], "--device cuda:0: torch"),
])  # fmt: skip
def test_online_tdmpc_settings_that_cannot_train_are_refused_before_the_run_starts(
    extra: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ran every seed step and then failed ('replay buffer holds no full sequence yet'), or was a traceback."""
    if extra[0] == "--device" and torch.cuda.is_available():
        pytest.skip("a CUDA device is there")
    argv = ["train", "--policy", "tdmpc", "--env", "twinarm/SO101-Reach-v0", "--output-dir", str(tmp_path / "run"),
            "--steps", "40", "--set", "horizon=3", "--no-progress", *extra]  # fmt: skip
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code in (1, 2) and said in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_offline_tdmpc_needs_rewards_in_the_dataset(scripted_dataset: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A demonstration dataset has no rewards (twinarm's recordings keep none): a KeyError once training began."""
    data = scripted_dataset
    assert "next.reward" not in json.loads((data / "meta/info.json").read_text())["features"]
    assert main(["train", "--policy", "tdmpc", "--dataset", str(data), "--output-dir", str(tmp_path / "run"),
                 "--steps", "1", "--no-progress"]) == 1  # fmt: skip
    assert f"{data}: no next.reward feature, which TD-MPC learns its value from" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
