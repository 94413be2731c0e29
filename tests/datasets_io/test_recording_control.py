"""An operator's requests during a recording (`RecordingControl`): end an episode early, discard and re-record it,
stop after it; what the dataset holds afterwards, and the reset periods between episodes."""

from __future__ import annotations

from typing import Any

import fake_env
import numpy as np
import pytest

from twinarm.datasets_io.reader import LeRobotDatasetReader
from twinarm.datasets_io.recorder import END, RERECORD, STOP, RecordingControl, record
from twinarm.datasets_io.validator import check_dataset
from twinarm.datasets_io.writer import DatasetWriter


class ScriptedOperator:
    """A policy that presses keys: `script[(rollout, step)] = request`, counted from 0 over every rollout."""

    def __init__(self, control: RecordingControl, script: dict[tuple[int, int], str]) -> None:
        self.control, self.script = control, script
        self.rollout, self.step, self.seeds = -1, 0, []

    def reset(self) -> None:
        self.rollout += 1
        self.step = 0

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        self.step += 1
        what = self.script.get((self.rollout, self.step))
        if what is not None:
            self.control.request(what)
        return (np.asarray(obs["agent_pos"]) * 0.5).astype(np.float32)


def run(tmp_path, script: dict[tuple[int, int], str], episodes: int, reset_script: dict[int, str] | None = None):
    control = RecordingControl()
    operator = ScriptedOperator(control, script)
    resets: list[tuple[int, bool]] = []

    def between(saved: int, rerecord: bool) -> None:
        resets.append((saved, rerecord))
        what = (reset_script or {}).get(len(resets))
        if what is not None:
            control.request(what)

    def env_seeds() -> fake_env.FakeArmEnv:
        env = fake_env.make_env()
        reset = env.reset

        def tracked(**kw):
            operator.seeds.append(kw.get("seed"))
            return reset(**kw)

        env.reset = tracked
        return env

    w = DatasetWriter.create(tmp_path / "ds", 10, fake_env.features(), robot_type="fake")
    summary = record(env_seeds, lambda env: operator, w, episodes=episodes, task="Do it.", progress=False,
                     between_episodes=between, control=control, seed=5)  # fmt: skip
    w.finalize()
    return summary, operator, resets


def episode_lengths(root) -> list[int]:
    ds = LeRobotDatasetReader(root)
    idx = np.array([int(ds[i]["episode_index"]) for i in range(len(ds))])
    return np.bincount(idx).tolist()


def test_end_rerecord_and_stop(tmp_path) -> None:
    # rollout 0: ended at step 4; rollout 1: discarded at step 3; rollout 2: its re-recording, full length (12);
    # rollout 3: Esc at step 5, kept, and no more episodes although 5 were asked for.
    summary, operator, resets = run(tmp_path, {(0, 4): END, (1, 3): RERECORD, (3, 5): STOP}, episodes=5)
    assert (summary.saved, summary.discarded, summary.stopped, summary.frames) == (3, 1, True, 4 + 12 + 5)
    assert episode_lengths(tmp_path / "ds") == [4, 12, 5]
    # The discarded episode is recorded again with its seed; the reset periods say what came before them.
    assert operator.seeds == [5, 6, 6, 7]
    assert resets == [(1, False), (1, True), (2, False)]
    assert check_dataset(tmp_path / "ds") == []


def test_keys_in_a_reset_period(tmp_path) -> None:
    # Esc during the first reset period: episode 1 is saved and no other is recorded.
    summary, operator, resets = run(tmp_path, {}, episodes=3, reset_script={1: STOP})
    assert (summary.saved, summary.stopped, resets) == (1, True, [(1, False)])
    assert episode_lengths(tmp_path / "ds") == [12]
    # An END left over from a reset period does not cut the next episode short.
    summary, operator, resets = run(tmp_path / "b", {}, episodes=2, reset_script={1: END})
    assert (summary.saved, summary.stopped) == (2, False)
    assert episode_lengths(tmp_path / "b" / "ds") == [12, 12]


def test_all_saved_is_not_stopped_and_requests_are_checked(tmp_path) -> None:
    summary, _, _ = run(tmp_path, {(1, 12): STOP}, episodes=2)  # Esc on the last step of the last episode
    assert (summary.saved, summary.stopped) == (2, False)
    with pytest.raises(ValueError, match="unknown recording request 'pause'"):
        RecordingControl().request("pause")
    with pytest.raises(ValueError, match="control needs num_workers=1"):
        record(fake_env.make_env, fake_env.make_policy, None, episodes=1, task="t", num_workers=2,  # type: ignore[arg-type]
               control=RecordingControl())
