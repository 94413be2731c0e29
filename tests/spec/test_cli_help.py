"""Every subcommand's --help states the defaults it has, and only real ones (no None, [] or flag states)."""

from __future__ import annotations

import re

import pytest

from twinarm.cli.main import COMMANDS, build_parser


def _subparsers() -> dict[str, object]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


def test_every_command_registered() -> None:
    assert len(_subparsers()) >= len(COMMANDS)


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_help_shows_real_defaults_only(name: str) -> None:
    text = _subparsers()[name].format_help()
    shown = re.findall(r"\(default:\s+([^)]*)\)", " ".join(text.split()))
    assert not {"None", "[]", "()", "True", "False"} & set(shown), f"twinarm {name} --help: {shown}"


def test_train_help_states_its_defaults() -> None:
    text = " ".join(_subparsers()["train"].format_help().split())
    for phrase in ("batch size per process (default: 8)", "(default: outputs/train)",
                   "in --env (0: never) (default: 10000)"):  # fmt: skip
        assert phrase in text
    assert "--no-progress no progress bar --seed-steps" in text  # a flag: no default appended
