"""`odradek server [server.properties] [--override key=value ...] [--workers N]`: run one broker
(or, with --workers, N brokers of one cluster under a supervisor: cli/workers.py).

Owns turning a properties file plus overrides into a BrokerConfig, setting up logging,
and refusing modes that are not supported yet. The broker itself (`odradek.broker`) is
imported only when it is about to run, so config mistakes are reported fast.
"""

from __future__ import annotations

import argparse
import sys
import logging
from collections.abc import Sequence
from pathlib import Path

from odradek.cli import UsageError
from odradek.config import BrokerConfig, ConfigError, parse_properties

__all__ = ["configure_logging", "load_config", "parse_overrides", "register", "run"]

log = logging.getLogger("odradek.server")

LOG_FORMAT = "[%(asctime)s] %(levelname)s %(message)s (%(name)s)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "server",
        help="run a broker",
        description="Run one odradek broker until SIGINT or SIGTERM. Accepts Kafka's "
        "server.properties; with no file, a single node on localhost:9092 storing data "
        "in ./odradek-data.",
    )
    parser.add_argument(
        "config_file", nargs="?", metavar="server.properties", help="broker config file"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config, taking precedence over the file (repeatable)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N brokers of the cluster from this config, one per core, and supervise them "
        "(cluster mode: needs zookeeper.connect); worker i gets broker.id+i, every listener port+i and "
        "log dir subdirectories broker-<id>; metrics.listener serves the host's merged /metrics and "
        "/ready, and worker i its own on that port+1+i",
    )
    parser.set_defaults(func=run)


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """`key=value` strings to a dict; UsageError for one without a key or an `=`."""
    props: dict[str, str] = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"malformed --override '{override}': expected key=value")
        props[key.strip()] = value.strip()
    return props


def read_properties_file(path: Path) -> dict[str, str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read config file '{path}': {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # java.util.Properties.load(InputStream) reads ISO-8859-1.
        text = data.decode("latin-1")
    return parse_properties(text)


def load_config(
    config_file: str | Path | None, overrides: Sequence[str] = ()
) -> tuple[BrokerConfig, list[str]]:
    """The broker config from an optional file plus overrides, and its warnings.

    Raises UsageError (one line) for an unreadable file, a malformed override or an
    invalid config value.
    """
    props = read_properties_file(Path(config_file)) if config_file is not None else {}
    props.update(parse_overrides(overrides))
    try:
        return BrokerConfig.from_properties(props)
    except ConfigError as e:
        raise UsageError(str(e)) from None


def configure_logging(level: int = logging.INFO) -> None:
    """Kafka-style log lines on stderr: `[2026-01-01 12:00:00,123] INFO message (logger)`."""
    logging.addLevelName(logging.WARNING, "WARN")  # log4j's spelling, as Kafka prints it
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger("kazoo").setLevel(logging.WARNING)  # its every (re)connection is INFO


def run(args: argparse.Namespace) -> int:
    config, warnings = load_config(args.config_file, args.override)
    configure_logging()
    for warning in warnings:
        logging.getLogger("odradek.config").warning(warning)
    if args.workers is not None:
        from odradek.cli.workers import supervise

        return supervise(config, args.config_file, args.override, args.workers)

    # kio registers strategies with hypothesis whenever hypothesis is importable, 100 ms of every
    # start-up in an environment that has it (a test one); a broker process never uses them.
    sys.modules.setdefault("hypothesis", None)
    try:
        from odradek.broker import run_broker
    except ModuleNotFoundError as e:
        if e.name != "odradek.broker":
            raise
        log.error("this odradek build has no broker (module odradek.broker is missing)")
        return 1
    return run_broker(config)
