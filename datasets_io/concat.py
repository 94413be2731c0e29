"""Several LeRobot v3 datasets of one robot as one torch Dataset: co-training on sim and real recordings.

The datasets must agree on fps, robot type and features (names, dtypes, shapes), which sim and real recordings
of one arm at one image size do. Frames are drawn in proportion to each dataset's size; normalization stats
are the count-weighted combination of the datasets' stats (`stats.aggregate`, the rule LeRobot uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from twinarm.arms import same_robot
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import BatchSamples, LeRobotDatasetReader
from twinarm.datasets_io.stats import aggregate


def _signature(reader: LeRobotDatasetReader) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {k: (str(f["dtype"]), tuple(f["shape"])) for k, f in reader.features.items()}


class ConcatReader(torch.utils.data.Dataset):
    """Readers of datasets with equal fps, robot type and features, indexed one after another."""

    def __init__(self, readers: Sequence[LeRobotDatasetReader]) -> None:
        if not readers:
            raise ValueError("ConcatReader needs at least one dataset")
        first = readers[0]
        robot = first.meta.info.get("robot_type")
        for r in readers[1:]:
            if r.fps != first.fps:
                raise DatasetError(f"{r.root} is recorded at {r.fps} fps, {first.root} at {first.fps}: cannot mix them")
            if not same_robot(r.meta.info.get("robot_type"), robot):
                raise DatasetError(f"{r.root} is robot {r.meta.info.get('robot_type')!r}, {first.root} is {robot!r}")
            a, b = _signature(first), _signature(r)
            if a != b:
                diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
                raise DatasetError(f"{r.root} and {first.root} differ in features {diff}: "
                                   f"{ {k: b.get(k) for k in diff} } vs { {k: a.get(k) for k in diff} }")
        self.readers = list(readers)
        self.meta, self.fps, self.features = first.meta, first.fps, first.features
        self._starts = np.cumsum([0] + [len(r) for r in self.readers])

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        parts = [r.stats for r in self.readers]
        if any(p is None for p in parts):
            return None
        return aggregate(parts)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, indices: np.ndarray) -> np.ndarray:
        n = len(self)
        bad = indices[(indices < -n) | (indices >= n)]
        if bad.size:
            raise IndexError(f"index {int(bad[0])} out of range for {n} frames")
        return np.searchsorted(self._starts, indices % n, side="right") - 1

    def __getitem__(self, i: int) -> dict[str, Any]:
        k = int(self._locate(np.asarray([i]))[0])
        return self.readers[k][int(i % len(self)) - int(self._starts[k])]

    def get_batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """The collated batch of `indices`, in their order: one `get_batch` per dataset touched."""
        ii = np.asarray(indices, dtype=np.int64).reshape(-1)
        which = self._locate(ii)
        ii = ii % len(self)
        parts, order = [], []
        for k in np.unique(which):
            pos = np.flatnonzero(which == k)
            parts.append(self.readers[k].get_batch((ii[pos] - self._starts[k]).tolist()))
            order.append(pos)
        if len(parts) == 1:
            return parts[0]
        inverse = torch.from_numpy(np.argsort(np.concatenate(order)))
        batch: dict[str, Any] = {}
        for key in parts[0]:
            values = [p[key] for p in parts]
            if isinstance(values[0], torch.Tensor):
                batch[key] = torch.cat(values)[inverse]
            else:
                flat = [x for v in values for x in v]
                batch[key] = [flat[j] for j in inverse.tolist()]
        return batch

    def __getitems__(self, indices: Sequence[int]) -> BatchSamples:
        return BatchSamples(self.get_batch(indices))
