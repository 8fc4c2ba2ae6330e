"""What every client command shares: connection flags, the client properties file, running.

`add_client_arguments` gives a subcommand `--bootstrap-server`, `--command-config`, `--timeout-ms`
and `--output`; `run_with_client` opens a KafkaClient from them, runs the command's coroutine on
an event loop (uvloop when installed) and turns every failure a user can cause into one line on
stderr and a non-zero exit: 1 for errors from the cluster (unknown topic, unreachable broker),
2 for usage mistakes (UsageError, raised through to `cli.main`), 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from odradek.cli import UsageError
from odradek.client import BrokerUnreachableError, ClientError, KafkaClient, KafkaError
from odradek.client.client import DEFAULT_REQUEST_TIMEOUT_MS
from odradek.config import ConfigError, parse_properties
from odradek.security.client_security import CLIENT_SECURITY_PROPERTIES, from_client_properties

__all__ = [
    "DEFAULT_BOOTSTRAP_SERVER",
    "DEFAULT_TIMEOUT_MS",
    "EXIT_ERROR",
    "add_client_arguments",
    "parse_key_values",
    "run_async",
    "run_with_client",
    "warn",
]

DEFAULT_BOOTSTRAP_SERVER = "localhost:9092"
DEFAULT_TIMEOUT_MS = 10_000
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

# Client properties (Kafka's names) this command line understands; others get a warning.
KNOWN_CLIENT_PROPERTIES = {
    "bootstrap.servers",
    "client.id",
    "request.timeout.ms",
    "default.api.timeout.ms",
} | CLIENT_SECURITY_PROPERTIES


class _ExamplesFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in a command's epilog as written."""


def add_subcommand(subparsers: argparse._SubParsersAction, name: str, *, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples.rstrip() + "\n",
        formatter_class=_ExamplesFormatter,
    )
    return parser


def add_client_arguments(parser: argparse.ArgumentParser, *, timeout_help: str | None = None) -> None:
    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--bootstrap-server",
        metavar="HOST:PORT[,HOST:PORT]",
        help=f"broker(s) to connect to (default: {DEFAULT_BOOTSTRAP_SERVER}, or bootstrap.servers from --command-config)",
    )
    group.add_argument(
        "--command-config",
        metavar="FILE",
        help="client properties file (Kafka's names: client.id, request.timeout.ms, ...); unknown keys are warned about and ignored",
    )
    group.add_argument(
        "--timeout-ms",
        type=int,
        metavar="MS",
        help=timeout_help or f"give up when no broker answers within this time (default: {DEFAULT_TIMEOUT_MS})",
    )
    group.add_argument(
        "--output", choices=("table", "json"), default="table", help="human-readable table (default) or JSON"
    )


def warn(message: str) -> None:
    print(f"odradek: warning: {message}", file=sys.stderr)


def load_command_config(path: str | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise UsageError(f"cannot read --command-config file '{path}': {e.strerror or e}") from None
    properties = parse_properties(text)
    for key in sorted(properties):
        if key not in KNOWN_CLIENT_PROPERTIES:
            warn(f"ignoring client property '{key}' from {path}: odradek does not use it")
    return properties


def _int_property(properties: dict[str, str], key: str, default: int) -> int:
    value = properties.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"client property {key}={value!r} is not an integer") from None


def make_client(args: argparse.Namespace) -> KafkaClient:
    properties = load_command_config(getattr(args, "command_config", None))
    bootstrap = args.bootstrap_server or properties.get("bootstrap.servers") or DEFAULT_BOOTSTRAP_SERVER
    timeout_ms = args.timeout_ms if getattr(args, "timeout_ms", None) is not None else DEFAULT_TIMEOUT_MS
    if timeout_ms <= 0:
        raise UsageError(f"--timeout-ms must be positive, not {timeout_ms}")
    try:
        security = from_client_properties(properties)
    except ConfigError as e:
        raise UsageError(f"{e} (in {args.command_config})") from None
    try:
        return KafkaClient(
            bootstrap,
            security=security,
            client_id=properties.get("client.id", "odradek-cli"),
            connect_timeout_ms=timeout_ms,
            request_timeout_ms=_int_property(properties, "request.timeout.ms", DEFAULT_REQUEST_TIMEOUT_MS),
        )
    except ValueError as e:
        raise UsageError(f"--bootstrap-server: {e}") from None


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_async(main: Awaitable[int]) -> int:
    """Run `main` to completion; cluster errors become one line on stderr and exit 1."""
    try:
        with asyncio.Runner(loop_factory=_new_event_loop) as runner:
            return runner.run(main)
    except KafkaError as e:
        print(f"odradek: {e}", file=sys.stderr)
        return EXIT_ERROR
    except BrokerUnreachableError as e:
        print(f"odradek: {e}", file=sys.stderr)
        return EXIT_ERROR
    except ClientError as e:
        print(f"odradek: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("odradek: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader is gone, nothing left to say.
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            return EXIT_ERROR


def run_with_client(args: argparse.Namespace, command: Callable[[KafkaClient], Awaitable[int]]) -> int:
    """Connect per `args`, run `command(client)`, close the client; see `run_async` for errors."""
    client = make_client(args)

    async def main() -> int:
        await client.start()
        try:
            return await command(client)
        finally:
            await client.close()

    return run_async(main())


def parse_key_values(items, what: str, *, separator: str = "=") -> dict[str, str]:
    """`k=v` strings (each may hold several, comma-separated; `[a,b]` keeps a comma in a value)."""
    result: dict[str, str] = {}
    for item in items or ():
        for part in split_config_list(item):
            key, sep, value = part.partition(separator)
            if not sep or not key.strip():
                raise UsageError(f"malformed {what} '{part}': expected key{separator}value")
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            result[key.strip()] = value
    return result


def split_config_list(text: str) -> list[str]:
    """Split on commas outside square brackets (Kafka's `k=[a,b],k2=v` syntax)."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]
