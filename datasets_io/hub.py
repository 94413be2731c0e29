"""Hugging Face Hub transfer: push a dataset folder (tagged `v3.0`, like LeRobot) and download one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from twinarm.datasets_io.layout import (
    CODEBASE_VERSION,
    INFO_PATH,
    JOURNAL_PATH,
    LOCK_PATH,
    TMP_MARK,
    DatasetError,
)


class HubError(RuntimeError):
    """An upload to the Hugging Face Hub failed (no network, no or a wrong token, a repo one may not write)."""


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Network and Hub failures inside the block become a HubError saying what was being done and what to check
    (a programming error stays what it is)."""
    from huggingface_hub.errors import HFValidationError

    try:
        yield
    except (TypeError, AttributeError, NameError, KeyError, AssertionError):
        raise
    except HFValidationError as exc:  # a malformed repo id: the network and token are not at fault
        raise HubError(f"{what}: {str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # the HTTP client's transport errors and huggingface_hub's HTTP errors
        raise HubError(f"{what} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                       "check the network, your token (`hf auth login` or HF_TOKEN) and that you may write the "
                       "repo") from exc


def push(root: str | Path, repo_id: str, *, private: bool = False, branch: str | None = None,
         tag_version: bool = True, token: str | None = None) -> str:
    """Upload a dataset folder to the Hub as a dataset repo and tag it with the codebase version.

    Returns the repo URL. Temp files and the commit journal are never uploaded.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RevisionNotFoundError

    root = Path(root)
    if not (root / INFO_PATH).is_file():
        raise DatasetError(f"{root}: not a dataset (no {INFO_PATH})")
    if (root / JOURNAL_PATH).exists():
        raise DatasetError(f"{root}: an episode commit was interrupted; run `twinarm dataset check --repair` first")
    api = HfApi(token=token)
    with hub_errors(f"pushing {root} to the Hub dataset repo {repo_id}"):
        url = api.create_repo(repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True)
        if branch:
            api.create_branch(repo_id=repo_id, branch=branch, repo_type="dataset", exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(root),
            repo_type="dataset",
            revision=branch,
            ignore_patterns=["images/*", f"*{TMP_MARK}*", JOURNAL_PATH, LOCK_PATH],
            commit_message="Upload dataset with twinarm",
        )
        if tag_version:
            try:
                api.delete_tag(repo_id, tag=CODEBASE_VERSION, repo_type="dataset")
            except RevisionNotFoundError:
                pass
            api.create_tag(repo_id, tag=CODEBASE_VERSION, revision=branch, repo_type="dataset")
    return str(url)


def download(repo_id: str, *, revision: str | None = None, local_dir: str | Path | None = None) -> Path:
    """Fetch a dataset repo (default revision: the `v3.0` tag, falling back to main) and return its folder.

    Files land in the HF cache unless `local_dir` is given; with `HF_HUB_OFFLINE=1` the cached copy is used.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RevisionNotFoundError

    revs = [revision] if revision else [CODEBASE_VERSION, None]
    last: Exception | None = None
    for rev in revs:
        try:
            path = snapshot_download(repo_id, repo_type="dataset", revision=rev,
                                     local_dir=str(local_dir) if local_dir else None)
            return Path(path)
        except (RevisionNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as exc:
            last = exc
    raise DatasetError(f"dataset {repo_id!r}: not a local directory and could not be fetched from the Hub ({last})") from last
