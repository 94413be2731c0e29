"""EpisodeBuffer / DatasetWriter on failures: a frame is added whole or not at all, encoders are released on
error paths, and a commit that fails before its journal keeps the episode for a retry."""

from __future__ import annotations

import errno
import threading

import numpy as np
import pytest

import twinarm.datasets_io.writer as writer_mod
from twinarm.datasets_io.features import with_default_features
from twinarm.datasets_io.layout import DatasetError
from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.writer import DatasetWriter, EpisodeBuffer

H, W = 16, 24
VEC = {"dtype": "float32", "shape": [2], "names": None}
CAM = {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]}
IMG = {"dtype": "image", "shape": [H, W, 3], "names": ["height", "width", "channels"]}


def _frame(t: int, keys) -> dict:
    out = {}
    for k in keys:
        out[k] = np.full(2, t, np.float32) if k in ("observation.state", "action") else np.full((H, W, 3), t * 10, np.uint8)
    return out


def _lengths(buf: EpisodeBuffer) -> set[int]:
    return {len(v) for v in buf._cols.values()} | {len(v) for v in buf._stat_frames.values()} | {
        len(buf._timestamps), len(buf._frame_tasks)}


def test_png_failure_midway_leaves_columns_aligned(monkeypatch):
    feats = with_default_features({"observation.state": VEC, "observation.images.wrist": IMG, "action": VEC})
    buf = EpisodeBuffer(feats, 10)
    keys = ["observation.state", "observation.images.wrist", "action"]
    buf.add_frame(_frame(0, keys), task="t")
    monkeypatch.setattr(writer_mod.cv2, "imencode", lambda *a, **k: (False, None))
    with pytest.raises(DatasetError, match="observation.images.wrist.*PNG encoding failed"):
        buf.add_frame(_frame(1, keys), task="t")
    assert buf.n == 1 and _lengths(buf) == {1}
    monkeypatch.undo()
    buf.add_frame(_frame(2, keys), task="t")  # the caller caught the error and went on
    ep = buf.finish()
    assert ep.length == 2 and ep.columns["observation.state"][:, 0].tolist() == [0, 2]
    assert len(ep.columns["observation.images.wrist"]) == 2


@pytest.mark.parametrize("background", [False, True])
def test_video_encoder_failure_on_second_camera_refuses_the_episode(background):
    feats = with_default_features({"observation.state": VEC, "observation.images.a": CAM,
                                   "observation.images.b": CAM})
    keys = ["observation.state", "observation.images.a", "observation.images.b"]
    buf = EpisodeBuffer(feats, 10, background=background)
    buf.add_frame(_frame(0, keys), task="t")

    def broken(rgb):
        raise RuntimeError("encoder died")

    buf._encoders["observation.images.b"].add = broken  # camera a takes frame 1, camera b fails on it
    with pytest.raises(RuntimeError, match="encoder died"):
        buf.add_frame(_frame(1, keys), task="t")
    assert buf.n == 1 and _lengths(buf) == {1}
    # camera a holds one frame more than the columns: saving it would shift every later episode's video
    with pytest.raises(DatasetError, match=r"cannot be saved.*'observation.images.b'.*clear_episode"):
        buf.add_frame(_frame(2, keys), task="t")
    with pytest.raises(DatasetError, match="cannot be saved"):
        buf.finish()
    buf.clear()
    for t in range(3):
        buf.add_frame(_frame(t, keys), task="t")
    assert buf.finish().length == 3


def _encoder_threads(buf: EpisodeBuffer) -> list[threading.Thread]:
    return [e._thread for e in buf._encoders.values()]


def test_finish_failure_releases_every_encoder():
    feats = with_default_features({"observation.state": VEC, "observation.images.a": CAM,
                                   "observation.images.b": CAM})
    keys = ["observation.state", "observation.images.a", "observation.images.b"]
    buf = EpisodeBuffer(feats, 10, background=True)
    for t in range(3):
        buf.add_frame(_frame(t, keys), task="t")
    threads = _encoder_threads(buf)
    assert all(th.is_alive() for th in threads)

    def broken():
        raise RuntimeError("encoder died")

    buf._encoders["observation.images.a"].finish = broken  # the first camera fails: b is never finished
    with pytest.raises(RuntimeError, match="encoder died"):
        buf.finish()
    threads[1].join(timeout=10)  # aborted: its thread ends (it blocked on its queue for ever before)
    assert not threads[1].is_alive()
    assert buf.n == 0 and buf._encoders == {}
    for t in range(2):
        buf.add_frame(_frame(t, keys), task="t")
    assert buf.finish().length == 2


class _StepFails:
    """A policy-agnostic env whose step raises at step 2 (a simulator crash, an arm fault)."""

    def _obs(self):
        return {"agent_pos": np.zeros(2, np.float32), "pixels": {"a": np.zeros((H, W, 3), np.uint8)}}

    def reset(self, seed=None):
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        if self.t >= 2:
            raise RuntimeError("env crashed")
        return self._obs(), 0.0, False, False, {}


def test_rollout_error_releases_the_buffer_encoders():
    from twinarm.datasets_io.recorder import gym_frame, rollout

    feats = with_default_features({"observation.state": VEC, "action": VEC, "observation.images.a": CAM})
    buf = EpisodeBuffer(feats, 10, background=True)
    with pytest.raises(RuntimeError, match="env crashed"):
        rollout(_StepFails(), lambda obs: np.zeros(2, np.float32), buf, 0, "t", gym_frame)
    assert buf.n == 0 and buf._encoders == {}


def _disk_full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _writer_with_one_episode(tmp_path):
    w = DatasetWriter.create(tmp_path / "ds", 10, {"observation.state": VEC, "action": VEC,
                                                   "observation.images.a": CAM})
    keys = ["observation.state", "action", "observation.images.a"]
    for t in range(4):
        w.add_frame(_frame(t, keys), task="first")
    w.save_episode()
    for t in range(5):
        w.add_frame(_frame(10 + t, keys), task="second")
    return w, keys


def _after_a_failed_save(tmp_path, monkeypatch):
    """A writer whose second episode's save hit a full disk, then space was freed: (writer, frame keys)."""
    w, keys = _writer_with_one_episode(tmp_path)
    monkeypatch.setattr(writer_mod, "write_parquet_tmp", _disk_full)
    with pytest.raises(OSError, match="No space left"):
        w.save_episode()
    monkeypatch.undo()  # space freed
    return w, keys


def test_save_episode_after_disk_full_keeps_the_episode_for_a_retry(tmp_path, monkeypatch):
    w, keys = _after_a_failed_save(tmp_path, monkeypatch)
    assert w.num_episodes == 1 and w.episode_length == 5
    assert w.save_episode() == 1
    w.add_frame(_frame(20, keys), task="third")  # recording goes on
    w.save_episode()
    w.finalize()
    ds = LeRobotDatasetReader(tmp_path / "ds")
    assert ds.meta.total_episodes == 3 and len(ds) == 10
    assert [float(ds[i]["observation.state"][0]) for i in range(4, 10)] == [10, 11, 12, 13, 14, 20]
    assert ds[8]["task"] == "second"
    assert abs(float(ds[8]["observation.images.a"].mean()) * 255 - 140) < 3  # the retried episode's video


def test_add_frame_after_a_failed_save_drops_that_episode_with_a_warning(tmp_path, monkeypatch):
    w, keys = _after_a_failed_save(tmp_path, monkeypatch)
    with pytest.warns(UserWarning, match=r"dropped the 5-frame episode whose save failed.*No space left.*save_episode"):
        w.add_frame(_frame(20, keys), task="third")
    assert w.episode_length == 1 and w.save_episode() == 1
    w.finalize()
    ds = LeRobotDatasetReader(tmp_path / "ds")
    assert len(ds) == 5 and float(ds[4]["observation.state"][0]) == 20


def test_clear_episode_drops_an_episode_whose_save_failed(tmp_path, monkeypatch):
    w, keys = _after_a_failed_save(tmp_path, monkeypatch)
    w.clear_episode()
    assert w.episode_length == 0
    with pytest.raises(DatasetError, match="no frames were added"):
        w.save_episode()
    w.add_frame(_frame(7, keys), task="first")
    assert w.save_episode() == 1
    w.finalize()
    assert len(LeRobotDatasetReader(tmp_path / "ds")) == 5


def _record_two(tmp_path, monkeypatch, on_commit_error):
    """record() of 2 fake-env episodes whose first commit hits a full disk once."""
    import fake_env

    from twinarm.datasets_io.recorder import record

    w = DatasetWriter.create(tmp_path / "rec", 10, fake_env.features(), robot_type="fake")
    real_commit, failures = DatasetWriter.commit, []

    def full_once(self, episode):
        if not failures:
            failures.append(episode.length)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_commit(self, episode)

    monkeypatch.setattr(DatasetWriter, "commit", full_once)
    return w, failures, lambda: record(fake_env.make_env, fake_env.make_policy, w, episodes=2, task="Do it.",
                                       progress=False, on_commit_error=on_commit_error)


def test_record_saves_an_episode_again_when_on_commit_error_says_so(tmp_path, monkeypatch):
    asked: list[str] = []
    w, failures, run = _record_two(tmp_path, monkeypatch, lambda exc: asked.append(str(exc)) or True)
    summary = run()
    w.finalize()
    assert summary.saved == 2 and summary.episode_indices == [0, 1]
    assert len(asked) == 1 and "No space left" in asked[0]
    ds = LeRobotDatasetReader(tmp_path / "rec")
    assert ds.num_episodes == 2 and len(ds.episode_rows(0)) == failures[0]  # the first rollout, not a new one


def test_record_without_a_retry_leaves_the_failed_episode_in_the_writer(tmp_path, monkeypatch):
    w, failures, run = _record_two(tmp_path, monkeypatch, lambda exc: False)
    with pytest.raises(OSError, match="No space left"):
        run()
    assert w.has_unsaved and w.num_episodes == 0 and w.episode_length == failures[0]
    assert w.save_episode() == 0  # the caller can still keep it
    w.finalize()
    assert len(LeRobotDatasetReader(tmp_path / "rec")) == failures[0]
