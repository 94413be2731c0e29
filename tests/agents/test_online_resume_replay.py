"""Online TD-MPC: `--resume` mid-episode never splices the fresh episode onto the interrupted one in the replay
buffer, a resume with a larger `--steps` grows the buffer, torchrun is refused, and `--ema` is honoured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import twinarm  # noqa: F401
from twinarm.agents import train_online as train_online_mod
from twinarm.agents.policy import PolicyConfigError
from twinarm.agents.replay import ReplayBuffer
from twinarm.agents.train_config import TrainConfig
from twinarm.cli.main import main

REACH = "twinarm/SO101-Reach-v0"  # 100-step episodes
TINY_TDMPC = ["--set", "mlp_dim=32", "--set", "latent_dim=16", "--set", "n_gaussian_samples=16", "--set", "n_pi_samples=4",
              "--set", "n_elites=4", "--set", "cem_iterations=2", "--set", "horizon=3"]  # fmt: skip
STATE = "observation.state"


def _train(out: Path, *extra: str) -> None:
    argv = ["train", "--policy", "tdmpc", "--env", REACH, "--obs-type", "state", "--output-dir", str(out),
            "--seed-steps", "20", "--batch-size", "4", "--eval-freq", "0", "--log-freq", "10", "--threads", "1",
            "--no-progress", "--device", "cpu", *TINY_TDMPC, *extra]  # fmt: skip
    assert main(argv) == 0


def _state(out: Path, step: int) -> dict[str, Any]:
    return torch.load(out / "checkpoints" / f"{step:08d}" / "training_state.pt", weights_only=False)


def _buffer(n: int, capacity: int, episode_len: int = 4) -> ReplayBuffer:
    """`n` steps of episodes of `episode_len` steps; step i's obs is i, its next obs i + 1."""
    b = ReplayBuffer(capacity, {STATE: (1,)}, 1, seed=0)
    for i in range(n):
        b.add({STATE: np.array([i], np.float32)}, np.array([i], np.float32), float(i),
              {STATE: np.array([i + 1], np.float32)}, False, i // episode_len)  # fmt: skip
    return b


def _in_order(b: ReplayBuffer, a: np.ndarray) -> list[float]:
    """`a`'s rows for the buffer's steps, oldest first."""
    return a[(b.pos - b.size + np.arange(b.size)) % b.capacity].ravel().tolist()


def test_valid_starts_never_span_an_episode_id_change() -> None:
    for n in (10, 23):  # part full, and wrapped round the ring
        b = _buffer(n, 16)
        for horizon in (2, 3, 4):
            for s in b._valid_starts(horizon):
                seq = (s + np.arange(horizon)) % b.capacity
                assert len(set(b.episode[seq].tolist())) == 1
                assert (np.diff(b.obs[STATE][seq, 0]) == 1).all()  # consecutive env steps


def test_resized_keeps_the_steps_in_order() -> None:
    b = _buffer(23, 16)  # wrapped: holds steps 7..22, write head at 7
    g = b.resized(20)
    assert (g.capacity, g.size, g.pos) == (20, 16, 16)
    assert g.obs[STATE][:16, 0].tolist() == list(range(7, 23))
    assert g.episode[:16].tolist() == [i // 4 for i in range(7, 23)] and (g.episode[16:] == -1).all()
    assert g.action[:16, 0].tolist() == g.reward[:16].tolist() == list(range(7, 23))
    for i in range(23, 27):  # continues as a 20-step buffer fed all along would
        g.add({STATE: np.array([i], np.float32)}, np.array([i], np.float32), float(i),
              {STATE: np.array([i + 1], np.float32)}, False, i // 4)  # fmt: skip
    ref = _buffer(27, 20)
    assert g.size == ref.size and _in_order(g, g.obs[STATE]) == _in_order(ref, ref.obs[STATE]) == list(range(7, 27))
    assert _in_order(g, g.episode) == _in_order(ref, ref.episode)
    s = b.resized(5)  # smaller: the newest steps
    assert (s.size, s.pos) == (5, 0) and s.obs[STATE][:, 0].tolist() == list(range(18, 23))


def test_resume_mid_episode_starts_a_new_episode_and_grows_the_buffer(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _train(out, "--steps", "50", "--save-freq", "50")  # checkpoint mid-way through episode 0 (100 steps)
    assert _state(out, 50)["buffer"].capacity == 50
    _train(out, "--resume", "--steps", "60")
    b = _state(out, 60)["buffer"]
    # F5: a buffer of the new --steps holding every step, in order (it kept capacity 50 and overwrote steps 1-10).
    assert (b.capacity, b.size, b.pos) == (60, 60, 0)
    # F4: the steps after the resume (an env reset) are another episode (they were stored as episode 0's).
    assert b.episode.tolist() == [0] * 50 + [1] * 10
    seam = 49  # next_obs[49] (interrupted) is not obs[50] (after the reset)
    assert not np.allclose(b.next_obs[STATE][seam], b.obs[STATE][seam + 1])
    for horizon in (2, 4):
        starts = b._valid_starts(horizon)
        assert len(starts) and not [s for s in starts if s <= seam < s + horizon - 1]
    # Within each episode, consecutive steps continue one another.
    same = b.episode[:-1] == b.episode[1:]
    assert np.allclose(b.next_obs[STATE][:-1][same], b.obs[STATE][1:][same])


def test_online_training_refuses_torchrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "run"
    tc = TrainConfig(policy="tdmpc", output_dir=str(out), env=REACH, steps=10, seed_steps=5)

    def start_run() -> None:
        raise AssertionError("the run folder must not be written")

    with pytest.raises(PolicyConfigError, match=r"one process.*rank 1 of WORLD_SIZE=2 \(torchrun\)"):
        train_online_mod.train_online(tc, out, torch.device("cpu"), None, start_run)
    assert not out.exists()
    # through train(): refused before torchrun's ranks would meet (no rendezvous is tried, none could answer here)
    from twinarm.agents.train import train

    with pytest.raises(PolicyConfigError, match="one process"):
        train(tc)
    assert not out.exists()


def test_online_ema_is_saved_evaluated_and_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluated: dict[int, dict[str, torch.Tensor]] = {}

    def fake_eval_row(tc: TrainConfig, policy: Any, step: int, out: Path, budget: Any) -> dict[str, Any]:
        evaluated[step] = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        return {"step": step, "n_episodes": 1, "pc_success": 0.0, "avg_max_reward": 0.0}

    monkeypatch.setattr(train_online_mod, "eval_row", fake_eval_row)
    out = tmp_path / "run"
    _train(out, "--steps", "30", "--save-freq", "30", "--ema", "--ema-max-decay", "0.9", "--eval-freq", "30")
    st = _state(out, 30)
    assert st["ema"]["steps"] == 10 + 5  # 20 seed steps -> 10 pretraining updates, then one every 2 env steps
    saved = load_file(str(out / "checkpoints" / "00000030" / "pretrained_model" / "model.safetensors"))
    shadow = st["ema"]["shadow"]
    assert all(torch.equal(saved[k], shadow[k]) for k in shadow if k in saved)
    assert all(torch.equal(evaluated[30][k], shadow[k]) for k in shadow)  # evaluated: the average
    k = next(k for k in shadow if k.startswith("model.") and not torch.equal(shadow[k], st["model"][k]))
    assert not torch.equal(saved[k], st["model"][k])  # the raw weights differ and are kept to resume
    _train(out, "--resume", "--steps", "40")
    assert _state(out, 40)["ema"]["steps"] == 15 + 5


def _log_steps(path: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]


def test_online_logs_drop_the_rows_of_a_killed_attempt(tmp_path: Path) -> None:
    """Rows logged after the last checkpoint (all of them, when the attempt died before its first) are written
    again by the next run, so they are dropped first: the log and the learning curve never run backwards."""
    out = tmp_path / "run"
    _train(out, "--steps", "20", "--save-freq", "20")
    with (out / "train_log.csv").open("a") as f:
        f.write("30\n")  # killed at step 35, before its checkpoint at 40
    _train(out, "--resume", "--steps", "30")
    assert _log_steps(out / "train_log.csv") == [10, 20, 30]  # was 10, 20, 30, 30
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "train_log.csv").write_text("step,loss\n10,0.5\n20,0.4\n")  # killed before its first checkpoint
    _train(fresh, "--steps", "10")
    assert _log_steps(fresh / "train_log.csv") == [10]


def test_online_ctrl_c_saves_the_step_and_its_replay_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (here: the stop flag raised after step 15, as `GracefulStop`'s handler raises it) saves that step
    with the replay buffer, so `--resume` continues with every transition (bad-input audit B2)."""
    from twinarm.agents.graceful_stop import GracefulStop

    class CtrlCAtStep15(GracefulStop):
        checks = 0

        @property
        def requested(self) -> bool:  # read once after each step
            CtrlCAtStep15.checks += 1
            return CtrlCAtStep15.checks >= 15

        @requested.setter
        def requested(self, value: bool) -> None:
            pass

    monkeypatch.setattr(train_online_mod, "GracefulStop", CtrlCAtStep15)
    out = tmp_path / "run"
    argv = ["train", "--policy", "tdmpc", "--env", REACH, "--obs-type", "state", "--output-dir", str(out),
            "--seed-steps", "20", "--batch-size", "4", "--eval-freq", "0", "--log-freq", "10", "--threads", "1",
            "--no-progress", "--device", "cpu", "--steps", "40", *TINY_TDMPC]  # fmt: skip
    assert main(argv) == 130
    assert _state(out, 15)["buffer"].size == 15
    monkeypatch.undo()
    _train(out, "--resume", "--steps", "20")
    assert _state(out, 20)["buffer"].size == 20


def test_a_resume_inside_the_seed_steps_goes_on_with_their_random_actions(tmp_path: Path) -> None:
    """Resumed at step 10 of 20 random seed steps, the run takes the actions an uninterrupted run takes at steps
    11-20, not those of steps 1-10 again (determinism audit F2)."""
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    _train(straight, "--steps", "20", "--save-freq", "20")
    _train(cut, "--steps", "10", "--save-freq", "10")
    _train(cut, "--resume", "--steps", "20", "--save-freq", "20")
    a, b = _state(straight, 20)["buffer"], _state(cut, 20)["buffer"]
    assert np.array_equal(b.action[:20], a.action[:20])
    assert not np.array_equal(b.action[10:20], a.action[:10])

