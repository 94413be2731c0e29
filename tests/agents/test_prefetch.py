"""Chunk prefetching: with refill_at=0 it is the policy's own select_action, action for action; with refill_at>0
a chunk asked for at step s and back at step t replaces the queue from t on, its first t - s actions dropped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch

from tests.agents.conftest import synthetic_stats, tiny_config
from twinarm.agents.prefetch import ChunkPrefetcher
from twinarm.agents.registry import make_policy


def _steps(config, n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:  # noqa: ANN001
    g = torch.Generator().manual_seed(seed)
    return [{k: torch.randn(2, *f.shape, generator=g) for k, f in config.input_features.items()} for _ in range(n)]


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_refill_at_zero_is_the_policys_own_select_action(name: str) -> None:
    policy = make_policy(name, tiny_config(name, with_image=True), synthetic_stats(with_image=True)).eval()
    steps = _steps(policy.config, 3 * policy.config.n_action_steps + 1)

    def run(actor) -> torch.Tensor:  # noqa: ANN001
        torch.manual_seed(5)
        actor.reset()
        with torch.inference_mode():
            return torch.stack([actor.select_action(b) for b in steps])

    prefetcher = ChunkPrefetcher(policy, refill_at=0)
    try:
        assert torch.equal(run(prefetcher), run(policy))
        assert prefetcher.ran_dry == 4  # one chunk per n_action_steps, each waited for
    finally:
        prefetcher.close()


class GatedChunker:
    """A chunking 'policy' whose k-th inference waits for gates[k]; its chunk holds 100 * (asked step) + i."""

    def __init__(self, n: int, calls: int) -> None:
        self.config = SimpleNamespace(n_action_steps=n)
        self.gates = [threading.Event() for _ in range(calls)]
        self.calls = 0

    def reset(self) -> None:
        pass

    def open_all(self) -> None:
        for g in self.gates:
            g.set()

    def predict_action_chunk(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        k, self.calls = self.calls, self.calls + 1
        assert self.gates[k].wait(timeout=30)
        step = inputs["step"][:, :1]  # (B, 1)
        return (100 * step + torch.arange(self.config.n_action_steps + 3))[:, :, None].float()  # (B, chunk, 1)


def _obs(t: int) -> dict[str, torch.Tensor]:
    return {"step": torch.full((1, 1), float(t))}


@contextmanager
def _gated(n: int, calls: int, refill_at: int) -> Iterator[tuple[GatedChunker, ChunkPrefetcher]]:
    """A prefetcher over a GatedChunker whose first inference is let through; every gate opens at the end."""
    fake = GatedChunker(n=n, calls=calls)
    fake.gates[0].set()
    pre = ChunkPrefetcher(fake, refill_at=refill_at)
    try:
        yield fake, pre
    finally:
        fake.open_all()
        pre.close()


def test_a_chunk_that_comes_back_late_drops_the_steps_that_passed() -> None:
    with _gated(n=5, calls=3, refill_at=2) as (fake, pre):
        got = [float(pre.select_action(_obs(t))) for t in range(5)]  # chunk 0; chunk 1 asked at step 3, gated
        assert got == [0, 1, 2, 3, 4] and pre.pending is not None and not pre.pending.done()
        fake.gates[1].set()
        assert float(pre.select_action(_obs(5))) == 302  # asked at 3, used from 5: its actions 2, 3, 4
        assert [float(pre.select_action(_obs(t))) for t in (6, 7)] == [303, 304]
        assert pre.ran_dry == 2  # the first chunk, and the one the queue ran dry for


def test_a_chunk_ready_before_the_queue_runs_dry_replaces_the_older_actions() -> None:
    with _gated(n=5, calls=3, refill_at=3) as (fake, pre):
        got = [float(pre.select_action(_obs(t))) for t in range(3)]  # chunk 1 asked at step 2
        assert got == [0, 1, 2]
        fake.gates[1].set()
        wait([pre.pending])
        assert [float(pre.select_action(_obs(t))) for t in (3, 4, 5)] == [201, 202, 203]
        assert pre.ran_dry == 1  # only the first chunk was waited for


def test_reset_waits_for_and_discards_a_pending_chunk() -> None:
    with _gated(n=4, calls=4, refill_at=2) as (fake, pre):
        for t in range(3):
            pre.select_action(_obs(t))
        assert pre.pending is not None
        fake.gates[1].set()
        pre.reset()
        fake.gates[2].set()
        assert float(pre.select_action(_obs(10))) == 1000  # a new episode starts from a fresh chunk


def test_refuses_what_it_cannot_prefetch() -> None:
    act = make_policy("act", tiny_config("act", temporal_ensemble_coeff=0.01, n_action_steps=1))
    with pytest.raises(ValueError, match="temporal ensembling"):
        ChunkPrefetcher(act, refill_at=0)
    with pytest.raises(ValueError, match="does not plan action chunks"):
        ChunkPrefetcher(make_policy("tdmpc", tiny_config("tdmpc")), refill_at=0)
    with pytest.raises(ValueError, match=r"refill_at must be in \[0, n_action_steps=8\)"):
        ChunkPrefetcher(make_policy("act", tiny_config("act")), refill_at=8)


def test_eval_names_a_prefetch_it_cannot_do(tmp_path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    from twinarm.cli.main import main

    ckpt = tmp_path / "act"
    make_policy("act", tiny_config("act")).save_pretrained(ckpt)
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(ckpt), "--prefetch-at", "8", "--out", str(tmp_path / "e")])
    assert "--prefetch-at 8: refill_at must be in [0, n_action_steps=8), got 8" in capsys.readouterr().err
