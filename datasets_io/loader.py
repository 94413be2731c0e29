"""`make_dataloader`: torch's DataLoader over a `LeRobotDatasetReader`, tuned for cheap batches.

Usage (what the README shows)::

    ds = LeRobotDatasetReader("user/dataset", delta_timestamps={"action": [i / 30 for i in range(100)]})
    loader = make_dataloader(ds, batch_size=8, num_workers=2, shuffle=True)
    for batch in loader: ...  # LeRobot's batch: float32 CHW images in [0, 1], same keys and values

What it changes against a plain `torch.utils.data.DataLoader(ds, ...)` (the batches are equal):

* workers build each batch in one pass (`LeRobotDatasetReader.get_batch`: one gather per column, the
  batch's video frames decoded in file order) instead of item by item and re-stacking;
* camera images cross from the workers as uint8 (4x fewer bytes than float32) and are turned into
  float32 / 255 in the main process (numpy, one thread, bit-identical to the reader's own conversion);
* the batch crosses as numpy arrays through the worker's result pipe rather than as ~10 shared-memory
  tensors, each of which costs a file-descriptor hand-over between the processes;
* workers run one torch thread and stay alive across epochs (`persistent_workers`);
* workers freeze what they inherit out of the garbage collector (freeing PyAV decoders inherited through
  fork blocks forever).

With `image_transforms` on the dataset, or `uint8_images=True`, images cross as the dataset makes them.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, default_collate, get_worker_info

from twinarm.datasets_io.reader import BatchSamples, LeRobotDatasetReader


def _reader_of(dataset: Dataset) -> LeRobotDatasetReader | None:
    """The reader under `dataset` (itself or through `Subset`s), or None."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset if isinstance(dataset, LeRobotDatasetReader) else None


def _uint8_keys(dataset: Dataset) -> list[str]:
    """Camera keys whose images can cross processes as uint8 and be made float in the main process (not
    depth cameras: their float32 millimetres cross as they are)."""
    reader = _reader_of(dataset)
    if reader is None or reader.uint8_images or reader.image_transforms is not None:
        return []
    return [k for k in reader.cameras if k not in reader.meta.depth]


def collate_batch(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """`default_collate`, reusing the batch a reader's `__getitems__` already built; inside a worker the
    tensors are handed on as numpy arrays (pickled through the result pipe, no shared-memory files)."""
    batch = samples.batch if isinstance(samples, BatchSamples) else default_collate(samples)
    if get_worker_info() is None or not isinstance(batch, dict):
        return batch
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class _WorkerInit:
    """Per-worker setup: one torch thread, uint8 images from this worker's copy of the reader."""

    def __init__(self, uint8: bool, user_fn: Callable[[int], None] | None) -> None:
        self.uint8 = uint8
        self.user_fn = user_fn

    def __call__(self, worker_id: int) -> None:
        # Everything inherited through fork is frozen out of the garbage collector: a collection that freed
        # inherited garbage holding PyAV decoders (a dropped reader in a reference cycle) blocks forever in
        # the child, as freeing FFmpeg state inherited through fork does (see video.VideoPool).
        gc.freeze()
        # One torch thread (torch does this for its workers too; kept explicit). OpenCV's pool is left
        # alone: resizing a pool inherited through fork deadlocks.
        torch.set_num_threads(1)
        info = get_worker_info()
        if self.uint8 and info is not None:
            reader = _reader_of(info.dataset)
            if reader is not None:
                reader._uint8_transport = True
        if self.user_fn is not None:
            self.user_fn(worker_id)


class LeRobotDataLoader(DataLoader):
    """A `DataLoader` whose workers send uint8 images that it turns into float32 [0, 1] as it yields
    each batch; made by `make_dataloader`."""

    uint8_keys: list[str]

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for batch in super().__iter__():
            yield self._finish(batch)

    def _finish(self, batch: Any) -> Any:
        if not isinstance(batch, dict):
            return batch
        out = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
        for k in self.uint8_keys:
            v = out.get(k)
            if isinstance(v, torch.Tensor) and v.dtype == torch.uint8:
                out[k] = torch.from_numpy(np.divide(v.numpy(), np.float32(255), dtype=np.float32))
        if self.pin_memory and torch.cuda.is_available():  # the pin thread saw numpy arrays and uint8 images
            out = {k: v.pin_memory() if isinstance(v, torch.Tensor) and not v.is_pinned() else v for k, v in out.items()}
        return out


def make_dataloader(
    dataset: Dataset,
    batch_size: int = 1,
    num_workers: int = 0,
    shuffle: bool = False,
    *,
    persistent_workers: bool | None = None,
    prefetch_factor: int | None = None,
    worker_init_fn: Callable[[int], None] | None = None,
    **kwargs: Any,
) -> LeRobotDataLoader:
    """A DataLoader over a `LeRobotDatasetReader` (or a `Subset` of one) yielding the same batches as
    `torch.utils.data.DataLoader(dataset, batch_size, shuffle=shuffle, num_workers=num_workers)`, faster
    with workers (see the module docstring for how).

    Args:
        dataset: the reader (any other Dataset works, without the uint8 hand-over).
        batch_size, num_workers, shuffle: as for DataLoader.
        persistent_workers: keep workers (and their open decoders) across epochs; default on with workers.
        prefetch_factor: batches each worker prepares ahead (DataLoader's default, 2, when None).
        worker_init_fn: called in each worker after twinarm's own setup.
        **kwargs: passed on to `torch.utils.data.DataLoader` (sampler, drop_last, generator, pin_memory, ...).
    """
    if num_workers > 0 and persistent_workers is None:
        persistent_workers = True
    if kwargs.pop("collate_fn", None) is not None:
        raise ValueError("make_dataloader uses its own collate_fn; use torch.utils.data.DataLoader for a custom one")
    keys = _uint8_keys(dataset) if num_workers > 0 else []
    loader = LeRobotDataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate_batch,
        persistent_workers=bool(persistent_workers),
        prefetch_factor=prefetch_factor,
        worker_init_fn=_WorkerInit(bool(keys), worker_init_fn) if num_workers > 0 else worker_init_fn,
        **kwargs,
    )
    loader.uint8_keys = keys
    return loader
