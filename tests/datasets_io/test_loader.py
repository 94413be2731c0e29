"""`make_dataloader` and the reader's batched `__getitems__`: the same batches as a plain DataLoader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset, default_collate

from twinarm.datasets_io.loader import LeRobotDataLoader, make_dataloader
from twinarm.datasets_io.reader import LeRobotDatasetReader

DELTAS = {"action": [-0.1, 0.0, 0.1], "observation.images.front": [-0.2, 0.0], "observation.images.wrist": [0.0, 0.3]}


def assert_batches_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert isinstance(b[k], torch.Tensor) and a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("kwargs", [{}, {"delta_timestamps": DELTAS}, {"uint8_images": True}])
def test_getitems_equals_items(small_dataset, kwargs):
    root, _ = small_dataset
    ds = LeRobotDatasetReader(root, **kwargs)
    for idx in ([0, 5, 33, 11, 12, -1], list(range(len(ds)))[::-1]):
        ref = default_collate([ds[i] for i in idx])
        assert_batches_equal(ref, ds.get_batch(idx))
        samples = ds.__getitems__(idx)
        assert len(samples) == len(idx)
        assert_batches_equal(ref, default_collate(samples))
    with pytest.raises(IndexError):
        ds.get_batch([0, len(ds)])


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("deltas", [None, DELTAS])
def test_make_dataloader_equals_plain_dataloader(small_dataset, num_workers, deltas):
    root, _ = small_dataset
    ds = LeRobotDatasetReader(root, delta_timestamps=deltas)
    plain = list(DataLoader(ds, batch_size=5, num_workers=num_workers, shuffle=True,
                            generator=torch.Generator().manual_seed(3)))
    fast = make_dataloader(ds, batch_size=5, num_workers=num_workers, shuffle=True,
                           generator=torch.Generator().manual_seed(3))
    assert isinstance(fast, LeRobotDataLoader) and len(fast) == len(plain)
    first = list(fast)
    assert len(first) == len(plain)
    for a, b in zip(plain, first, strict=True):
        assert_batches_equal(a, b)
        assert b["observation.images.front"].dtype == torch.float32
    # a second epoch (persistent workers with their open decoders): a new order, the same samples
    seen = []
    for b in fast:
        idx = b["index"].tolist()
        assert_batches_equal(default_collate([ds[i] for i in idx]), b)
        seen += idx
    assert sorted(seen) == list(range(len(ds)))


def test_make_dataloader_images_cross_as_uint8(small_dataset):
    """Workers really hand over uint8 images (the point of make_dataloader), and the loader turns them
    back into the exact floats."""
    root, _ = small_dataset
    ds = LeRobotDatasetReader(root)
    loader = make_dataloader(ds, batch_size=4, num_workers=1)
    assert sorted(loader.uint8_keys) == sorted(ds.meta.camera_keys)
    raw = []
    orig = loader._finish
    loader._finish = lambda b: (raw.append(b), orig(b))[1]  # type: ignore[method-assign]
    batches = list(loader)
    assert raw and all(r["observation.images.front"].dtype == np.uint8 for r in raw)
    for r, b in zip(raw, batches, strict=True):
        assert torch.equal(b["observation.images.front"], torch.from_numpy(r["observation.images.front"]).float() / 255)


def test_make_dataloader_keeps_uint8_images_and_subsets(small_dataset):
    root, _ = small_dataset
    ds = LeRobotDatasetReader(root, uint8_images=True)
    assert make_dataloader(ds, batch_size=4, num_workers=1).uint8_keys == []
    b = next(iter(make_dataloader(ds, batch_size=4, num_workers=1)))
    assert b["observation.images.front"].dtype == torch.uint8
    sub = Subset(LeRobotDatasetReader(root, delta_timestamps=DELTAS), [3, 20, 1, 30, 7])
    plain = list(DataLoader(sub, batch_size=2))
    fast = list(make_dataloader(sub, batch_size=2, num_workers=2))
    for a, b2 in zip(plain, fast, strict=True):
        assert_batches_equal(a, b2)


def test_make_dataloader_with_transforms_runs_them_in_workers(small_dataset):
    root, _ = small_dataset
    ds = LeRobotDatasetReader(root, image_transforms=lambda x: x.flip(-1))
    assert make_dataloader(ds, batch_size=4, num_workers=2).uint8_keys == []
    plain = list(DataLoader(ds, batch_size=6))
    fast = list(make_dataloader(ds, batch_size=6, num_workers=2))
    for a, b in zip(plain, fast, strict=True):
        assert_batches_equal(a, b)
    with pytest.raises(ValueError, match="collate_fn"):
        make_dataloader(ds, batch_size=2, collate_fn=default_collate)


def test_make_dataloader_after_opencv_threads_in_parent(small_dataset):
    """OpenCV's thread pool, started in the parent, must not be touched in forked workers (resizing it
    there deadlocks on the inherited pool); `timeout` turns a hang into an error."""
    import cv2

    cv2.cvtColor(np.zeros((2000, 2000, 3), np.uint8), cv2.COLOR_RGB2YUV_I420)  # starts cv2's worker threads
    root, _ = small_dataset
    ds = LeRobotDatasetReader(root)
    batches = list(make_dataloader(ds, batch_size=8, num_workers=2, timeout=60))
    assert sum(len(b["index"]) for b in batches) == len(ds)


class _CollectingTransform:
    """An image transform that runs a full garbage collection (in the worker that calls it)."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        import gc

        gc.collect()
        return img


def test_workers_never_collect_inherited_decoders(small_dataset):
    """A dropped reader in a reference cycle still holds PyAV decoders when the workers fork; a worker whose
    garbage collection freed them would block forever (FFmpeg state inherited through fork), so workers freeze
    what they inherit. Without that this test hangs (`timeout` turns it into an error)."""
    import gc

    root, _ = small_dataset
    gc.disable()  # keep the cycle uncollected here until the workers fork
    try:
        dropped = LeRobotDatasetReader(root)
        for i in range(len(dropped)):  # open decoders, with cached frames
            dropped[i]
        cycle: dict = {"reader": dropped}
        cycle["self"] = cycle  # only the cyclic collector can free it
        del dropped, cycle
        ds = LeRobotDatasetReader(root, image_transforms=_CollectingTransform())
        batches = list(make_dataloader(ds, batch_size=8, num_workers=1, timeout=30))
    finally:
        gc.enable()
    assert sum(len(b["index"]) for b in batches) == len(ds)


def test_reader_decodes_only_the_cameras_asked_for(small_dataset):
    """`cameras=` restricts which camera features are decoded (training passes the policy's own); the other
    columns are unchanged, unknown names and deltas on a left-out camera are named."""
    from twinarm.datasets_io.layout import DatasetError

    root, _ = small_dataset
    full = LeRobotDatasetReader(root)
    assert full.cameras  # the fixture has cameras
    none = LeRobotDatasetReader(root, cameras=[])
    item, batch = none[3], none.get_batch([0, 3])
    assert not set(full.cameras) & (set(item) | set(batch))
    for k, v in full[3].items():
        if k not in full.cameras:
            assert (item[k] == v) if isinstance(v, str) else torch.equal(item[k], v)
    one = LeRobotDatasetReader(root, cameras=full.cameras[:1])
    assert [k for k in one[3] if k in full.cameras] == full.cameras[:1]
    torch.testing.assert_close(one[3][full.cameras[0]], full[3][full.cameras[0]])
    with pytest.raises(DatasetError, match="are not camera features"):
        LeRobotDatasetReader(root, cameras=["observation.images.nope"])
    with pytest.raises(DatasetError, match="left out by cameras"):
        LeRobotDatasetReader(root, cameras=[], delta_timestamps={full.cameras[0]: [0.0]})


def test_reader_takes_the_envs_short_camera_names(small_dataset):
    """`cameras=["front"]` (the name the envs' and recorder's `cameras=` take) means the one feature ending
    in `.front`; full keys still work, and an unknown name is refused listing both forms of every camera."""
    from twinarm.datasets_io.layout import DatasetError

    root, _ = small_dataset
    short = LeRobotDatasetReader(root, cameras=["front"])
    assert short.cameras == ["observation.images.front"]
    assert "observation.images.front" in short[0] and "observation.images.wrist" not in short[0]
    assert LeRobotDatasetReader(root, cameras="wrist").cameras == ["observation.images.wrist"]
    both = LeRobotDatasetReader(root, cameras=["wrist", "observation.images.front", "front"])
    assert both.cameras == LeRobotDatasetReader(root).cameras
    with pytest.raises(DatasetError, match=r"cameras \['top'\] are not camera features.*"
                                           r"observation\.images\.wrist \(wrist\)"):
        LeRobotDatasetReader(root, cameras=["top", "front"])
    with pytest.raises(DatasetError, match="are not camera features"):
        LeRobotDatasetReader(root, cameras=["images.front.x"])
