"""Policies named by a Hub repo id: served from the HF cache offline (twinarm's and LeRobot's layouts, through
`Policy.from_pretrained` and `twinarm eval`), a missing one named in the error, and the folder `push-policy`
uploads (the Hub itself cannot be reached here: its client's upload call is replaced to capture that folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import twinarm  # noqa: F401  (registers the env ids)
from twinarm.agents.features import Feature
from twinarm.agents.policy import Policy
from twinarm.agents.policy_hub import PolicyHubError, repo_id_of, stage_policy
from twinarm.agents.registry import make_policy
from twinarm.cli.main import main

LEROBOT_ACT = Path(__file__).parents[1] / "fixtures/lerobot_policies/act_state/pretrained_model"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache with the Hub client offline; returns the cache's hub folder."""
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf/hub"))
    return tmp_path / "hf/hub"


def cache_model(hub: Path, repo_id: str, src: Path) -> Path:
    """`src`'s files laid out as huggingface_hub caches model repo `repo_id` at its main branch."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(src, repo / "snapshots" / SHA)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    return repo / "snapshots" / SHA


def tiny_act() -> Policy:
    torch.manual_seed(0)
    features = {"observation.state": Feature("STATE", (6,)), "observation.environment_state": Feature("ENV", (7,))}
    out = {"action": Feature("ACTION", (6,))}
    stats = {k: {"mean": np.zeros(f.shape, np.float32), "std": np.full(f.shape, 30, np.float32),
                 "min": np.full(f.shape, -90, np.float32), "max": np.full(f.shape, 90, np.float32)}
             for k, f in {**features, **out}.items()}  # fmt: skip
    return make_policy("act", input_features=features, output_features=out, stats=stats, dim_model=32, n_heads=2,
                       dim_feedforward=64, chunk_size=10, n_action_steps=10, n_encoder_layers=1,
                       n_vae_encoder_layers=1).eval()  # fmt: skip


def test_repo_ids_are_told_from_local_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert repo_id_of("lerobot/act_aloha") == ("lerobot/act_aloha", None)
    assert repo_id_of("me/act@v1.0") == ("me/act", "v1.0")
    (tmp_path / "outputs" / "act").mkdir(parents=True)
    assert repo_id_of("outputs/act") is None  # a folder that exists is a folder
    assert repo_id_of("/abs/path") is None and repo_id_of("a/b/c") is None and repo_id_of("act") is None


def test_a_twinarm_checkpoint_loads_by_repo_id_from_the_offline_cache(tmp_path: Path, offline_cache: Path) -> None:
    policy = tiny_act()
    snap = cache_model(offline_cache, "me/tiny_act", policy.save_pretrained(tmp_path / "ckpt"))
    again = Policy.from_pretrained("me/tiny_act")
    batch = {"observation.state": torch.randn(2, 6) * 20, "observation.environment_state": torch.randn(2, 7) * 0.1}
    torch.testing.assert_close(again.predict_action_chunk(batch), policy.predict_action_chunk(batch))
    assert Policy.from_pretrained("me/tiny_act@main").config.dim_model == 32
    with pytest.raises(PolicyHubError, match=r"policy me/not_here: not a local folder and not fetched from the Hub"):
        Policy.from_pretrained("me/not_here")
    (snap / "model.safetensors").unlink()
    with pytest.raises(PolicyHubError, match="me/tiny_act: the repo holds no config.json and model.safetensors"):
        Policy.from_pretrained("me/tiny_act")


def test_eval_runs_a_lerobot_checkpoint_named_by_repo_id(
    tmp_path: Path, offline_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_model(offline_cache, "someone/act_so101", LEROBOT_ACT)
    assert main(["eval", "--policy", "someone/act_so101", "--env", "twinarm/SO101-PickCube-v0", "--episodes", "1",
                 "--n-envs", "1", "--videos", "0", "--max-steps", "3", "--threads", "1", "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"policy: {offline_cache}" in out and "a LeRobot act checkpoint" in out
    with pytest.raises(SystemExit):
        main(["eval", "--policy", "someone/nothing", "--out", str(tmp_path / "e2")])
    assert "--policy: policy someone/nothing: not a local folder and not fetched from the Hub" in capsys.readouterr().err


def test_a_mistyped_local_path_is_said_to_be_one(tmp_path: Path, offline_cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`--policy runs/act_sate` (a typo) was looked up on the Hub alone, and the user read a two-line network error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(PolicyHubError, match=r"runs/act_sate: not a local folder \(no runs/act_sate here, though "
                                             r"runs/ exists\) and not fetched from the Hub \([^\n]*\)$"):
        Policy.from_pretrained("runs/act_sate")


@pytest.mark.parametrize("lerobot", [False, True])
def test_push_uploads_the_checkpoint_with_a_model_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lerobot: bool
) -> None:
    import huggingface_hub

    uploaded: dict[str, object] = {}

    def create_repo(self, repo_id: str, repo_type: str, private: bool, exist_ok: bool) -> str:  # noqa: ANN001
        uploaded.update(repo_id=repo_id, repo_type=repo_type, private=private)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id: str, folder_path: str, repo_type: str, commit_message: str) -> None:  # noqa: ANN001
        uploaded["files"] = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    run = tmp_path / "run"
    tiny_act().save_pretrained(run / "checkpoints" / "00000010" / "pretrained_model")
    (run / "checkpoints" / "last").write_text("00000010")
    assert main(["push-policy", "--policy", str(run), "--repo-id", "me/act", "--private", *(["--lerobot"] * lerobot)]) == 0
    kind = "a LeRobot" if lerobot else "a twinarm"
    assert f"pushed {kind} checkpoint to https://huggingface.co/me/act" in capsys.readouterr().out
    assert uploaded["repo_id"] == "me/act" and uploaded["repo_type"] == "model" and uploaded["private"] is True
    files = uploaded["files"]
    assert isinstance(files, dict)
    want = {"config.json", "model.safetensors", "README.md"} | (
        {"policy_preprocessor.json", "policy_postprocessor.json"} if lerobot else {"normalization.safetensors"})
    assert want <= set(files)
    card = files["README.md"].decode()
    assert card.startswith("---\nlibrary_name: " + ("lerobot" if lerobot else "twinarm"))
    assert ("ACTPolicy.from_pretrained(\"me/act\")" in card) == lerobot and "`observation.state` (6,)" in card
    # what was uploaded loads back as the same policy
    got = tmp_path / "got"
    got.mkdir()
    for name, data in files.items():
        (got / name).write_bytes(data)
    from twinarm.agents.lerobot_checkpoint import load_lerobot

    again = load_lerobot(got) if lerobot else Policy.from_pretrained(got)
    batch = {"observation.state": torch.randn(1, 6) * 20, "observation.environment_state": torch.randn(1, 7) * 0.1}
    torch.testing.assert_close(again.predict_action_chunk(batch), tiny_act().predict_action_chunk(batch))
    if not lerobot:  # the same from a policy in memory, LeRobot's `policy.push_to_hub(repo_id)`
        uploaded.clear()
        assert tiny_act().push_to_hub("me/act2") == "https://huggingface.co/me/act2"
        assert uploaded["repo_id"] == "me/act2" and uploaded["files"]["model.safetensors"] == files["model.safetensors"]  # type: ignore[index]


def test_push_refuses_what_it_cannot_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["push-policy", "--policy", str(tmp_path), "--repo-id", "no_owner"])
    assert "--repo-id 'no_owner': expected USER/NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["push-policy", "--policy", str(tmp_path / "none"), "--repo-id", "me/x"])
    assert f"--policy: {tmp_path / 'none'} does not exist" in capsys.readouterr().err
    staged = stage_policy(tiny_act().save_pretrained(tmp_path / "c"), tmp_path / "s", "me/x")
    assert json.loads((staged / "config.json").read_text())["type"] == "act"
    # a checkpoint LeRobot wrote goes up in its own layout, whatever --lerobot says
    for lerobot in (False, True):
        staged = stage_policy(LEROBOT_ACT, tmp_path / f"lr{lerobot}", "me/lr", lerobot=lerobot)
        assert {p.name for p in staged.iterdir()} == {p.name for p in LEROBOT_ACT.iterdir()} | {"README.md"}
        assert "library_name: lerobot" in (staged / "README.md").read_text()
