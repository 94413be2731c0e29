"""`--config FILE` support shared by every subcommand: YAML/JSON defaults, flags override, resolved copy saved."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML or JSON file of option values (keys as the long flags, with _ for -); flags given "
        "on the command line override it.",
    )


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML/JSON config; errors name the file."""
    if not path.is_file():
        raise SystemExit(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SystemExit(f"config file {path} is not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SystemExit(f"config file {path} must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's options as plain JSON-able values (for saving next to outputs)."""
    out: dict[str, Any] = {}
    for k, v in vars(args).items():
        if k in ("func", "config", "_parser"):
            continue
        out[k] = str(v) if isinstance(v, Path) else v
    return out


def write_resolved_config(args: argparse.Namespace, out_dir: Path, name: str = "config.json") -> Path:
    """Save the resolved options beside a run's outputs so it can be reproduced."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(resolved_config(args), indent=2, default=str) + "\n")
    return path
