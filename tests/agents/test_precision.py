"""Mixed precision (`agents.precision`): bf16 autocast really reaches the forward passes of training, of evaluation
and of the chunk prefetcher's worker thread; float32 stays float32; the CLI refuses what cannot run."""

from __future__ import annotations

import csv
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

import twinarm  # noqa: F401  (registers the env ids)
from tests.agents.conftest import TINY, synthetic_stats, tiny_config
from twinarm.agents.precision import PRECISIONS, autocast, check_precision, cpu_compute_dtype
from twinarm.agents.registry import make_policy
from twinarm.cli.main import main

PICK = "twinarm/SO101-PickCube-v0"
BF16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
needs_bf16 = pytest.mark.skipif(not BF16, reason="this CPU has no native bf16 arithmetic (AVX512-BF16 or AMX)")


def watch_linears(module: nn.Module, seen: list[tuple[str, torch.dtype]]) -> list[RemovableHandle]:
    """Append (thread name, output dtype) of every nn.Linear call in `module` to `seen`."""

    def hook(m: nn.Module, args: object, out: torch.Tensor) -> None:
        seen.append((threading.current_thread().name, out.dtype))

    return [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Linear)]


@contextmanager
def linear_outputs(module: nn.Module) -> Iterator[list[tuple[str, torch.dtype]]]:
    """`watch_linears` while the context is open."""
    seen: list[tuple[str, torch.dtype]] = []
    handles = watch_linears(module, seen)
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def tiny_act() -> nn.Module:
    """A tiny state ACT whose inputs are PickCube's state observations."""
    torch.manual_seed(0)
    return make_policy("act", tiny_config("act"), synthetic_stats()).eval()


# ----- the module itself ---------------------------------------------------------------------------------
def test_float32_is_a_no_op_context() -> None:
    lin = nn.Linear(4, 3)
    with autocast("float32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
        assert lin(torch.randn(2, 4)).dtype == torch.float32
        assert cpu_compute_dtype() == torch.float32


def test_unknown_precision_is_refused_naming_the_choices() -> None:
    for bad in (lambda: check_precision("fp16", "cpu"), lambda: autocast("fp16", "cpu")):
        with pytest.raises(ValueError, match=r"one of \('float32', 'bf16'\), got 'fp16'"):
            bad()


@needs_bf16
def test_bf16_autocast_runs_linears_in_bf16_and_keeps_weights_float32() -> None:
    lin = nn.Linear(4, 3)
    with autocast("bf16", "cpu"):
        assert lin(torch.randn(2, 4)).dtype == torch.bfloat16
        assert cpu_compute_dtype() == torch.bfloat16
    assert lin.weight.dtype == torch.float32 and cpu_compute_dtype() == torch.float32


# ----- training -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def one_episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scripted PickCube episode with state observations, in LeRobot units."""
    from twinarm.arms import get_arm
    from twinarm.datasets_io.recorder import gym_frame, record
    from twinarm.datasets_io.writer import DatasetWriter
    from twinarm.envs.experts import make_expert

    root = tmp_path_factory.mktemp("data") / "pick1"
    spec = get_arm("so101")
    features = spec.lerobot_features(cameras=(), env_state_dim=7)
    writer = DatasetWriter.create(root, spec.control_hz, features, robot_type=spec.robot_type)
    record(partial(gym.make, PICK, obs_type="state"), make_expert, writer, episodes=1, task="Pick up the cube.",
           to_frame=partial(gym_frame, convert=spec.to_lerobot), progress=False)
    writer.finalize()
    return root


def tiny_act_flags() -> list[str]:
    return [a for k, v in TINY["act"].items() for a in ("--set", f"{k}={json.dumps(v)}")]


@needs_bf16
def test_bf16_training_runs_its_forward_passes_in_bf16(
    one_episode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`twinarm train --precision bf16`: the training forwards' linear layers put out bf16, the loss is a finite
    float32 and the run's train_config.json says bf16; the weights it saves stay float32."""
    import twinarm.agents.train as train_mod

    seen: list[tuple[str, torch.dtype]] = []
    build = train_mod.build_policy_offline

    def build_and_watch(*args: object) -> nn.Module:
        policy = build(*args)
        watch_linears(policy, seen)  # the hooks live as long as this policy
        return policy

    monkeypatch.setattr(train_mod, "build_policy_offline", build_and_watch)
    out = tmp_path / "run"
    assert main(["train", "--policy", "act", "--dataset", str(one_episode), "--output-dir", str(out), "--steps", "3",
                 "--batch-size", "4", "--log-freq", "1", "--threads", "1", "--no-progress", "--precision", "bf16",
                 *tiny_act_flags()]) == 0  # fmt: skip
    assert seen and {dtype for _, dtype in seen} == {torch.bfloat16}
    with (out / "train_log.csv").open() as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert json.loads((out / "train_config.json").read_text())["precision"] == "bf16"
    from safetensors.torch import load_file

    weights = load_file(str(out / "checkpoints" / "00000003" / "pretrained_model" / "model.safetensors"))
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float32}


def test_train_refuses_bf16_without_bf16_hardware(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--policy", "act", "--dataset", str(tmp_path), "--output-dir", str(tmp_path / "run"),
              "--device", "cpu", "--precision", "bf16"])  # fmt: skip
    assert exc.value.code == 2
    assert "--precision bf16: this CPU has no native bf16 arithmetic" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_precision_from_a_config_file_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --config file's value goes through the flag's own argparse action, choices included (twinarm.cli.config_file)."""
    cfg = tmp_path / "train.yaml"
    cfg.write_text("precision: fp16\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--policy", "act", "--dataset", str(tmp_path), "--output-dir", str(tmp_path / "run"),
              "--device", "cpu", "--config", str(cfg)])  # fmt: skip
    assert exc.value.code == 2
    assert "precision: invalid choice: 'fp16' (choose from 'float32', 'bf16')" in capsys.readouterr().err


def test_cli_choices_are_the_modules() -> None:
    from twinarm.cli.train_cmd import PRECISIONS as CLI_PRECISIONS

    assert CLI_PRECISIONS == PRECISIONS


# ----- evaluation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("precision", "prefetch_at"),
    [("float32", 0), pytest.param("bf16", 0, marks=needs_bf16), pytest.param("bf16", 4, marks=needs_bf16)],
)
def test_evaluate_runs_every_policy_call_in_its_precision(precision: str, prefetch_at: int) -> None:
    """Every linear layer of every policy call (the warm-up and the episodes', in the prefetcher's worker too)
    puts out the precision's dtype; the result records it."""
    from twinarm.agents.eval import evaluate

    policy = tiny_act()
    with linear_outputs(policy) as seen:
        res = evaluate(policy, PICK, n_episodes=1, n_envs=1, max_steps=10, precision=precision, prefetch_at=prefetch_at)
    assert res.aggregated["n_episodes"] == 1 and res.lengths == [10]
    want = torch.bfloat16 if precision == "bf16" else torch.float32
    assert seen and {dtype for _, dtype in seen} == {want}
    if prefetch_at:
        assert any(name.startswith("chunk-prefetch") for name, _ in seen)
    assert res.to_json()["precision"] == precision
    from twinarm.agents.eval import format_table

    printed = format_table(res.aggregated, res.latency, res.precision)
    assert (printed.splitlines()[-1].split() == ["precision", "bf16"]) == (precision == "bf16")  # named if not float32
    assert not policy.training and all(p.dtype == torch.float32 for p in policy.parameters())


@needs_bf16
def test_prefetcher_worker_thread_runs_in_bf16() -> None:
    """Autocast is thread-local: the prefetcher sets it in its worker, with nothing set by the caller."""
    from twinarm.agents.prefetch import ChunkPrefetcher

    policy = tiny_act()
    batch = {k: torch.randn(1, *f.shape) for k, f in policy.config.input_features.items()}
    for precision, want in (("bf16", torch.bfloat16), ("float32", torch.float32)):
        prefetcher = ChunkPrefetcher(policy, refill_at=2, precision=precision)
        try:
            with linear_outputs(policy) as seen, torch.inference_mode():
                prefetcher.reset()
                actions = [prefetcher.select_action(batch) for _ in range(10)]
        finally:
            prefetcher.close()
        assert all(a.shape == (1, 6) for a in actions)
        assert seen and {(name.startswith("chunk-prefetch"), dtype) for name, dtype in seen} == {(True, want)}


def test_eval_refuses_bf16_with_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--policy", str(tmp_path), "--int8", "--precision", "bf16", "--out", str(tmp_path / "ev")])
    assert exc.value.code == 2
    assert "--precision bf16: not with --int8" in capsys.readouterr().err


@needs_bf16
def test_online_tdmpc_trains_and_plans_in_bf16(tmp_path: Path) -> None:
    """Online TD-MPC under `--precision bf16`: CEM plans while acting and world-model updates both run under the
    autocast (the planning heads' bf16 packs), and the losses stay finite."""
    out = tmp_path / "tdmpc"
    assert main(["train", "--policy", "tdmpc", "--env", "twinarm/SO101-Reach-v0", "--obs-type", "state",
                 "--output-dir", str(out), "--steps", "200", "--seed-steps", "110", "--batch-size", "16",
                 "--save-freq", "200", "--eval-freq", "0", "--threads", "1", "--no-progress", "--precision", "bf16",
                 "--set", "mlp_dim=32", "--set", "latent_dim=16", "--set", "n_gaussian_samples=16",
                 "--set", "n_pi_samples=4", "--set", "n_elites=4", "--set", "cem_iterations=2",
                 "--set", "horizon=3"]) == 0  # fmt: skip
    with (out / "train_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [100, 200]  # learning from step 110: the second episode's row
    assert math.isfinite(float(rows[1]["loss"])) and float(rows[1]["loss"]) > 0
