"""Video through PyAV: per-episode encoding into memory, concatenation into multi-episode mp4 files,
and a decoder with keyframe-aware seeking and a bounded frame cache."""

from __future__ import annotations

import functools
import io
import os
import queue
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from twinarm.datasets_io.features import DEPTH_PIX_FMT
from twinarm.datasets_io.layout import DatasetError

if TYPE_CHECKING:  # PyAV is imported where video is touched: PNG-image and state-only datasets need no FFmpeg
    import av
    from av.video.reformatter import VideoReformatter

#: codec name in info.json -> (PyAV encoder, default options). H.264 decodes fast everywhere; a short
#: GOP without B-frames keeps a random seek to a few frames of decoding.
CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "h264": ("libx264", {"preset": "veryfast", "crf": "23", "g": "2", "bf": "0"}),
    "av1": ("libsvtav1", {"preset": "12", "crf": "30", "g": "2"}),
    "hevc": ("libx265", {"preset": "veryfast", "crf": "28", "g": "2", "bf": "0"}),
}
#: The highest constant-rate factor each encoder takes (x264/x265: 51, SVT-AV1: 63).
CRF_MAX = {"h264": 51, "av1": 63, "hevc": 51}
PIX_FMT = "yuv420p"
#: libx265 as bundled with PyAV mishandles memory on small frames: 40x32 and 48x24 crashed the process at exit,
#: and 64 pixels high (one 64-pixel coding-tree row) its bytes changed with what freed memory held (reads of
#: memory it never wrote). Every width from 64 at heights from 66 encoded cleanly and byte-stably in sweeps.
HEVC_MIN_WIDTH, HEVC_MIN_HEIGHT = 64, 66


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux lists them (empty where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def x264_deterministic(options: dict[str, str], flags: frozenset[str] | None = None) -> dict[str, str]:
    """`options` with libx264 held to its AVX2 code on an AVX-512 CPU. x264's AVX-512 routines (as bundled with
    PyAV) read memory they never wrote: at 240x320 and 48x32 the bytes they encode changed with what earlier
    work had left on the heap, where AVX2 code is byte-stable and as fast (375 against 373 frames/s at 480x640
    here). Every AVX-512 CPU has all of x264's AVX2 set, so the override cannot pick an instruction the CPU
    lacks. Options that already set x264's `asm` are left alone."""
    flags = cpu_flags() if flags is None else flags
    params = options.get("x264-params", "")
    if "avx512f" not in flags or any(p.split("=")[0] in ("asm", "no-asm") for p in params.split(":") if p):
        return options
    return {**options, "x264-params": f"{params}:asm=AVX2" if params else "asm=AVX2"}


def check_frame_size(codec: str, width: int, height: int, what: str = "the video") -> None:
    """Raise DatasetError for a frame size `codec` cannot encode safely (odd sides; small HEVC frames).

    `what` names the frames as the message's subject ("{root}: feature 'observation.images.front'"), so the
    error says which camera is too small and what to do: another codec, or larger frames."""
    if width % 2 or height % 2:
        raise DatasetError(f"{what} must have even width and height for {PIX_FMT}, got {width}x{height}")
    if codec == "hevc" and (width < HEVC_MIN_WIDTH or height < HEVC_MIN_HEIGHT):
        raise DatasetError(f"{what} is {width}x{height} (width x height), too small for hevc, which takes frames "
                           f"from {HEVC_MIN_WIDTH} wide and {HEVC_MIN_HEIGHT} high (libx265 crashes on some smaller "
                           f"sizes and misreads memory at 64 high): use h264 or av1 (--codec) for small images, or "
                           f"frames at least {HEVC_MIN_WIDTH}x{HEVC_MIN_HEIGHT}")


def rgb_to_i420(img: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> planar I420 (BT.601 limited range, as FFmpeg assumes for untagged video)."""
    return cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420)


def frame_to_rgb(frame: av.VideoFrame, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """A decoded frame as HWC uint8 RGB through swscale (bit-identical to LeRobot's PyAV and torchcodec
    decoders); a reused reformatter keeps the conversion context warm. One swscale thread: the default starts one
    per CPU for every open file's reformatter, kept while it lives (a 600-file dataset held 1,200 threads per
    process on 2 CPUs), and on these frame sizes one thread converts faster (480x640: 0.17 ms against 0.43)."""
    from av.video.reformatter import VideoReformatter
    ref = reformatter if reformatter is not None else VideoReformatter()
    return ref.reformat(frame, format="rgb24", interpolation="BILINEAR", threads=1).to_ndarray()


def frame_to_depth_codes(frame: av.VideoFrame) -> np.ndarray:
    """A decoded depth-video frame as (H, W, 1) uint16 12-bit codes (LeRobot's `gray12le` depth videos)."""
    return frame.to_ndarray(format=DEPTH_PIX_FMT)[:, :, None]


def encoder_options(codec: str, crf: int | None = None, gop: int | None = None, preset: str | None = None) -> dict[str, str]:
    """The encoder options for `codec` with optional overrides."""
    if codec not in CODECS:
        raise DatasetError(f"video codec {codec!r} is not supported; choose one of {sorted(CODECS)}")
    opts = dict(CODECS[codec][1])
    if crf is not None:
        if not 0 <= int(crf) <= CRF_MAX[codec]:
            raise DatasetError(f"crf {crf}: {CODECS[codec][0]} takes 0..{CRF_MAX[codec]} (lower is better; "
                               f"default {CODECS[codec][1]['crf']})")  # fmt: skip
        opts["crf"] = str(int(crf))
    if gop is not None:
        opts["g"] = str(int(gop))
    if preset is not None:
        opts["preset"] = str(preset)
    return opts


def quiet_svt_av1() -> None:
    """Keep SVT-AV1's log to its errors: it prints ~25 `Svt[info]` lines of its configuration (and a thread
    priority warning) to stderr straight from C at every encoder it opens, past FFmpeg's log level, so an AV1
    recording's progress drowned in them. SVT reads `SVT_LOG` (1: errors; 2: warnings; 3: info, its default)
    when an encoder starts; a value the user set is kept."""
    os.environ.setdefault("SVT_LOG", "1")


class EpisodeEncoder:
    """Encodes one episode of one camera into an in-memory mp4 as frames arrive (no PNG staging)."""

    def __init__(self, width: int, height: int, fps: int, codec: str = "h264", options: dict[str, str] | None = None,
                 threads: int = 0) -> None:
        import av
        if codec not in CODECS:
            raise DatasetError(f"video codec {codec!r} is not supported; choose one of {sorted(CODECS)}")
        check_frame_size(codec, width, height)
        self.width, self.height, self.fps = width, height, fps
        self._buf = io.BytesIO()
        self._out = av.open(self._buf, "w", format="mp4")
        opts = dict(options if options is not None else CODECS[codec][1])
        if codec == "h264":
            opts = x264_deterministic(opts)
        if codec == "av1":
            quiet_svt_av1()
        self._stream = self._out.add_stream(CODECS[codec][0], rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, PIX_FMT
        if "g" in opts:
            self._stream.codec_context.gop_size = int(opts["g"])
        if codec != "av1":
            self._stream.codec_context.max_b_frames = int(opts.get("bf", 0))
        self._stream.codec_context.options = opts
        self._stream.thread_count = threads
        self.n = 0

    def add(self, rgb: np.ndarray) -> None:
        import av
        frame = av.VideoFrame.from_ndarray(rgb_to_i420(rgb), format=PIX_FMT)
        frame.pts = self.n
        self.n += 1
        for pkt in self._stream.encode(frame):
            self._out.mux(pkt)

    def finish(self) -> bytes:
        """Flush the encoder and return the episode's mp4 bytes."""
        for pkt in self._stream.encode(None):
            self._out.mux(pkt)
        self._out.close()
        return self._buf.getvalue()

    def abort(self) -> None:
        import av
        try:
            self._out.close()
        except (av.error.FFmpegError, ValueError):
            pass


class ThreadedEncoder:
    """An `EpisodeEncoder` run by a worker thread: `add` only copies the frame into a bounded queue, so a
    control loop recording at its rate does not wait for the codec (PyAV releases the GIL while encoding).
    A backlog of `max_backlog` frames blocks `add` (memory stays bounded); an encoder error is raised by the
    next `add` or by `finish`, which waits for the backlog and returns the mp4 bytes."""

    def __init__(self, *args: Any, max_backlog: int = 90, **kwargs: Any) -> None:
        self._encoder = EpisodeEncoder(*args, **kwargs)
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max_backlog)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="video-encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (rgb := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._encoder.add(rgb)
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def add(self, rgb: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(np.array(rgb, copy=True))  # the caller may reuse its array

    def finish(self) -> bytes:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._encoder.finish()

    def abort(self) -> None:
        self._error = self._error or DatasetError("encoding aborted")
        self._queue.put(None)
        self._thread.join()
        self._encoder.abort()


def concatenate(episodes: list[tuple[bytes, int]], out_path: Path, fps: int) -> None:
    """Remux episode mp4s (bytes, frame count) back to back into one mp4; episode k starts at the
    sum of the earlier frame counts / fps. No re-encoding."""
    import av
    out = av.open(str(out_path), "w", format="mp4", options={"movflags": "faststart"})
    try:
        ost = None
        offset_frames = 0
        for blob, n_frames in episodes:
            inp = av.open(io.BytesIO(blob))
            try:
                ist = inp.streams.video[0]
                if ost is None:
                    ost = out.add_stream_from_template(ist, opaque=True)  # remux: no codec is opened
                shift = int(round(Fraction(offset_frames, fps) / ist.time_base))
                for pkt in inp.demux(ist):
                    if pkt.dts is None:
                        continue
                    pkt.pts += shift
                    pkt.dts += shift
                    pkt.stream = ost
                    out.mux(pkt)
            finally:
                inp.close()
            offset_frames += n_frames
    finally:
        out.close()


def video_info(path: Path) -> dict[str, Any]:
    """The `info` block LeRobot stores for a video feature, read from the file."""
    import av
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            cc = s.codec_context
            return {
                "video.height": cc.height,
                "video.width": cc.width,
                "video.codec": cc.name if cc.name != "libdav1d" else "av1",
                "video.pix_fmt": cc.pix_fmt,
                "video.fps": int(round(float(s.average_rate or s.guessed_rate))),
                "video.channels": 3,
                "has_audio": len(c.streams.audio) > 0,
                "is_depth_map": False,  # LeRobot 0.6.1's key (earlier ones wrote `video.is_depth_map`)
            }
    except av.error.FFmpegError as exc:
        raise DatasetError(f"{path}: unreadable video ({exc})") from None


@dataclass
class VideoIndex:
    """Every frame of an mp4 in presentation order: pts (stream units), time (s), and keyframe flags."""

    pts: np.ndarray
    times: np.ndarray
    is_key: np.ndarray
    #: for each frame, the position of the keyframe its GOP starts at
    gop_start: np.ndarray
    #: for each frame, the position one past its GOP's last frame
    gop_end: np.ndarray


def build_index(container: av.container.InputContainer, path: Path) -> VideoIndex:
    """Read packet headers (no decoding) to list frames and keyframes."""
    import av
    stream = container.streams.video[0]
    pts, keys = [], []
    try:
        for pkt in container.demux(stream):
            if pkt.pts is None:
                continue
            pts.append(pkt.pts)
            keys.append(bool(pkt.is_keyframe))
    except av.error.FFmpegError as exc:
        raise DatasetError(f"{path}: corrupt video ({exc})") from None
    if not pts:
        raise DatasetError(f"{path}: video has no frames")
    order = np.argsort(np.asarray(pts), kind="stable")
    p = np.asarray(pts, dtype=np.int64)[order]
    k = np.asarray(keys, dtype=bool)[order]
    k[0] = True
    start = np.maximum.accumulate(np.where(k, np.arange(len(p)), 0))
    key_pos = np.flatnonzero(k)
    nxt = np.append(key_pos[1:], len(p))
    end = nxt[np.searchsorted(key_pos, np.arange(len(p)), side="right") - 1]
    start_time = stream.start_time or 0
    times = (p - start_time) * float(stream.time_base)
    container.seek(0, stream=stream, backward=True)
    return VideoIndex(p, times, k, start, end)


class FrameCache:
    """LRU cache of decoded frames (YUV VideoFrames or RGB arrays), bounded in bytes; keys are (file id, position)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._d: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[int, int]) -> Any:
        arr = self._d.get(key)
        if arr is None:
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return arr

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self._d

    @staticmethod
    def size_of(item: Any) -> int:
        if isinstance(item, np.ndarray):
            return item.nbytes
        return sum(p.buffer_size for p in item.planes)

    def put(self, key: tuple[int, int], arr: Any) -> None:
        if key in self._d or self.max_bytes <= 0:
            return
        self._d[key] = arr
        self.nbytes += self.size_of(arr)
        while self.nbytes > self.max_bytes and len(self._d) > 1:
            _, old = self._d.popitem(last=False)
            self.nbytes -= self.size_of(old)

    def clear(self) -> None:
        self._d.clear()
        self.nbytes = 0


class VideoFile:
    """One open mp4: frame index, GOP-at-a-time decoding into a shared FrameCache. Frames come out as RGB, or
    for a depth video (`depth`) as 12-bit codes."""

    def __init__(self, path: Path, file_id: int, cache: FrameCache, threads: int = 1, depth: bool = False) -> None:
        import av
        from av.video.reformatter import VideoReformatter
        self.path = path
        self.file_id = file_id
        self.cache = cache
        self.depth = depth
        try:
            self._c = av.open(str(path))
        except (av.error.FFmpegError, FileNotFoundError) as exc:
            raise DatasetError(f"{path}: cannot open video ({exc})") from None
        if not self._c.streams.video:
            raise DatasetError(f"{path}: no video stream")
        self._s = self._c.streams.video[0]
        fmt = self._s.codec_context.pix_fmt
        if depth and fmt != DEPTH_PIX_FMT:
            raise DatasetError(f"{path}: a depth camera (is_depth_map) but its video is {fmt}; LeRobot writes depth "
                               f"videos as {DEPTH_PIX_FMT} 12-bit codes")
        self._s.thread_count = threads
        self.index = build_index(self._c, path)
        self._pts_pos = {int(p): i for i, p in enumerate(self.index.pts)}
        self._reformatter = VideoReformatter()
        self._next_pos = 0  # decoder position after a sequential read (avoids re-seeking)
        self._pending: list[av.VideoFrame] = []

    def close(self) -> None:
        self._c.close()

    def positions_for_times(self, query: np.ndarray, tolerance_s: float) -> np.ndarray:
        """Nearest frame position for each query time (s); raises if one is `tolerance_s` or more away."""
        t = self.index.times
        j = np.clip(np.searchsorted(t, query), 1, len(t) - 1) if len(t) > 1 else np.zeros(len(query), np.int64)
        if len(t) > 1:
            left_better = np.abs(query - t[j - 1]) <= np.abs(t[j] - query)
            j = np.where(left_better, j - 1, j)
        err = np.abs(t[j] - query)
        bad = err >= tolerance_s
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            if query[i] > t[-1]:
                raise DatasetError(
                    f"{self.path}: no frame at t={query[i]:.6f} s: the video has fewer frames than the data "
                    f"(its {len(t)} frames end at t={t[-1]:.6f} s; truncated?)"
                )
            raise DatasetError(
                f"{self.path}: no frame within {tolerance_s} s of t={query[i]:.6f} s (nearest {t[j[i]]:.6f} s); "
                "the video timestamps do not match the data timestamps"
            )
        return j.astype(np.int64)

    def frame(self, pos: int) -> np.ndarray:
        """RGB frame (H, W, 3 uint8; depth: H, W, 1 uint16 codes) at position `pos` (presentation order). On a
        cache miss, decoding starts at the GOP's keyframe (or continues from where the decoder stopped) and
        runs up to `pos`; the frames passed on the way are cached as decoded (YUV) and converted when asked for."""
        key = (self.file_id, pos)
        fr = self.cache.get(key)
        if fr is None:
            fr = self._decode_to(pos)
        return frame_to_depth_codes(fr) if self.depth else frame_to_rgb(fr, self._reformatter)

    def _decode_to(self, pos: int) -> av.VideoFrame:
        import av
        idx = self.index
        start, end = int(idx.gop_start[pos]), int(idx.gop_end[pos])
        # continue without seeking when the decoder sits inside this GOP before `pos`
        if not (start <= self._next_pos <= pos and self._next_pos < end):
            try:
                self._c.seek(int(idx.pts[start]), stream=self._s, backward=True, any_frame=False)
            except av.error.FFmpegError as exc:
                raise DatasetError(f"{self.path}: seek failed ({exc})") from None
            self._next_pos = start
        got = None
        try:
            for pkt in self._c.demux(self._s):
                # every frame this packet releases is kept (the flush packet at the end of the stream releases all
                # that a multi-threaded decoder still holds): one dropped here would be missing from the cache
                # while the decoder has moved past it
                for fr in pkt.decode():
                    if fr.pts is None:
                        continue
                    p = self._pts_pos.get(int(fr.pts))
                    if p is not None:
                        self.cache.put((self.file_id, p), fr)
                        self._next_pos = p + 1
                        if p == pos:
                            got = fr
                if pkt.size == 0:  # flush packet: the decoder is drained at end of stream, the next read must seek
                    self._next_pos = -1
                    break
                if got is not None or (self._next_pos > pos):
                    break
        except av.error.FFmpegError as exc:
            self._next_pos = -1
            raise DatasetError(f"{self.path}: corrupt video data near frame {pos} ({exc})") from None
        if self._s.codec_context.has_b_frames:
            self._next_pos = -1  # frames may wait inside the decoder: always seek next time
        if got is None:
            self._next_pos = -1
            raise DatasetError(f"{self.path}: frame {pos} could not be decoded (truncated or corrupt video)")
        return got


#: Open video files a pool keeps (least recently read closed first; reopened on demand, their cached frames kept):
#: each holds a decoder and a file descriptor, and a dataset may have hundreds of files.
MAX_OPEN_VIDEOS = 64


class VideoPool:
    """Open video files of one process (reopened after fork) sharing one frame cache."""

    def __init__(self, cache_bytes: int, threads: int = 1) -> None:
        self.cache_bytes = cache_bytes
        self.threads = threads
        self._pid = os.getpid()
        self._files: dict[Path, VideoFile] = {}  # in order of last use, oldest first
        self._ids: dict[Path, int] = {}  # a file's id in the frame cache, kept when it is closed and reopened
        self._inherited: list[dict[Path, VideoFile]] = []
        self.cache = FrameCache(cache_bytes)

    def __getstate__(self) -> dict[str, Any]:
        return {"cache_bytes": self.cache_bytes, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["cache_bytes"], state["threads"])

    def get(self, path: Path, depth: bool = False) -> VideoFile:
        if os.getpid() != self._pid:  # forked into a DataLoader worker: never share decoders
            # Keep the parent's decoder objects alive but unused: freeing FFmpeg state inherited
            # through fork can block forever, so they are left for process exit.
            self._inherited.append(self._files)
            self._pid = os.getpid()
            self._files = {}
            self.cache = FrameCache(self.cache_bytes)
        vf = self._files.pop(path, None)
        if vf is None:
            if len(self._files) >= MAX_OPEN_VIDEOS:
                self._files.pop(next(iter(self._files))).close()
            vf = VideoFile(path, self._ids.setdefault(path, len(self._ids)), self.cache, self.threads, depth)
        self._files[path] = vf  # the most recently read last
        return vf

    def close(self) -> None:
        for vf in self._files.values():
            vf.close()
        self._files = {}
        self.cache.clear()


def decode_all(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of a video as (N, H, W, 3) uint8 plus frame times in seconds (for tools/tests)."""
    import av
    from av.video.reformatter import VideoReformatter
    frames, times = [], []
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            start = s.start_time or 0
            ref = VideoReformatter()
            for fr in c.decode(s):
                frames.append(frame_to_rgb(fr, ref))
                times.append((fr.pts - start) * float(s.time_base))
    except av.error.FFmpegError as exc:
        raise DatasetError(f"{path}: corrupt video ({exc})") from None
    return np.stack(frames), np.asarray(times)
