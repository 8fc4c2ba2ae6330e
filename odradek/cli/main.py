"""The `odradek` command: argparse front end that dispatches to one module per subcommand.

Owns argument parsing, exit codes and how usage errors are shown: one line on stderr and
exit 2, never a traceback. Each subcommand module exposes `register(subparsers)`, which
adds its parser and sets `run(args) -> int` as the parser's default `func`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

# kio registers hypothesis strategies for its types whenever hypothesis is importable; in a
# command-line process that costs seconds at start-up and writes `.hypothesis/` into the current
# directory. The command never needs hypothesis, so keep kio from finding it (unless this module
# is imported inside a test session, which has its own use for hypothesis).
if "hypothesis" not in sys.modules and "pytest" not in sys.modules:
    sys.modules["hypothesis"] = None  # type: ignore[assignment]

import odradek  # noqa: E402
from odradek.cli import UsageError  # noqa: E402

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a command killed by SIGPIPE, like cat

class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the command, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="odradek",
        description="A Kafka-compatible event-streaming broker in Python.",
    )
    parser.add_argument(
        "--version", action="version", version=f"odradek {odradek.__version__}"
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", parser_class=_Parser)
    for module in COMMANDS if command not in COMMANDS else (command,):
        importlib.import_module(f"odradek.cli.{module}").register(subparsers)
    return parser


# One module per subcommand; a command line naming one imports only that one (`odradek server`
# starts without loading the client, the admin tools and their protocol tables).
COMMANDS = ("server", "zookeeper", "dev_cluster", "topics", "produce", "consume", "groups", "configs", "acls",
            "users", "delegation_tokens", "get_offsets", "dump_log")


def _command_of(argv: Sequence[str]) -> str | None:
    """The module of the subcommand the arguments name, if they name one first."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first.replace("-", "_") if first is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(arguments))
    args = parser.parse_args(arguments)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = func(args)
        sys.stdout.flush()
        return code
    except UsageError as e:
        print(f"odradek {args.command}: {e} (see 'odradek {args.command} --help')", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`odradek dump-log ... | head`): stop quietly, as cat does. Point
        # stdout at /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
