"""Videos encoded in worker threads (what a real-time recording loop uses): the same bytes as encoding in the
caller, a caller that reuses its frame array still gets every frame, encoder errors reach the caller, and an
aborted episode leaves nothing running. Encoded bytes depend only on the frames, not on the process's history."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from ds_helpers import feats, front_image

from twinarm.datasets_io.video import EpisodeEncoder, ThreadedEncoder, x264_deterministic
from twinarm.datasets_io.writer import EpisodeBuffer


def _episode(background: bool, reuse: bool):  # noqa: ANN202
    buf = EpisodeBuffer(feats(), 10, background=background)
    rng = np.random.default_rng(0)
    frame_array = np.empty((32, 48, 3), np.uint8)
    for t in range(25):
        if reuse:  # one array, overwritten every step, as a camera driver's buffer may be
            frame_array[:] = front_image(0, t)
            img = frame_array
        else:
            img = front_image(0, t)
        buf.add_frame({"observation.state": rng.normal(size=3).astype(np.float32),
                       "action": rng.normal(size=3).astype(np.float32),
                       "observation.images.wrist": rng.integers(0, 256, (16, 24, 3), dtype=np.uint8),
                       "observation.images.front": img}, task="t")  # fmt: skip
    return buf.finish()


def test_background_encoding_writes_the_same_bytes() -> None:
    inline = _episode(background=False, reuse=False)
    threaded = _episode(background=True, reuse=True)
    assert threaded.videos == inline.videos and threaded.length == inline.length == 25
    for k in inline.stats:
        for s in inline.stats[k]:
            np.testing.assert_array_equal(threaded.stats[k][s], inline.stats[k][s])


def _encode(codec: str, height: int, width: int) -> bytes:
    enc = EpisodeEncoder(width, height, 10, codec=codec)
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(12):
        enc.add(np.stack([(xx * 3 + t * 8) % 256, (yy * 4 + t * 2) % 256, np.full_like(xx, 30)], -1).astype(np.uint8))
    return enc.finish()


@pytest.mark.parametrize(("codec", "size"), [("h264", (32, 48)), ("h264", (240, 320)), ("hevc", (66, 64)),
                                             ("hevc", (66, 320))])
def test_video_bytes_do_not_depend_on_what_the_heap_held(codec: str, size: tuple[int, int]) -> None:
    """On an AVX-512 CPU x264's AVX-512 code read memory it had not written, and so did libx265 on 64-high
    frames (now refused): the same frames encoded to other bytes after earlier work left other data in freed
    memory (here: freed blocks full of 0xFF)."""
    before = _encode(codec, *size)
    rng = np.random.default_rng(0)
    for _ in range(3):
        blocks = [np.full(int(n), 255, np.uint8) for n in rng.integers(16, 4_000_000, size=100)]
        blocks += [np.full(int(n), 255, np.uint8) for n in rng.integers(16, 5000, size=2000)]
        del blocks
        assert _encode(codec, *size) == before


def test_x264_is_held_to_avx2_code_only_on_avx512_cpus() -> None:
    base = {"preset": "veryfast", "crf": "23"}
    avx512, avx2 = frozenset({"avx2", "avx512f", "avx512bw"}), frozenset({"avx2", "fma"})
    assert x264_deterministic(base, avx512) == {**base, "x264-params": "asm=AVX2"}
    assert x264_deterministic(base, avx2) == base
    assert x264_deterministic({"x264-params": "keyint=5"}, avx512) == {"x264-params": "keyint=5:asm=AVX2"}
    for own in ("asm=AVX512", "keyint=5:no-asm=1"):  # a user's own choice of x264 code stands
        assert x264_deterministic({"x264-params": own}, avx512) == {"x264-params": own}


def test_an_encoder_error_reaches_the_caller() -> None:
    enc = ThreadedEncoder(48, 32, 10)
    enc.add(np.zeros((32, 48), np.uint8))  # no colour channels: the conversion fails in the worker
    with pytest.raises(cv2.error, match="Invalid number of channels"):
        enc.finish()


def _encoders() -> int:
    return sum(t.name == "video-encoder" for t in threading.enumerate())


def test_abort_stops_the_worker() -> None:
    before = _encoders()
    buf = EpisodeBuffer(feats(), 10, background=True)
    buf.add_frame({"observation.state": np.zeros(3, np.float32), "action": np.zeros(3, np.float32),
                   "observation.images.wrist": np.zeros((16, 24, 3), np.uint8),
                   "observation.images.front": front_image(0, 0)}, task="t")  # fmt: skip
    assert _encoders() == before + 1
    buf.clear()
    assert _encoders() == before
