"""A twinarm checkpoint's cameras renamed at load (`eval --rename-feature`): a policy trained on a LeRobot
recording's `laptop` / `phone` cameras computes, under the env's `front` / `wrist`, exactly what it computed
under the old keys, for each policy type; wrong renames are refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.agents.conftest import DOF, TINY
from twinarm.agents.camera_rename import CameraRenameError, rename_map
from twinarm.agents.features import Feature
from twinarm.agents.policy import Policy
from twinarm.agents.registry import make_policy
from twinarm.cli.main import main

LAPTOP, PHONE = "observation.images.laptop", "observation.images.phone"
FRONT, WRIST = "observation.images.front", "observation.images.wrist"
TO_SIM = {LAPTOP: FRONT, PHONE: WRIST}
CAM = (3, 48, 64)


def trained_on_lerobot_names(kind: str, tmp_path: Path) -> Path:
    """A tiny policy whose cameras are LeRobot's `phone` then `laptop` (TD-MPC: `laptop` only), saved."""
    cams = [LAPTOP] if kind == "tdmpc" else [PHONE, LAPTOP]
    inputs = {"observation.state": Feature("STATE", (DOF,)), **{k: Feature("VISUAL", CAM) for k in cams}}
    stats = {"observation.state": {"mean": np.zeros(DOF, np.float32), "std": np.full(DOF, 30.0, np.float32),
                                   "min": np.full(DOF, -60.0, np.float32), "max": np.full(DOF, 60.0, np.float32)},
             "action": {"mean": np.zeros(DOF, np.float32), "std": np.full(DOF, 30.0, np.float32),
                        "min": np.full(DOF, -60.0, np.float32), "max": np.full(DOF, 60.0, np.float32)}}  # fmt: skip
    for i, k in enumerate(cams):  # unequal, so a swapped camera would normalize differently
        stats[k] = {"mean": np.full((3, 1, 1), 0.3 + 0.2 * i, np.float32), "std": np.full((3, 1, 1), 0.2 + 0.1 * i, np.float32)}
    torch.manual_seed(0)
    policy = make_policy(kind, input_features=inputs, output_features={"action": Feature("ACTION", (DOF,))},
                         stats=stats, **TINY[kind])  # fmt: skip
    with torch.no_grad():
        for p in policy.parameters():  # no two camera encoders alike
            p.add_(torch.randn_like(p) * 0.01)
    return policy.save_pretrained(tmp_path / kind)


def images(n_obs: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    lead = (2, n_obs) if n_obs else (2,)
    return {"observation.state": torch.randn(*lead, DOF, generator=g) * 20,
            "a": torch.rand(*lead, *CAM, generator=g), "b": torch.rand(*lead, *CAM, generator=g)}  # fmt: skip


def output(policy: Policy, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        if policy.name == "tdmpc":
            return policy.model.encoder(policy.normalize_inputs(batch))
        if policy.name == "diffusion":
            return policy.predict_action_chunk(batch, generator=torch.Generator().manual_seed(3))
        return policy.predict_action_chunk(batch)


@pytest.mark.parametrize("kind", ["act", "diffusion", "tdmpc"])
def test_a_renamed_policy_computes_what_it_did_under_the_old_names(tmp_path: Path, kind: str) -> None:
    src = trained_on_lerobot_names(kind, tmp_path)
    before = Policy.from_pretrained(src)
    rename = {LAPTOP: FRONT} if kind == "tdmpc" else TO_SIM
    after = Policy.from_pretrained(src, rename=rename)
    assert after.config.image_keys == [rename[k] for k in before.config.image_keys]  # same places, new keys
    x = images(before.config.n_obs_steps if kind == "diffusion" else 0)
    old = {"observation.state": x["observation.state"], LAPTOP: x["a"], PHONE: x["b"]}
    new = {"observation.state": x["observation.state"], FRONT: x["a"], WRIST: x["b"]}
    old = {k: v for k, v in old.items() if k in before.config.input_features}
    new = {k: v for k, v in new.items() if k in after.config.input_features}
    torch.testing.assert_close(output(after, new), output(before, old))
    after.save_pretrained(tmp_path / "renamed")  # and it stays that policy under its new names
    torch.testing.assert_close(output(Policy.from_pretrained(tmp_path / "renamed"), new), output(before, old))


def test_wrong_renames_are_refused_by_name(tmp_path: Path) -> None:
    src = trained_on_lerobot_names("act", tmp_path)
    cases = {
        (LAPTOP + "x", FRONT): "observation.images.laptopx: not a camera of",
        ("observation.state", FRONT): "observation.state: not a camera of",
        (LAPTOP, "observation.state"): "observation.state: a camera is renamed to a camera key",
        (LAPTOP, PHONE): "observation.images.phone: two inputs of",
    }
    for (old, new), message in cases.items():
        with pytest.raises(CameraRenameError, match=message):
            Policy.from_pretrained(src, rename={old: new})


def test_eval_runs_a_policy_of_a_recordings_cameras_in_sim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = trained_on_lerobot_names("act", tmp_path)
    common = ["eval", "--policy", str(src), "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1", "--n-envs", "1",
              "--videos", "0", "--max-steps", "2", "--threads", "1"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "plain")]) == 1
    err = capsys.readouterr().err
    assert "it sees camera(s) phone, laptop, the env gives front, wrist" in err
    assert f"(eval --rename-feature {PHONE}={FRONT} {LAPTOP}={WRIST} maps them onto the env's;" in err  # every pair
    # One rename given: the hint maps the camera still unmatched onto the env camera not yet taken, never `front`.
    assert main([*common, "--rename-feature", f"{LAPTOP}={FRONT}", "--out", str(tmp_path / "one")]) == 1
    err = capsys.readouterr().err
    assert "it sees camera(s) phone, the env gives front, wrist" in err
    assert f"(eval --rename-feature {PHONE}={WRIST} maps it onto the env's;" in err
    with pytest.raises(SystemExit):
        main([*common, "--rename-feature", f"{LAPTOP}={FRONT}", "--rename-feature", f"{PHONE}={FRONT}"])
    assert f"--rename-feature: two features would be '{FRONT}' ({LAPTOP} and {PHONE})" in capsys.readouterr().err
    assert main([*common, "--rename-feature", f"{LAPTOP}={FRONT}", "--rename-feature", f"{PHONE}={WRIST}",
                 "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "e" / "eval_info.json").read_text())["select_action_ms"]["calls"] == 2
    # Several pairs after one flag, as LeRobot users write rename maps.
    assert main([*common, "--rename-feature", f"{LAPTOP}={FRONT}", f"{PHONE}={WRIST}", "--out", str(tmp_path / "f")]) == 0
    # By short names, as the envs' cameras= and replay --camera-map take them (full keys were required).
    assert main([*common, "--rename-feature", "laptop=front", "phone=wrist", "--out", str(tmp_path / "g")]) == 0
    saved = json.loads((tmp_path / "g" / "config.json").read_text())["rename_features"]
    assert saved == [[LAPTOP, FRONT], [PHONE, WRIST]]


def test_rename_map_refuses_two_features_onto_one_key() -> None:
    assert rename_map([(LAPTOP, FRONT), (PHONE, WRIST)], [PHONE, LAPTOP]) == TO_SIM
    with pytest.raises(CameraRenameError, match=f"two features would be '{FRONT}' \\({LAPTOP} and {PHONE}\\)"):
        rename_map([(LAPTOP, FRONT), (PHONE, FRONT)])
    with pytest.raises(CameraRenameError, match=f"two features would be '{FRONT}' \\({FRONT} and {LAPTOP}\\)"):
        rename_map([(LAPTOP, FRONT)], [FRONT, LAPTOP])  # onto a camera the policy keeps
    with pytest.raises(CameraRenameError, match=f"{LAPTOP}: renamed twice"):
        rename_map([(LAPTOP, FRONT), (LAPTOP, WRIST)])


def test_eval_refuses_a_lerobot_checkpoints_two_cameras_onto_one_key(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """LeRobot's checkpoints are read by another loader; its renames are checked against config.json's inputs."""
    src = Path(__file__).resolve().parents[1] / "fixtures/lerobot_policies/tdmpc_camera/pretrained_model"
    dst = tmp_path / "two_cams"
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["input_features"][FRONT] = {"type": "VISUAL", "shape": list(CAM)}
    (dst / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit):
        main(["eval", "--policy", str(dst), "--rename-feature", f"observation.image={FRONT}", "--out", str(tmp_path / "e")])
    assert f"--rename-feature: two features would be '{FRONT}' (observation.image and {FRONT})" in capsys.readouterr().err
