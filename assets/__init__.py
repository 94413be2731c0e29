"""Menagerie-style model folders, one per arm (model xml, scene xml, meshes, README with provenance)."""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent


def arm_dir(arm: str) -> Path:
    """The asset folder of an arm, e.g. `assets/so101`."""
    path = ASSETS_DIR / arm
    if not path.is_dir():
        known = sorted(p.name for p in ASSETS_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise FileNotFoundError(f"no asset folder for arm {arm!r} at {path}; known: {known}")
    return path


def scene_path(arm: str) -> Path:
    """The arm's `scene.xml` (robot + table + lights + fixed cameras)."""
    path = arm_dir(arm) / "scene.xml"
    if not path.is_file():
        raise FileNotFoundError(f"missing scene file {path}")
    return path
