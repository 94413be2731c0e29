"""`train --frame-cache-mb` bounds the training reader's decoded-frame cache (it was 1 GiB per process, each
DataLoader worker its own, with no way to change it; leak audit B3), and is kept in train_config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twinarm.cli.main import main

TINY = ["--set", "chunk_size=4", "--set", "n_action_steps=4", "--set", "dim_model=16", "--set", "n_heads=2",
        "--set", "dim_feedforward=32", "--set", "n_encoder_layers=1", "--set", "n_vae_encoder_layers=1",
        "--set", "latent_dim=4"]  # fmt: skip


def test_the_frame_cache_bound_reaches_the_training_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twinarm.datasets_io import reader as reader_module

    bounds: list[int] = []
    original = reader_module.LeRobotDatasetReader.__init__

    def spy(self, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        bounds.append(kwargs.get("frame_cache_mb", 1024))
        original(self, *args, **kwargs)

    monkeypatch.setattr(reader_module.LeRobotDatasetReader, "__init__", spy)
    data, run = tmp_path / "cams", tmp_path / "run"
    assert main(["record", "--env", "twinarm/SO101-Reach-v0", "--root", str(data), "--episodes", "1", "--height",
                 "24", "--width", "32", "--no-progress"]) == 0  # fmt: skip
    assert main(["train", "--policy", "act", "--dataset", str(data), "--output-dir", str(run), "--steps", "2",
                 "--batch-size", "2", "--eval-freq", "0", "--no-progress", "--frame-cache-mb", "8", *TINY]) == 0  # fmt: skip
    assert bounds[-1] == 8  # the reader the batches come from
    assert json.loads((run / "train_config.json").read_text())["frame_cache_mb"] == 8
