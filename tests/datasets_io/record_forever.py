"""Subprocess for the kill test: record fake-env episodes into ROOT until killed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fake_env  # noqa: E402

from twinarm.datasets_io.recorder import record  # noqa: E402
from twinarm.datasets_io.writer import DatasetWriter  # noqa: E402

if __name__ == "__main__":
    root = Path(sys.argv[1])
    writer = DatasetWriter.resume(root) if (root / "meta/info.json").exists() else DatasetWriter.create(
        root, 10, fake_env.features(), robot_type="fake", data_files_size_in_mb=0.02, video_files_size_in_mb=0.02)
    print("ready", flush=True)
    record(lambda: fake_env.make_env(length=int(sys.argv[2])), fake_env.make_policy, writer, episodes=10_000,
           task="Do it.", progress=False)
