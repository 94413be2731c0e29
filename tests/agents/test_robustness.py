"""`twinarm robustness`: one evaluation per perturbation over the same seeds, camera-only ones skipped for a
policy that reads no camera, and each perturbation reaching the env (a deterministic policy's rewards move)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import twinarm  # noqa: F401  (registers the env ids)
from tests.agents.conftest import IMG, TINY, synthetic_stats
from twinarm.agents.features import Feature
from twinarm.agents.registry import get_config_class, make_policy
from twinarm.arms import SO101
from twinarm.cli.config import load_randomization
from twinarm.cli.main import main

PICK = "twinarm/SO101-PickCube-v0"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ACT that reads the joints only, so it runs on every single-arm task (Reach's and PickCube's
    environment states differ)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("policy") / "pretrained_model"
    config = get_config_class("act")(input_features={"observation.state": Feature("STATE", (6,))},
                                     output_features={"action": Feature("ACTION", (6,))}, **TINY["act"])  # fmt: skip
    stats = {k: v for k, v in synthetic_stats().items() if k != "observation.environment_state"}
    make_policy("act", config, stats).save_pretrained(path)
    return path


def test_each_perturbation_over_the_same_seeds(checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rob"
    assert main(["robustness", "--policy", str(checkpoint), "--env", PICK, "--episodes", "2", "--n-envs", "2",
                 "--only", "latency-2", "camera", "servos", "--max-steps", "25", "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "robustness.json").read_text())
    rows = result["rows"]
    assert list(rows) == ["nominal", "latency-2", "servos"]  # nominal first, as the reference
    assert result["skipped"] == {"camera": "the policy reads no camera"}
    assert all(len(r["successes"]) == 2 and r["lost"] >= 0 for r in rows.values())
    # The same policy on the same seeds: only the perturbation differs, and it shows in the rewards.
    sums = {n: r["avg_sum_reward"] for n, r in rows.items()}
    assert sums["latency-2"] != sums["nominal"] and sums["servos"] != sums["nominal"]
    printed = capsys.readouterr().out
    assert "camera" in printed and "skipped: the policy reads no camera" in printed
    assert "each action applied two control steps late" in printed
    assert (out / "robustness.png").stat().st_size > 5_000
    # --dynamics shapes every row's arm (here servos half as stiff): the nominal row moves too.
    dyn = tmp_path / "soft.json"
    dyn.write_text(json.dumps({"arm": "so101", "joints": {n: {"kp": 8.9} for n in SO101.joint_names}}))
    assert main(["robustness", "--policy", str(checkpoint), "--env", PICK, "--episodes", "2", "--n-envs", "2",
                 "--only", "nominal", "--max-steps", "25", "--dynamics", str(dyn), "--out", str(tmp_path / "soft")]) == 0
    soft = json.loads((tmp_path / "soft" / "robustness.json").read_text())
    assert soft["dynamics"] == str(dyn) and soft["rows"]["nominal"]["avg_sum_reward"] != sums["nominal"]
    # --camera-poses is checked against the arm and kept with the result.
    cams = tmp_path / "cams.json"
    cams.write_text(json.dumps({"arm": "koch", "cameras": {"front": {"pos": [0.5, 0.2, 0.4], "quat": [1, 0, 0, 0], "fovy": 50}}}))
    with pytest.raises(SystemExit, match="places the cameras of arm 'koch', not 'so101'"):
        main(["robustness", "--policy", str(checkpoint), "--env", PICK, "--camera-poses", str(cams),
              "--out", str(tmp_path / "cams")])  # fmt: skip
    # Reach has no object for the object perturbations to change.
    assert main(["robustness", "--policy", str(checkpoint), "--env", "twinarm/SO101-Reach-v0", "--episodes", "1",
                 "--n-envs", "1", "--only", "object-mass", "--max-steps", "5", "--out", str(tmp_path / "reach"),
                 "--set", "n_action_steps=4"]) == 0  # fmt: skip
    reach = json.loads((tmp_path / "reach" / "robustness.json").read_text())
    assert list(reach["rows"]) == ["nominal"] and reach["skipped"] == {"object-mass": "the task has no objects"}


def test_the_real_id_and_unknown_names_are_refused(checkpoint: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["robustness", "--policy", str(checkpoint), "--env", "twinarm/SO101-PickCube-Real-v0"])
    assert "robustness perturbs the sim (twinarm/SO101-PickCube-v0)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["robustness", "--policy", str(checkpoint), "--env", PICK, "--only", "gravity"])
    assert "invalid choice: 'gravity'" in capsys.readouterr().err


def test_perturbations_are_randomization_presets_too() -> None:
    assert load_randomization("latency-1")["action_delay_steps"] == 1
    assert load_randomization("camera")["visual"]["camera_pos_std"] == 0.02
    with pytest.raises(SystemExit, match=r"not a preset \(sim2real, nominal, lighting"):
        load_randomization("gravity")


def test_a_pixel_policy_gets_the_camera_perturbations(tmp_path: Path) -> None:
    """A policy that reads the front camera is run under `camera` (its frames then differ from nominal's)."""
    torch.manual_seed(0)
    config = get_config_class("act")(
        input_features={"observation.state": Feature("STATE", (6,)), "observation.images.front": Feature("VISUAL", IMG)},
        output_features={"action": Feature("ACTION", (6,))}, **TINY["act"])  # fmt: skip
    stats = {k: v for k, v in synthetic_stats(with_image=True).items() if k != "observation.environment_state"}
    ckpt = tmp_path / "pretrained_model"
    make_policy("act", config, stats).save_pretrained(ckpt)
    out = tmp_path / "rob"
    assert main(["robustness", "--policy", str(ckpt), "--env", PICK, "--episodes", "1", "--n-envs", "1",
                 "--only", "camera", "--image-size", str(IMG[1]), str(IMG[2]), "--max-steps", "4",
                 "--videos", "1", "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "robustness.json").read_text())
    assert list(result["rows"]) == ["nominal", "camera"] and result["skipped"] == {}
    import av
    import numpy as np

    first = {}
    for name in ("nominal", "camera"):
        (video,) = (out / "videos" / name).glob("*.mp4")
        with av.open(str(video)) as c:
            first[name] = next(c.decode(c.streams.video[0])).to_ndarray(format="rgb24").astype(int)
    assert np.abs(first["nominal"] - first["camera"]).mean() > 2  # the same seed, seen from a moved camera


def test_a_lerobot_checkpoint_is_stress_tested_as_eval_reads_it(tmp_path: Path, capsys) -> None:
    ckpt = Path(__file__).parents[1] / "fixtures/lerobot_policies/act_state/pretrained_model"
    assert main(["robustness", "--policy", str(ckpt), "--env", PICK, "--episodes", "1", "--n-envs", "1",
                 "--only", "latency-1", "--max-steps", "6", "--set", "n_action_steps=5", "--out", str(tmp_path)]) == 0
    assert "a LeRobot act checkpoint, read as twinarm's for the so101 arm" in capsys.readouterr().out
    assert list(json.loads((tmp_path / "robustness.json").read_text())["rows"]) == ["nominal", "latency-1"]


def test_a_sweep_turns_one_knob_up(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert main(["robustness", "--policy", str(checkpoint), "--env", PICK, "--episodes", "2", "--n-envs", "2",
                 "--sweep", "latency", "--max-steps", "20", "--out", str(tmp_path / "s")]) == 0  # fmt: skip
    result = json.loads((tmp_path / "s" / "robustness.json").read_text())
    assert list(result["rows"]) == ["0 steps", "1 steps", "2 steps", "3 steps", "4 steps", "6 steps"]
    assert result["reference"] == "0 steps" and result["sweep"] == "latency"
    sums = [r["avg_sum_reward"] for r in result["rows"].values()]
    assert len(set(sums)) == len(sums)  # each latency moves the same policy's rewards
    assert "against 0 steps" in capsys.readouterr().out and (tmp_path / "s" / "robustness.png").exists()
    with pytest.raises(SystemExit):
        main(["robustness", "--policy", str(checkpoint), "--env", PICK, "--sweep", "camera-shift"])
    assert "--sweep camera-shift: the policy reads no camera" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["robustness", "--policy", str(checkpoint), "--env", PICK, "--sweep", "latency", "--only", "servos"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.usefixtures("one_core_busy")
def test_policy_calls_yield_cores_as_eval_does(checkpoint: Path, tmp_path: Path) -> None:
    """With another process seen keeping one of two cores busy, `--yield-cores` (the default) runs the calls on one
    thread, as `twinarm eval` does: OpenMP's threads otherwise wait for a descheduled partner at every op (a
    50-episode ACT row on ALOHA took 524 s beside one training process, 20 s alone); `--no-yield-cores` keeps
    `--threads`."""
    before = torch.get_num_threads()
    threads = {}
    try:
        for flag in ("--yield-cores", "--no-yield-cores"):
            out = tmp_path / flag
            assert main(["robustness", "--policy", str(checkpoint), "--env", PICK, "--episodes", "1", "--n-envs", "1",
                         "--only", "latency-1", "--max-steps", "5", "--threads", "2", flag, "--out", str(out)]) == 0  # fmt: skip
            rows = json.loads((out / "robustness.json").read_text())["rows"]
            threads[flag] = {name: row["threads"] for name, row in rows.items()}
    finally:
        torch.set_num_threads(before)
    # one call per step (5 a row); the run's first is measured over no window yet and keeps the user's two, every
    # later one (the next row's too: one budget for the run) gets the one idle core
    assert threads["--yield-cores"] == {"nominal": {"2": 1, "1": 4}, "latency-1": {"1": 5}}
    assert threads["--no-yield-cores"] == {"nominal": {}, "latency-1": {}}
