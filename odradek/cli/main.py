"""The `odradek` command: argparse front end that dispatches to one module per subcommand.

Owns argument parsing, exit codes and how usage errors are shown: one line on stderr and
exit 2, never a traceback. Each subcommand module exposes `register(subparsers)`, which
adds its parser and sets `run(args) -> int` as the parser's default `func`.
"""

from __future__ import annotations

import argparse
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
from odradek.cli import UsageError, server  # noqa: E402
from odradek.cli import acls, configs, consume, dev_cluster, dump_log, get_offsets, groups, produce, topics, users, zookeeper  # noqa: E402

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a command killed by SIGPIPE, like cat

class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the command, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="odradek",
        description="A Kafka-compatible event-streaming broker in Python.",
    )
    parser.add_argument(
        "--version", action="version", version=f"odradek {odradek.__version__}"
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", parser_class=_Parser)
    server.register(subparsers)
    zookeeper.register(subparsers)
    dev_cluster.register(subparsers)
    topics.register(subparsers)
    produce.register(subparsers)
    consume.register(subparsers)
    groups.register(subparsers)
    configs.register(subparsers)
    acls.register(subparsers)
    users.register(subparsers)
    get_offsets.register(subparsers)
    dump_log.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
