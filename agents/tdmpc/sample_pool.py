"""Sample-parallel evaluation for TD-MPC's int8 planner: the CEM samples split into one chunk per thread, each
chunk evaluated start to end in its own worker on one intra-op thread.

Why: with intra-op threads, every int8 matmul and every norm or activation after it splits its rows between
the threads its own way, so rows change hands between the cores at each op. On the 2-core VM this project is
timed on that is cheap at times and costly for tens of seconds at others: one int8 plan took 263-290 ms, then
385-420 ms, while single-threaded kernels timed the same in both. Chunks that never change threads took 270-290
ms in both. Float32 planning gains nothing from it (it lost up to 10 % in the slow periods) and keeps its
intra-op threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

#: Fewer rows per thread than this evaluate in the calling thread (the policy prior's 51 samples, small tests).
MIN_ROWS_PER_THREAD = 128


class SamplePool:
    """`threads` worker threads, each with one intra-op thread (torch's and MKL's thread counts are per OS
    thread), started at once; the process default the workers' setting also changed is put back. `usable`
    says whether this process can use it (a forked child inherits the pool but not its threads)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.pid = os.getpid()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tdmpc-samples")
        started = threading.Barrier(threads)

        def one_intra_op_thread() -> None:
            torch.get_num_threads()  # torch's lazy per-thread init first, or it later resets this thread's count
            torch.set_num_threads(1)
            started.wait()  # so each task holds its own worker: `threads` workers start

        for future in [self._pool.submit(one_intra_op_thread) for _ in range(threads)]:
            future.result()
        torch.set_num_threads(threads)  # the default for threads started later, which a worker set to 1

    def rows(self, fn: Callable[[Tensor, Tensor], Tensor], z: Tensor, actions: Tensor) -> Tensor:
        """fn(z, actions) for latents z (N, Z) and action sequences (H, N, A), computed as fn over one chunk of
        the N rows per worker and concatenated (fn must treat rows independently)."""
        n = z.shape[0]
        bounds = [n * i // self.threads for i in range(self.threads + 1)]
        futures = [
            self._pool.submit(fn, z[lo:hi], actions[:, lo:hi]) for lo, hi in zip(bounds, bounds[1:], strict=False)
        ]
        return torch.cat([f.result() for f in futures])

    def usable(self, threads: int) -> bool:
        """Whether this pool serves `threads` workers in this process."""
        return self.threads == threads and self.pid == os.getpid()

    def shutdown(self) -> None:
        if self.pid == os.getpid():
            self._pool.shutdown(wait=False)


def pool_applies(rows: int, device: torch.device, threads: int) -> bool:
    """Whether splitting `rows` samples over `threads` workers pays: CPU tensors, at least two threads and
    `MIN_ROWS_PER_THREAD` rows each."""
    return device.type == "cpu" and threads > 1 and rows >= MIN_ROWS_PER_THREAD * threads
