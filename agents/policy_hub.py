"""Policies on the Hugging Face Hub: a checkpoint named by its repo id (`user/name`, LeRobot's way of naming
one) is downloaded into the HF cache (or read from it offline), and a checkpoint is published as a model repo,
in twinarm's layout or in LeRobot's (`lerobot_export`), with a short model card."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from twinarm.agents.policy import CONFIG_NAME, WEIGHTS_NAME, Policy, resolve_checkpoint

#: `owner/name`, optionally `@revision`: how the Hub names a model repo.
REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")
#: The files a policy checkpoint holds (both layouts); nothing else is downloaded.
CHECKPOINT_FILES = ["*.json", "*.safetensors", "README.md"]
CARD_NAME = "README.md"
#: LeRobot's class for each policy type, named in the model card of a LeRobot-layout repo.
_LEROBOT_CLASS = {"act": "ACTPolicy", "diffusion": "DiffusionPolicy", "tdmpc": "TDMPCPolicy"}


class PolicyHubError(FileNotFoundError):
    """A repo id that names no policy checkpoint on the Hub (or in the offline cache); the message names it."""


def repo_id_error(text: str) -> str | None:
    """Why `text` cannot name a repo to push to (it must be USER/NAME, no revision), or None."""
    match = REPO_ID.match(text)
    return None if match is not None and not match["rev"] else f"{text!r}: expected USER/NAME"


def repo_id_of(text: str | Path) -> tuple[str, str | None] | None:
    """(repo id, revision) when `text` is a Hub repo id and not an existing local path; else None."""
    s = str(text)
    match = REPO_ID.match(s)
    if match is None or Path(s).exists():
        return None
    return match["repo"], match["rev"]


def fetch_policy(repo_id: str, revision: str | None = None) -> Path:
    """The local folder of the checkpoint in model repo `repo_id` (downloaded into the HF cache; with
    `HF_HUB_OFFLINE=1` the cached copy)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from twinarm.datasets_io.meta import first_line, local_miss

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=CHECKPOINT_FILES))
    except (LocalEntryNotFoundError, HfHubHTTPError, ValueError, OSError) as exc:
        at = f"@{revision}" if revision else ""
        raise PolicyHubError(f"policy {repo_id}{at}: not a local folder{local_miss(repo_id)} and not fetched from "
                             f"the Hub ({type(exc).__name__}: {first_line(exc)})") from exc  # fmt: skip
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise PolicyHubError(f"policy {repo_id}: the repo holds no {CONFIG_NAME} and {WEIGHTS_NAME} at its top")
    return folder


def model_card(folder: Path, repo_id: str, lerobot: bool) -> str:
    """A short model card: the policy type, its features and how to load it, in either layout."""
    config = json.loads((folder / CONFIG_NAME).read_text())
    kind = config.get("type", "policy")
    inputs = ", ".join(f"`{k}` {tuple(v['shape'])}" for k, v in config.get("input_features", {}).items())
    load = (f"LeRobot: `{_LEROBOT_CLASS.get(kind, 'PreTrainedPolicy')}.from_pretrained(\"{repo_id}\")`; twinarm: "
            f"`twinarm eval --policy {repo_id} --env ...`") if lerobot else (
            f"twinarm: `Policy.from_pretrained(\"{repo_id}\")` or `twinarm eval --policy {repo_id} --env ...`")  # fmt: skip
    return (f"---\nlibrary_name: {'lerobot' if lerobot else 'twinarm'}\ntags:\n- robotics\n- twinarm\n- {kind}\n---\n\n"
            f"# {kind} policy\n\nTrained with twinarm; {'LeRobot 0.6' if lerobot else 'twinarm'}'s checkpoint layout.\n\n"
            f"- inputs: {inputs}\n- load with {load}\n")  # fmt: skip


def push_policy(checkpoint: str | Path | Policy, repo_id: str, *, lerobot: bool = False, lerobot_ddim: bool = False,
                private: bool = False, token: str | None = None) -> str:
    """Upload a checkpoint (a run, step or pretrained_model folder, or a policy in memory) to model repo
    `repo_id`, in twinarm's layout or, with `lerobot`, as LeRobot saves one (`save_lerobot`; `lerobot_ddim` as in
    `export-lerobot`); returns the repo URL."""
    from huggingface_hub import HfApi

    from twinarm.datasets_io.hub import hub_errors

    with tempfile.TemporaryDirectory(prefix="twinarm_push_") as tmp:
        if isinstance(checkpoint, Policy):
            src = checkpoint.save_pretrained(Path(tmp) / "policy")
        else:
            src = resolve_checkpoint(checkpoint)
        staged = stage_policy(src, Path(tmp) / "model", repo_id, lerobot=lerobot, lerobot_ddim=lerobot_ddim)
        api = HfApi(token=token)
        with hub_errors(f"pushing the policy to the Hub model repo {repo_id}"):
            url = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=str(staged), repo_type="model",
                              commit_message=f"Upload {'LeRobot' if lerobot else 'twinarm'} policy with twinarm")  # fmt: skip
    return str(url)


def stage_policy(src: Path, out: Path, repo_id: str, *, lerobot: bool = False, lerobot_ddim: bool = False) -> Path:
    """The folder `push_policy` uploads: the checkpoint's files (or its LeRobot export) plus a model card. A
    checkpoint LeRobot wrote goes up as it is, in its own layout."""
    from twinarm.agents.lerobot_checkpoint import is_lerobot_checkpoint

    already_lerobot = is_lerobot_checkpoint(src)
    if lerobot and not already_lerobot:
        from twinarm.agents.lerobot_export import save_lerobot

        save_lerobot(Policy.from_pretrained(src), out, lerobot_ddim=lerobot_ddim)
    else:
        out.mkdir(parents=True)
        for f in src.iterdir():
            if f.is_file() and f.suffix in (".json", ".safetensors"):
                shutil.copy2(f, out / f.name)
    if not (out / CARD_NAME).exists():
        (out / CARD_NAME).write_text(model_card(out, repo_id, lerobot or already_lerobot))
    return out
