"""Entry point of the `twinarm` command: one subcommand per module listed in COMMANDS."""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import os
import sys
import warnings
from typing import Any, NoReturn

from twinarm.cli.config_file import (
    CONFIG_FLAG,
    config_defaults,
    config_path,
    find_command,
    given_dests,
    load_config_file,
)

#: Subcommand modules (in twinarm/cli/); each defines `register(subparsers)` that adds its parser
#: and sets `func=` (a callable taking the parsed args, returning an exit code) and `_parser=` (itself,
#: so `--config FILE` values can become its defaults); see `envs_cmd.py` for the pattern.
COMMANDS: tuple[str, ...] = (
    "envs_cmd",
    "demo_cmd",
    "real_cmd",
    "find_cameras_cmd",
    "virtual_arm_cmd",
    "train_cmd",
    "eval_cmd",
    "robustness_cmd",
    "record_cmd",
    "replay_cmd",
    "fit_dynamics_cmd",
    "fit_camera_cmd",
    "dataset_cmd",
    "export_cmd",
    "push_policy_cmd",
    "doctor_cmd",
)


class _ShowDefaults(argparse.HelpFormatter):
    """Option help ends with "(default: X)" wherever a value default is set and the text does not already
    say what the default is (flags, lists and unset defaults are left alone)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if (
            text is None
            or "default" in text.lower()
            or not action.option_strings
            or action.default in (None, argparse.SUPPRESS)
            or isinstance(action.default, bool)
            or action.default in ([], ())
            or action.nargs == 0
        ):
            return text
        return f"{text} (default: %(default)s)"


class _RawShowDefaults(_ShowDefaults, argparse.RawDescriptionHelpFormatter):
    """`_ShowDefaults` for commands whose description is laid out by hand."""


class _Parser(argparse.ArgumentParser):
    """Every subcommand's parser shows its defaults (keeping a hand-laid-out description as it is), and its errors
    under a short usage: `train` and `eval` have some forty options, whose full usage (twenty lines) buried the
    one error line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raw = kwargs.get("formatter_class") is argparse.RawDescriptionHelpFormatter
        kwargs["formatter_class"] = _RawShowDefaults if raw else _ShowDefaults
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        usage = self.format_usage()
        if usage.count("\n") > 3:
            usage = f"usage: {self._short_usage()}   (every option: {self.prog} --help)\n"
        self.exit(2, f"{usage}{self.prog}: error: {message}\n")

    def _short_usage(self) -> str:
        """The command, its required options and its positionals, then `[options]`."""
        words = [self.prog]
        for action in self._actions:
            if action.option_strings and action.required:
                words.append(f"{max(action.option_strings, key=len)} {action.metavar or action.dest.upper()}")
            elif not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                words.append(str(action.metavar or action.dest))
        return " ".join([*words, "[options]"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twinarm",
        description=(
            "Sim-first robot learning for low-cost arms. Every simulated arm is a Gymnasium env "
            "(`gymnasium.make('twinarm/SO101-PickCube-v0')`) whose real twin has the same spaces "
            "(`twinarm/SO101-PickCube-Real-v0`). Run `twinarm <command> --help` for details."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"twinarm.cli.{name}").register(sub)
    return parser


_python_format_warning = warnings.formatwarning


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:  # fmt: skip
    """twinarm's own warnings (a loop overrun, a policy on another arm) print as one `twinarm: warning:` line:
    what happened, not the source line that warned. Other packages' print as Python prints them."""
    if category.__module__.split(".")[0] == "twinarm":
        return f"twinarm: warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.formatwarning = _format_warning
    parser = build_parser()
    _unknown_command(parser, argv)
    given = _apply_config_file(parser, argv)
    args, extra = parser.parse_known_args(argv)
    args._given = given
    if extra:
        _unrecognized(getattr(args, "_parser", parser), extra)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # output still buffered meets a closed pipe here, not in a note at exit
        return code
    except BrokenPipeError:
        if not _stdout_gone():
            raise
        return reader_gone()
    except KeyboardInterrupt as exc:
        return interrupted(exc)
    except Exception as exc:
        if not _explained(exc) or os.environ.get(TRACEBACK_ENV, "0") != "0":
            raise
        print(f"twinarm {args.command}: error: {_said(exc)}\n(set {TRACEBACK_ENV}=1 for the traceback)", file=sys.stderr)
        return 1


def interrupted(exc: KeyboardInterrupt) -> int:
    """Say why a command stopped early and return its exit status: 130 for Ctrl-C, as a shell reports SIGINT, and
    128 + N for SIGTERM/SIGHUP, which a real arm's env turns into a KeyboardInterrupt with `.signum` N (after its
    torque went off) so that what is finished gets saved as on Ctrl-C. Every command exits so, teleop too."""
    print(str(exc) if getattr(exc, "signum", None) else "interrupted", file=sys.stderr)
    return interrupt_status(exc)


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has gone (`twinarm envs --real | head -2` once `head` exits), not some
    other pipe (a worker's) that broke."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is no file (captured)
        return False


def reader_gone() -> int:
    """End quietly when stdout's reader stopped reading (`| head`), as Python's docs advise ("Note on SIGPIPE"):
    stdout goes to os.devnull, so the flush at exit has nowhere to fail again, and the exit status is 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


def interrupt_status(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C; 128 + N for a KeyboardInterrupt that carries the number N of the signal that caused it."""
    signum = getattr(exc, "signum", None)
    return 128 + int(signum) if signum else 130


def _unknown_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """A mistyped command (`twinarm dem`) gets the nearest commands, as a mistyped flag gets the nearest flags
    (argparse lists all nineteen); `dataset` actions too (`twinarm dataset inof`)."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return
    name, choices, where = words[0], commands.choices, parser
    if name in choices and name == "dataset" and len(words) > 1:
        sub = choices[name]
        actions = next((a for a in sub._actions if isinstance(a, argparse._SubParsersAction)), None)
        if actions is None or argv.index(words[1]) != argv.index(name) + 1:
            return
        name, choices, where = words[1], actions.choices, sub
    if argv and argv[0] == words[0] and name not in choices:
        near = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
        where.error(f"unknown command {name!r}" + (f"; did you mean {' or '.join(near)}?" if near else
                                                  f"; the commands: {', '.join(choices)}"))


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> None:
    """argparse's "unrecognized arguments" error, from the subcommand's own parser (its usage, its name) and with
    the nearest flags it does have: `--perturbation` for `--perturbations`, and twinarm's spelling of a LeRobot
    dotted flag (`--policy.path=P`: `--policy P`; `--policy.n_action_steps=20`: `--set n_action_steps=20`)."""
    flags = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    hints = []
    for i, e in enumerate(extra):
        if not e.startswith("--"):
            continue
        name, _, value = e.partition("=")
        if not value and i + 1 < len(extra) and not extra[i + 1].startswith("-"):
            value = extra[i + 1]  # `--policy.path P`
        ours = _lerobot_flag(name, value, flags)
        if ours is not None and ("." in name or name in LEROBOT_FLAGS):
            hints.append(f"; {name}: LeRobot's flag; twinarm's is {ours}")
        elif near := difflib.get_close_matches(name, flags, n=2, cutoff=0.7):
            hints.append(f"; {name}: did you mean {' or '.join(near)}?")
    parser.error(f"unrecognized arguments: {' '.join(extra)}{''.join(hints)}")


#: LeRobot's dotted flags -> twinarm's flag (`{}`: the value), where the command has that flag.
LEROBOT_FLAGS = {"--policy.path": "--policy {}", "--policy.type": "--policy {}", "--dataset.repo_id": "--dataset {}",
                 "--dataset.root": "--dataset {}", "--eval.n_episodes": "--episodes {}", "--eval.batch_size": "--n-envs {}",
                 "--env.task": "--env twinarm/{}", "--env.type": "--env ID (`twinarm envs` lists them)",
                 "--policy.device": "--device {}",
                 "--rename_map": "--rename-feature POLICY_KEY=ENV_KEY (the other way round from LeRobot's map)"}  # fmt: skip


def _lerobot_flag(name: str, value: str, flags: list[str]) -> str | None:
    """The twinarm flag for a LeRobot-style one (`--policy.path`, `--policy.<field>`, `--env.task`, `--rename_map`),
    with its value, when the command has it; None otherwise (`--batch_size` finds `--batch-size` as a near flag)."""
    shown = value or "VALUE"
    if name == "--env.task" and shown.startswith("twinarm/"):
        shown = shown.removeprefix("twinarm/")
    if name in LEROBOT_FLAGS:
        ours = LEROBOT_FLAGS[name].format(shown)
    elif name.startswith("--policy.") and "--set" in flags:
        ours = f"--set {name.removeprefix('--policy.')}={shown}"
    else:
        return None
    return ours if ours.split()[0] in flags else None


def _apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> frozenset[str]:
    """`--config FILE`: its values become the subcommand's defaults before argv is parsed, so the file can also give
    options the command requires (--port, --calibration); flags on the command line still win. Each value goes
    through the option's own type, choices and nargs (config_file.config_defaults): the file gets the command
    line's checks, not a string "false" taken as true or a float where a count goes. Returns the dests the user
    gave (on the command line or in the file): the others hold defaults, which `--resume` takes from the run."""
    found = find_command(parser, argv)
    if found is None:
        return frozenset()
    sub, command, words = found
    given = given_dests(sub, words)
    if not any(CONFIG_FLAG in a.option_strings for a in sub._actions):
        return frozenset(given)  # argparse itself refuses --config
    path = config_path(sub, words)
    if path is None:
        return frozenset(given)
    values = config_defaults(sub, load_config_file(path, sub.error), path, command, given)
    for action in sub._actions:
        if action.dest in values:
            action.required = False  # the file gives it
    for group in sub._mutually_exclusive_groups:
        if any(a.dest in values for a in group._group_actions):
            group.required = False
    sub.set_defaults(**values)
    return frozenset(given | values.keys())


#: Set to 1 to see the traceback of an error the CLI would otherwise report in one line.
TRACEBACK_ENV = "TWINARM_TRACEBACK"


def _explained(exc: BaseException) -> bool:
    """Errors whose message already names the file, field, port or motor at fault: a dataset that cannot be
    read or written, a real arm or camera that fails, a checkpoint that is not there, a policy that does not fit
    the env, a Hub upload that failed, a policy config that contradicts itself or its data."""
    from twinarm.agents.env_io import PolicyEnvMismatch
    from twinarm.agents.policy import PolicyConfigError
    from twinarm.datasets_io.hub import HubError
    from twinarm.datasets_io.layout import DatasetError
    from twinarm.real.errors import RealArmError

    return isinstance(exc, DatasetError | RealArmError | FileNotFoundError | PolicyEnvMismatch | HubError
                      | PolicyConfigError) or _unwritable(exc)


#: A file where a folder goes (or the other way round): the path the user gave, not twinarm, is at fault.
IN_THE_WAY = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR)


def _unwritable(exc: BaseException) -> bool:
    """An output that cannot be written (a read-only or full disk, a file where a folder goes), with its path."""
    from twinarm.datasets_io.layout import WRITE_ERRNOS

    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS + IN_THE_WAY and bool(exc.filename)


def _said(exc: BaseException) -> str:
    """The one line for an explained error: an unwritable output as `PATH: cannot write here (reason)`."""
    if not _unwritable(exc):
        return str(exc)
    assert isinstance(exc, OSError)
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"{exc.filename}: a file is in the way where a folder goes ({exc.strerror}); name another path"
    return f"{exc.filename}: cannot write here ({exc.strerror})"


if __name__ == "__main__":
    sys.exit(main())
