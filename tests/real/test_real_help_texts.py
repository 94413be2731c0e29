"""The real-arm commands' `--help`: examples that paste as they read (every continued line ends in a backslash),
and a help text with its default for every option a first-time user has to choose."""

from __future__ import annotations

import re

import pytest

from twinarm.cli.main import main


def help_text(command: str, capsys: pytest.CaptureFixture) -> str:
    """What `twinarm COMMAND --help` prints."""
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def examples(text: str) -> list[str]:
    """The lines of the help's `examples:` block."""
    return text.split("examples:\n", 1)[1].splitlines()


@pytest.mark.parametrize("command", ["teleop", "eval", "replay"])
def test_every_continued_example_line_ends_in_a_backslash(command: str, capsys: pytest.CaptureFixture) -> None:
    """teleop's second --env example had no backslash before its `--view` line: pasted, the shell ran the first
    line alone (and the help rendered it as one very long line)."""
    lines = examples(help_text(command, capsys))
    for line in lines:  # a line joined to the next by a lost line break shows the gap where the break was
        assert not re.search(r"\S {3,}--", line.split("#")[0]), f"{command} --help: two lines run together: {line!r}"
    for line, following in zip(lines, lines[1:], strict=False):
        if following.startswith("      "):  # a continuation of the command above
            assert line.split("#")[0].rstrip().endswith("\\"), f"{command} --help: no backslash ending {line!r}"
