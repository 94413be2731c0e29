"""The commands the docs show are ones the CLI takes: every `twinarm ...` in README.md, benchmarks/*.md,
assets/*/README.md and the commands' own --help texts names a real command (and dataset action) and only
flags it has; a README command line without placeholders parses whole; every benchmark or tool script the
README names exists and has the flags shown beside it. A renamed flag fails here, not in a user's terminal."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

from twinarm.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "benchmarks").glob("*.md")), *sorted((ROOT / "assets").glob("*/README.md"))]
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?![\w.])")  # not LeRobot's dotted --env.type
PLACEHOLDERS = ("...", "[", "<", "|")


def _sub(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


PARSER = build_parser()
COMMANDS = _sub(PARSER).choices


def _command_lines(text: str) -> list[str]:
    """Lines that start with `twinarm `, continuation lines joined, trailing comments cut."""
    lines = [ln.strip().removeprefix("$ ") for ln in re.sub(r"\\\n\s*", " ", text).splitlines()]
    return [re.sub(r"\s+#.*$", "", ln) for ln in lines if ln.startswith("twinarm ")]


def _fenced(text: str) -> list[str]:
    """The lines of a Markdown text's fenced blocks, continuation lines joined."""
    blocks: list[list[str]] = []
    inside = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    return [ln for block in blocks for ln in re.sub(r"\\\n\s*", " ", "\n".join(block)).splitlines()]


def _block_lines(text: str) -> list[str]:
    """The `twinarm ...` lines of a Markdown text's fenced blocks."""
    return _command_lines("\n".join(_fenced(text)))


def _spans(text: str) -> list[str]:
    """Inline code spans outside the fenced blocks (whose fences would pair with them), whitespace collapsed."""
    prose = re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)
    return [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose)]


def _inline(text: str) -> list[str]:
    return [s for s in _spans(text) if s.startswith("twinarm ")]


def _problems(mention: str) -> list[str]:
    """What in one mention the CLI does not have (empty when all of it exists)."""
    words = mention.split()[1:]
    if words and words[0].startswith("<"):  # `twinarm <command> --help`
        return []
    if not words or words[0].startswith("-"):
        parser, rest = PARSER, words
    elif words[0] not in COMMANDS:
        return [f"no command {words[0]!r}"]
    else:
        parser, rest = COMMANDS[words[0]], words[1:]
    inner = _sub(parser)
    if inner is not None and rest and not rest[0].startswith("-") and rest[0] not in PLACEHOLDERS:
        if rest[0] not in inner.choices:
            return [f"no action {rest[0]!r} of {parser.prog}"]
        parser, rest = inner.choices[rest[0]], rest[1:]
    options = {s for a in parser._actions for s in a.option_strings}
    return [f"{parser.prog} has no {flag}" for flag in FLAG.findall(" ".join(rest)) if flag not in options]


def _help_texts() -> dict[str, str]:
    """Each parser's own words (description, epilog, option help), unwrapped."""
    out = {}
    parsers = [PARSER, *COMMANDS.values()]
    parsers += [p for c in COMMANDS.values() if _sub(c) is not None for p in _sub(c).choices.values()]
    for p in parsers:
        parts = [p.description or "", p.epilog or ""] + [a.help or "" for a in p._actions]
        out[p.prog] = "\n".join(parts)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_in_the_docs_exists_with_its_flags(doc: Path) -> None:
    text = doc.read_text()
    found = {m: _problems(m) for m in _block_lines(text) + _inline(text)}
    assert not {m: p for m, p in found.items() if p}, doc.name
    if doc.name == "README.md" and doc.parent == ROOT:
        assert len(found) > 60  # the extraction still finds the README's commands


def test_every_command_in_the_help_texts_exists_with_its_flags() -> None:
    mentions = {prog: _command_lines(text) + _inline(text) for prog, text in _help_texts().items()}
    assert sum(map(len, mentions.values())) > 20
    bad = {(prog, m): p for prog, ms in mentions.items() for m in ms if (p := _problems(m))}
    assert not bad


def test_readme_command_lines_without_placeholders_parse_whole() -> None:
    """Required options present, choices and numbers valid: the line runs as pasted (given its files)."""
    whole = [c for c in _block_lines((ROOT / "README.md").read_text()) if not any(p in c for p in PLACEHOLDERS)]
    assert len(whole) > 30
    refused = {}
    for line in whole:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                PARSER.parse_args(shlex.split(line)[1:])
            except SystemExit as exc:
                if exc.code:
                    refused[line] = err.getvalue().strip().splitlines()[-1]
    assert not refused


def test_every_script_the_docs_name_exists_with_its_flags() -> None:
    """`python benchmarks/X.py ARGS` in code spans and blocks: the file is there and every flag in ARGS is a
    string in its source (where its argparse defines it)."""
    spans = [s for doc in DOCS for text in [doc.read_text()] for s in _spans(text) + _fenced(text)]
    checked, bad = set(), []
    for span in spans:
        for m in re.finditer(r"(?:(benchmarks|tools)/)?([\w-]+\.py)([^|;&#]*)", span):
            folder, name, args = m.groups()
            candidates = [ROOT / folder / name] if folder else [ROOT / "benchmarks" / name, ROOT / "tools" / name]
            script = next((c for c in candidates if c.exists()), None)
            if script is None:
                bad += [f"{folder}/{name} does not exist"] if folder else []
                continue
            args = args.split(".py")[0]  # up to the next script named in the same span
            source = script.read_text()
            for flag in FLAG.findall(args):
                checked.add((script.name, flag))
                if f'"{flag}"' not in source:
                    bad.append(f"{script.name} has no {flag}")
    assert len(checked) > 15 and not bad, bad


def test_the_readmes_python_compiles_and_its_imports_resolve() -> None:
    """Each ```python block is valid Python and every `from X import Y` in it names a real module and name."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) >= 4
    imported = 0
    for block in blocks:
        compile(block, "README.md", "exec")
        for module, names in re.findall(r"^from ([\w.]+) import ([\w, ]+)", block, flags=re.M):
            loaded = importlib.import_module(module)
            for name in (n.strip() for n in names.split(",")):
                assert hasattr(loaded, name), f"README: from {module} import {name}"
                imported += 1
    assert imported >= 2
