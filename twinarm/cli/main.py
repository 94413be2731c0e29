"""Entry point of the `twinarm` command: one subcommand per module listed in COMMANDS."""

from __future__ import annotations

import argparse
import importlib
import sys

from twinarm.cli.config import load_config_file

#: Subcommand modules (in twinarm/cli/); each defines `register(subparsers)` that adds its parser
#: and sets `func=` (a callable taking the parsed args, returning an exit code) and `_parser=` (itself,
#: so `--config FILE` values can become its defaults); see `envs_cmd.py` for the pattern.
COMMANDS: tuple[str, ...] = (
    "envs_cmd",
    "demo_cmd",
    "real_cmd",
    "virtual_arm_cmd",
    "train_cmd",
    "eval_cmd",
    "record_cmd",
    "dataset_cmd",
    # Later issues add: record_cmd, dataset_cmd, train_cmd, eval_cmd, real_cmd (calibrate, setup-motors,
    # find-port, teleop), virtual_arm_cmd.
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twinarm",
        description=(
            "Sim-first robot learning for low-cost arms. Every simulated arm is a Gymnasium env "
            "(`gymnasium.make('twinarm/SO101-PickCube-v0')`) whose real twin has the same spaces "
            "(`twinarm/SO101-PickCube-Real-v0`). Run `twinarm <command> --help` for details."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        importlib.import_module(f"twinarm.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = getattr(args, "_parser", None)
    if sub is not None and getattr(args, "config", None) is not None:
        # Config-file values become the subcommand's defaults; flags on the command line still win.
        values = load_config_file(args.config)
        known = {a.dest for a in sub._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            parser.error(f"config file {args.config}: unknown option(s) {unknown}")
        for action in sub._actions:  # a repeatable flag given once in the file (a string): a list of one
            if isinstance(action, argparse._AppendAction) and isinstance(values.get(action.dest), str):
                values[action.dest] = [values[action.dest]]
        sub.set_defaults(**values)
        args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
