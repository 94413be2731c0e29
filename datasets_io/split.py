"""Split a LeRobot v3 dataset into several (train / val / test), each a copy holding its share of the episodes,
renumbered, as `edit.delete_episodes` writes them (videos remuxed, not re-encoded).

Splits are given as LeRobot's `split` takes them: fractions of the episodes, in order (each split takes
`int(total * fraction)` episodes after the previous one's, the last one everything left), or lists of episode
indices.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from twinarm.datasets_io.edit import check_apart, delete_episodes
from twinarm.datasets_io.layout import INFO_PATH, DatasetError, load_json


def split_episodes(total: int, splits: Mapping[str, float | Sequence[int]]) -> dict[str, list[int]]:
    """Each split's episode indices; errors name the split (empty, overlapping, missing or too many)."""
    if not splits:
        raise DatasetError("no splits were given")
    fractions = [isinstance(v, float) for v in splits.values()]
    if any(fractions) and not all(fractions):
        raise DatasetError("give every split as a fraction (train=0.8) or every split as episodes (train=0-39)")
    if all(fractions):
        if any(f <= 0 for f in splits.values()) or sum(splits.values()) > 1 + 1e-9:  # type: ignore[arg-type]
            raise DatasetError(f"split fractions must be > 0 and sum to at most 1, got {dict(splits)}")
        out, start, names = {}, 0, list(splits)
        for name, f in splits.items():
            end = total if name == names[-1] else start + int(total * f)  # type: ignore[operator]
            out[name] = list(range(start, end))
            start = end
    else:
        out = {name: sorted({int(e) for e in eps}) for name, eps in splits.items()}  # type: ignore[union-attr]
    seen: dict[int, str] = {}
    for name, eps in out.items():
        if not eps:
            raise DatasetError(f"split {name!r} has no episodes (the dataset has {total})")
        missing = [e for e in eps if not 0 <= e < total]
        if missing:
            raise DatasetError(f"split {name!r}: episode(s) {missing} do not exist (episodes 0..{total - 1})")
        both = sorted({seen[e] for e in eps if e in seen})
        if both:
            raise DatasetError(f"split {name!r} shares episodes with {both}: each episode goes to one split")
        seen.update(dict.fromkeys(eps, name))
    whole = [name for name, eps in out.items() if len(eps) == total]
    if whole:
        raise DatasetError(f"split {whole[0]!r} holds every episode: that is a copy, not a split")
    return out


def split_dataset(src: str | Path, out_dir: str | Path, splits: Mapping[str, float | Sequence[int]]
                  ) -> dict[str, tuple[Path, list[int], list[str]]]:  # fmt: skip
    """Write `out_dir/<name>` for each split. Returns, per split, its folder, the source episodes it holds and
    `delete_episodes`' notes. Every split is checked before the first is written, and a failure leaves nothing:
    neither the splits written so far nor an `out_dir` made for them."""
    src, out_dir = Path(src), Path(out_dir)
    check_names(splits)
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"--out {out_dir} is a file: give a folder for the splits (one dataset per split)")
    total = int(load_json(src / INFO_PATH)["total_episodes"])
    parts = split_episodes(total, splits)
    taken = [out_dir / name for name in parts if (out_dir / name).exists()]
    if taken:
        raise DatasetError(f"{', '.join(map(str, taken))} exist(s): give a new --out folder for the splits")
    for name in parts:
        check_apart(out_dir / name, [src])
    made = [p for p in (out_dir, *out_dir.parents) if not p.exists()]  # folders this split creates
    out: dict[str, tuple[Path, list[int], list[str]]] = {}
    try:
        for name, eps in parts.items():
            keep = set(eps)
            path, notes = delete_episodes(src, out_dir / name, [e for e in range(total) if e not in keep])
            out[name] = (path, eps, notes)
    except BaseException:
        for path, _, _ in out.values():
            shutil.rmtree(path, ignore_errors=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: never anything but what this split put there
        raise
    return out


def check_names(splits: Mapping[str, object]) -> None:
    """Each split's name becomes a folder under --out: a plain folder name, so no split lands elsewhere."""
    for name in splits:
        if name in ("", ".", "..") or "/" in name or "\\" in name:
            raise DatasetError(f"--splits {name!r}: a split's name is its folder under --out, so give a plain "
                               "folder name (no '/', not '..' or empty), e.g. train")
