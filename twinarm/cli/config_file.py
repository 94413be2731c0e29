"""`--config FILE`: read the YAML/JSON file and turn each value into what the same flag on the command line gives,
through the subcommand parser's own action (type, choices, nargs, flags, exclusive groups), so that a file gets the
command line's checks and error wording instead of reaching the command unchecked."""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

#: The option that names the file: a file cannot name another.
CONFIG_FLAG = "--config"

#: The parser default (`set_defaults`) naming the keys that the command's own saved file holds beside its options
#: (`record`'s next_seed and sessions in meta/twinarm_record.json): a --config file may have them; they are
#: skipped, as a `command` key is.
SAVED_STATE = "_saved_state"


def load_config_file(path: Path, error: Callable[[str], NoReturn] | None = None) -> dict[str, Any]:
    """Read a YAML/JSON config as a mapping with `_` for `-` in its keys; errors name the file and go to `error`
    (a parser's error: usage and exit 2) or, without one, to SystemExit."""

    def fail(message: str) -> NoReturn:
        if error is not None:
            error(message)
        raise SystemExit(message)

    if path.is_dir():
        fail(f"config file {path} is a directory, not a YAML or JSON file")
    if not path.is_file():
        fail(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        fail(f"config file {path} is not valid YAML/JSON: {exc}")
    if not isinstance(data, dict):
        fail(f"config file {path} must hold a mapping of option names to values")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in out:
            fail(f"config file {path}: {key}: given twice (as {name} too)")
        out[name] = value
    return out


class ConfigValueError(Exception):
    """A config value the option it names would refuse on the command line; str is the message after the key."""


def config_defaults(
    parser: argparse.ArgumentParser,
    values: dict[str, Any],
    path: Path,
    command: Sequence[tuple[str, str]] = (),
    given: Collection[str] = (),
) -> dict[str, Any]:
    """The file's `values` as the parser's dests and their converted values (its new defaults). `command`: the
    (dest, name) pairs of the subcommand being run, which a `command:` key (as in a saved config.json) must
    match; `given`: dests given on the command line, which win over the file's others of an exclusive group.
    Errors go to `parser.error` as `config file PATH: KEY: ...`."""

    def fail(key: str, message: str) -> NoReturn:
        parser.error(f"config file {path}: {key}: {message}")

    keys = _keys(parser)
    chosen = dict(command)
    state = set(parser.get_default(SAVED_STATE) or ())
    values = {k: v for k, v in values.items() if k in keys or k not in state}
    unknown = sorted(k for k in values if k not in keys and k not in chosen)
    if unknown:
        hint = "".join(f"; {k}: did you mean {' or '.join(n)}?" for k in unknown
                       if (n := difflib.get_close_matches(k, list(keys), n=2, cutoff=0.7)))  # fmt: skip
        if Path(path).name == "train_config.json":  # the Python API's TrainConfig, saved beside every run
            hint += ("; this is the run's TrainConfig (Python: train(TrainConfig(**json.load(file)))): `train "
                     "--config` takes the config.json a `twinarm train` run saves beside it")
        parser.error(f"config file {path}: unknown option(s) {unknown}{hint}")
    out: dict[str, Any] = {}
    by_dest: dict[str, str] = {}
    for key, value in values.items():
        if key in chosen and key not in keys:
            if value != chosen[key]:
                names = [name for _, name in command]
                meant = [*names[: [dest for dest, _ in command].index(key)], str(value)]
                fail(key, f"the file is for `twinarm {' '.join(meant)}`, not `twinarm {' '.join(names)}`")
            continue
        action, flag = keys[key]
        if CONFIG_FLAG in action.option_strings:
            fail(key, "a config file cannot name another one")
        if not action.option_strings:
            fail(key, f"{action.dest} is given on the command line, not in a config file")
        if value is None:  # null: not given (a saved config.json has one for each option left unset)
            continue
        if action.dest in by_dest:
            fail(key, f"{by_dest[action.dest]} gives {_flag(action)} too")
        by_dest[action.dest] = key
        try:
            converted = convert(parser, action, value, flag)
        except ConfigValueError as exc:
            fail(key, str(exc))
        if converted is not _UNSET:
            out[action.dest] = converted
    for group in parser._mutually_exclusive_groups:
        members = [a for a in group._group_actions if a.dest in out and out[a.dest] is not a.default]
        if any(a.dest in given for a in group._group_actions):  # the command line's choice wins over the file's
            for a in members:
                if a.dest not in given:
                    del out[a.dest]
        elif len(members) > 1:
            first, other = members[0], members[1]
            fail(by_dest[other.dest], f"not allowed with {by_dest[first.dest]} (argument {_flag(other)}: not "
                                      f"allowed with argument {_flag(first)})")  # fmt: skip
    return out


_UNSET: Any = object()


def convert(parser: argparse.ArgumentParser, action: argparse.Action, value: Any, flag: str | None = None) -> Any:
    """One config value as `action` stores it from the command line; `flag`: the option string the key named
    (`--no-progress`), None when the key was the dest. _UNSET when a flag's `false` leaves the default."""
    if action.nargs == 0:
        return _flag_value(action, value, flag)
    if isinstance(action, argparse._AppendAction):
        occurrences = value if isinstance(value, list) and not _one_occurrence(action, value) else [value]
        if isinstance(value, dict) and _takes_pairs(action):
            several = action.nargs not in (None, argparse.OPTIONAL)  # each occurrence a list of pairs (--camera-map)
            occurrences = [[[k, v]] if several else [k, v] for k, v in value.items()]
        elif isinstance(value, list) and _takes_pairs(action) and isinstance(action, argparse._ExtendAction):
            occurrences = [[v] for v in value]  # each item one pair: "a=b", [a, b] (a saved config's) or {a: b}
        stored = [_store(parser, action, v) for v in occurrences]
        if isinstance(action, argparse._ExtendAction):  # the occurrences' values join one list, as on the command line
            return [x for v in stored for x in (v if isinstance(v, list) else [v])]
        return stored
    if action.nargs == argparse.OPTIONAL and isinstance(value, bool):
        return _get_values(parser, action, []) if value else _UNSET  # true: the flag alone (its const)
    return _store(parser, action, value)


def _flag_value(action: argparse.Action, value: Any, flag: str | None) -> Any:
    """A flag's value from a YAML boolean: the dest's own value when the key is the dest (as a saved config has
    it), else whether the flag named is given (`no_progress: true` is `--no-progress`)."""
    if not isinstance(value, bool):
        raise ConfigValueError(f"expected true or false (a YAML boolean, not a string or number), got {value!r}")
    if isinstance(action, argparse.BooleanOptionalAction):
        return not value if flag is not None and flag.startswith("--no-") else value
    if flag is None and isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        return value
    if isinstance(action, argparse._StoreConstAction):
        return action.const if value else _UNSET
    raise ConfigValueError(f"{_flag(action)} cannot be given in a config file")


def _store(parser: argparse.ArgumentParser, action: argparse.Action, value: Any) -> Any:
    """One occurrence of an option: a single value (nargs None or ?) or a list of them (nargs +, *, N)."""
    if action.nargs in (None, argparse.OPTIONAL):
        if isinstance(value, dict) and action.type is None and not action.choices and not _takes_pairs(action):
            return value  # an inline mapping where a file name goes (--randomization, --dynamics)
        return _get_values(parser, action, [_text(action, value)])
    items = value if isinstance(value, list) else [value]
    if isinstance(value, dict) and _takes_pairs(action):
        items = [[k, v] for k, v in value.items()]
    if isinstance(action.nargs, int) and len(items) != action.nargs:
        raise ConfigValueError(f"expected {action.nargs} values, got {len(items)}: {value!r}")
    if action.nargs == argparse.ONE_OR_MORE and not items:
        raise ConfigValueError("expected at least one value, got an empty list")
    return _get_values(parser, action, [_text(action, v) for v in items])


def _text(action: argparse.Action, value: Any) -> str:
    """A value as the command line would spell it: numbers and paths as written, a [KEY, VALUE] pair or
    a one-item mapping as KEY=VALUE for a FIELD=VALUE option (VALUE as JSON unless a string)."""
    if _takes_pairs(action):
        if isinstance(value, dict) and len(value) == 1:
            value = list(value.items())[0]
        if isinstance(value, list | tuple) and len(value) == 2:
            k, v = value
            return f"{k}={v if isinstance(v, str) else json.dumps(v)}"
    if isinstance(value, dict):
        raise ConfigValueError(f"expected a value, got a mapping {value!r}")
    if isinstance(value, list | tuple):
        raise ConfigValueError(f"expected one value, got a list {list(value)!r}")
    return str(value)


def _get_values(parser: argparse.ArgumentParser, action: argparse.Action, strings: list[str]) -> Any:
    """The parser's own conversion of the strings an option was given (type, then choices), its message kept."""
    try:
        return parser._get_values(action, list(strings))
    except argparse.ArgumentError as exc:
        raise ConfigValueError(exc.message) from None


def _one_occurrence(action: argparse.Action, value: list[Any]) -> bool:
    """Whether a list given for a repeatable option is one occurrence of it: the values of an option taking
    several (`board_center: [0.1, 0.2]`); else each item is one (`set: [a=1, [b, 2]]`)."""
    if action.nargs not in (None, argparse.OPTIONAL):
        return not any(isinstance(v, list | dict) for v in value)
    return False


def _takes_pairs(action: argparse.Action) -> bool:
    """Options whose values are KEY=VALUE (--set FIELD=VALUE, --rename-feature OLD=NEW, --camera name=...)."""
    text = action.metavar if isinstance(action.metavar, str) else (action.help or "").split(" ", 1)[0]
    return "=" in text


def _flag(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or action.dest


def _keys(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.Action, str | None]]:
    """Every name a config key may use: each option's dest (as a saved config.json has it; flag None) and each
    of its long flags with `_` for `-` (the flag named)."""
    out: dict[str, tuple[argparse.Action, str | None]] = {}
    actions = [a for a in parser._actions
               if not isinstance(a, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction)]  # fmt: skip
    for action in actions:
        out.setdefault(action.dest, (action, None))
    for action in actions:
        for s in action.option_strings:
            if s.startswith("--"):
                out.setdefault(s[2:].replace("-", "_"), (action, s))
    return out


def find_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[argparse.ArgumentParser, list[tuple[str, str]], list[str]] | None:
    """The (sub)command `argv` runs: its parser (`dataset info`'s, not `dataset`'s), the (dest, name) of each
    command word, and the words after the first one; None without a command."""
    current, command, rest = parser, [], list(argv)
    words: list[str] | None = None
    while (subs := next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)) is not None:
        i = _first_word(current, rest)
        if i is None or rest[i] not in subs.choices:
            break
        command.append((subs.dest, rest[i]))
        current, rest = subs.choices[rest[i]], rest[i + 1:]
        if words is None:
            words = rest
    return (current, command, words) if words is not None else None


def config_path(parser: argparse.ArgumentParser, words: Sequence[str]) -> Path | None:
    """The last `--config FILE` (or `--config=FILE`, or an abbreviation argparse takes) among the words."""
    path = None
    for i, word in enumerate(words):
        if word == "--":
            break
        action = _option(parser, word)
        if action is not None and CONFIG_FLAG in action.option_strings:
            if "=" in word:
                path = Path(word.split("=", 1)[1])
            elif i + 1 < len(words):
                path = Path(words[i + 1])
    return path


def given_dests(parser: argparse.ArgumentParser, words: Sequence[str]) -> set[str]:
    """The dests of the options given among the words (on the command line)."""
    out = set()
    for word in words:
        if word == "--":
            break
        if (action := _option(parser, word)) is not None:
            out.add(action.dest)
    return out


def _first_word(parser: argparse.ArgumentParser, words: Sequence[str]) -> int | None:
    """Index of the first word that is neither an option of the parser nor an option's value."""
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
        elif word == "--":
            return None
        elif word.startswith("-") and len(word) > 1:
            action = _option(parser, word)
            skip = action is not None and "=" not in word and action.nargs is None
        else:
            return i
    return None


def _option(parser: argparse.ArgumentParser, word: str) -> argparse.Action | None:
    """The parser's option a word names: exactly, with `=VALUE`, or as the one long flag it abbreviates."""
    if not word.startswith("-"):
        return None
    flag = word.split("=", 1)[0]
    if flag in parser._option_string_actions:
        return parser._option_string_actions[flag]
    if parser.allow_abbrev and flag.startswith("--") and len(flag) > 2:
        hits = [s for s in parser._option_string_actions if s.startswith(flag)]
        if len(hits) == 1:
            return parser._option_string_actions[hits[0]]
    return None


def take_saved_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, saved: dict[str, Any], path: Path,
    skip: Collection[str] = (),
) -> list[str]:
    """`--resume`: each option the user did not give (`args._given`, the command line and --config) takes its value
    from `saved` (the resolved options a run or recording wrote at `path`), converted through the option's own
    action as a --config file's; options since removed and those in `skip` are left. Returns the options taken
    that changed a value, as flags (`--batch-size 32`), for the user to be told."""
    given = getattr(args, "_given", frozenset())
    dests = {a.dest for a in parser._actions}
    known = {k: v for k, v in saved.items() if k in dests and k not in skip and k not in given}
    taken = []
    for dest, value in config_defaults(parser, known, path, (), given).items():
        if getattr(args, dest, None) == value:
            continue
        setattr(args, dest, value)
        flags = [o for a in parser._actions if a.dest == dest for o in a.option_strings if o.startswith("--")]
        flag = max([o for o in flags if not o.startswith("--no-")] or flags or [f"--{dest}"], key=len)
        if isinstance(value, bool):
            taken.append(flag if value else next((o for o in flags if o.startswith("--no-")), f"{flag} off"))
        else:
            taken.append(f"{flag} {' '.join(map(str, value)) if isinstance(value, list | tuple) else value}")
    return taken
