"""Action-chunk prefetching for real-time control: the next chunk is computed in a background thread while the
current one is executed, so a control loop does not stop for a whole inference every `n_action_steps` steps.

The idea of LeRobot's asynchronous inference, in one process: when `refill_at` queued actions are left, the
latest observation goes to a worker thread; the chunk that comes back was planned for the step it was asked
at, so the actions for the steps that passed while it was computed are dropped and the rest replace the queue.
With `refill_at=0` the next chunk is asked for only when the queue is empty and waited for: exactly the
policy's own `select_action`. Works with any policy that has `predict_action_chunk` (ACT without temporal
ensembling, Diffusion Policy); observation histories (Diffusion's `n_obs_steps`) are kept here.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from torch import Tensor

from twinarm.agents.precision import autocast, check_precision
from twinarm.agents.thread_budget import ThreadBudget, on_budget


class ChunkPrefetcher:
    """Wraps a chunking policy with the `select_action(batch)` / `reset()` interface of a policy; its chunks are
    computed in `precision` (`agents.precision`), on the threads `thread_budget` grants each one when given."""

    def __init__(
        self, policy: Any, refill_at: int, precision: str = "float32", thread_budget: ThreadBudget | None = None
    ) -> None:
        self.n_steps = self.check(policy, refill_at)
        self.policy, self.refill_at, self.precision = policy, refill_at, precision
        self.thread_budget = thread_budget
        # Only bf16 needs the policy's device (stand-ins for a policy in tests have none).
        self._device = policy.device if precision != "float32" else torch.device("cpu")
        check_precision(precision, self._device)
        cfg = policy.config
        self.n_obs = int(getattr(cfg, "n_obs_steps", 1))
        self._history: deque[dict[str, Tensor]] = deque(maxlen=self.n_obs)
        self._queue: deque[tuple[int, Tensor]] = deque()  # (step the action is for, action (B, A))
        self._pending: Future[Tensor] | None = None
        self._pending_step = 0
        self._step = 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-prefetch")
        #: How many chunks were taken because the queue had run dry (the loop waited for them unless they happened
        #: to be ready); the first chunk of an episode always is. Deterministic, unlike timing the wait.
        self.ran_dry = 0

    @staticmethod
    def check(policy: Any, refill_at: int) -> int:
        """The policy's executed chunk length, if it can be prefetched with `refill_at`; ValueError saying why not."""
        cfg = policy.config
        if not hasattr(policy, "predict_action_chunk") or not hasattr(cfg, "n_action_steps"):
            raise ValueError(f"{type(policy).__name__} does not plan action chunks; prefetching needs one that does")
        if getattr(cfg, "temporal_ensemble_coeff", None) is not None:
            raise ValueError("temporal ensembling infers a chunk at every step; prefetching executes chunks "
                             "(set temporal_ensemble_coeff to null and n_action_steps > 1)")
        n_steps = int(cfg.n_action_steps)
        if not 0 <= refill_at < n_steps:
            raise ValueError(f"refill_at must be in [0, n_action_steps={n_steps}), got {refill_at}")
        return n_steps

    # ----- the policy interface ---------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new episode: a chunk still being computed is waited for and thrown away."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
        self._queue.clear()
        self._history.clear()
        self._step = 0
        self.policy.reset()

    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        """The action for this step (B, A), in dataset units, like the policy's own `select_action`."""
        t = self._step
        self._step += 1
        self._remember(batch)
        if self._pending is None and len(self._queue) <= self.refill_at:
            self._ask(t)
        if self._pending is not None and (self._pending.done() or not self._queue):
            self._take(t, dry=not self._queue)
        if not self._queue:  # the chunk that came back was all in the past: ask now and wait
            self._ask(t)
            self._take(t, dry=True)
        return self._queue.popleft()[1]

    @property
    def pending(self) -> Future[Tensor] | None:
        """The chunk being computed in the background, if any."""
        return self._pending

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)

    # ----- internals ----------------------------------------------------------------------------------
    def _remember(self, batch: dict[str, Tensor]) -> None:
        if not self._history:
            self._history.extend([batch] * self.n_obs)
        else:
            self._history.append(batch)

    def _inputs(self) -> dict[str, Tensor]:
        if self.n_obs == 1:
            return self._history[-1]
        return {k: torch.stack([h[k] for h in self._history], dim=1) for k in self._history[-1]}

    def _ask(self, t: int) -> None:
        self._pending = self._worker.submit(self._infer, self._inputs())
        self._pending_step = t

    def _infer(self, inputs: dict[str, Tensor]) -> Tensor:
        # All thread-local: the caller's inference mode, autocast and thread count do not reach this worker.
        with on_budget(self.thread_budget), torch.inference_mode(), autocast(self.precision, self._device):
            return self.policy.predict_action_chunk(inputs)[:, : self.n_steps]

    def _take(self, t: int, dry: bool) -> None:
        """Replace the queue with the pending chunk's actions for steps t and later (waits if not ready)."""
        assert self._pending is not None
        self.ran_dry += dry
        chunk, start = self._pending.result(), self._pending_step
        self._pending = None
        self._queue = deque((start + i, chunk[:, i]) for i in range(chunk.shape[1]) if start + i >= t)
