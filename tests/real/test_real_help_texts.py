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


@pytest.mark.parametrize("command", ["teleop", "eval", "replay", "find-port", "setup-motors", "calibrate"])
def test_every_continued_example_line_ends_in_a_backslash(command: str, capsys: pytest.CaptureFixture) -> None:
    """teleop's second --env example had no backslash before its `--view` line: pasted, the shell ran the first
    line alone (and the help rendered it as one very long line)."""
    lines = examples(help_text(command, capsys))
    for line in lines:  # a line joined to the next by a lost line break shows the gap where the break was
        assert not re.search(r"\S {3,}--", line.split("#")[0]), f"{command} --help: two lines run together: {line!r}"
    for line, following in zip(lines, lines[1:], strict=False):
        if following.startswith("      "):  # a continuation of the command above
            assert line.split("#")[0].rstrip().endswith("\\"), f"{command} --help: no backslash ending {line!r}"


@pytest.mark.parametrize(("command", "options"), [
    ("setup-motors", ["--arm", "--port", "--baud", "--motor", "--leader", "--side"]),
    ("calibrate", ["--arm", "--port", "--baud", "--out", "--id", "--leader", "--side"]),
])  # fmt: skip
def test_the_arm_set_up_options_say_what_they_take(command: str, options: list[str],
                                                   capsys: pytest.CaptureFixture) -> None:
    """setup-motors' --arm, --port, --baud and --motor (and calibrate's --arm) had no help, nor their defaults."""
    from twinarm.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices and command in a.choices)
    parser = sub.choices[command]
    for action in parser._actions:
        if action.option_strings and action.option_strings[-1] in options:
            assert action.help, f"{command} {action.option_strings[-1]} has no help text"
    text = " ".join(help_text(command, capsys).split())
    assert "--arm ARM so101, so100, koch or aloha" in text and "(default: so101)" in text
    if command == "setup-motors":
        assert "(default: 1000000)" in text and "default: every joint, one at a time" in text


def test_find_port_says_a_virtual_arm_is_the_port_it_printed(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    """With a virtual arm, find-port showed `Ports now: ['/dev/ttyS0']` and left the user to wonder where it was."""
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [])
    monkeypatch.setattr("builtins.input", lambda text: "")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    assert main(["find-port"]) == 1
    out = capsys.readouterr().out
    assert "a `twinarm virtual-arm` is not listed here: its port is the /dev/pts/N it printed" in out
