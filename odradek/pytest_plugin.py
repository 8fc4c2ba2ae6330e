"""pytest plugin (entry point `odradek`): a real Kafka-compatible broker for your tests.

Fixtures:

- `odradek_broker`: a fresh in-process broker per test, its log dir under the test's `tmp_path`.
- `odradek_broker_session`: one broker shared by the whole session (faster; tests share data,
  so give each test its own topic names).
- `odradek_broker_config`: override it to pass broker config (Kafka names, string values) to
  `odradek_broker`.

Each yields an object with `.bootstrap_servers` ("host:port") to hand to any Kafka client.
With `ODRADEK_BOOTSTRAP_SERVERS` set, no broker is started and the fixtures point at that one;
a config requested through `odradek_broker_config` that the external broker does not have (its
DescribeConfigs shows another value) is reported as an `OdradekConfigWarning` naming the keys,
since it cannot be applied to a broker someone else runs.

This module must stay cheap to import: pytest loads it in every session of an environment that
has odradek installed, so the broker is imported only when a fixture is used.
"""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

BOOTSTRAP_ENV = "ODRADEK_BOOTSTRAP_SERVERS"


@dataclass(frozen=True)
class ExternalBroker:
    """A broker someone else runs, named by `ODRADEK_BOOTSTRAP_SERVERS`."""

    bootstrap_servers: str


class OdradekConfigWarning(pytest.PytestWarning):
    """The broker config a test asked for is not what the external broker runs with."""


def _serve(log_dir: Path, config: dict[str, str] | None) -> Iterator[object]:
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        if config:
            _warn_unapplied(external, config)
        yield ExternalBroker(external)
        return
    from odradek.broker import Broker

    with Broker(log_dir, config=config) as broker:
        yield broker


def _warn_unapplied(bootstrap_servers: str, config: dict[str, str]) -> None:
    """Warn for every requested key whose value the external broker does not report."""
    try:
        actual = _run_in_thread(_broker_configs(bootstrap_servers, list(config)))
    except Exception as exc:  # noqa: BLE001 - any failure means the config could not be checked
        warnings.warn(
            OdradekConfigWarning(
                f"{BOOTSTRAP_ENV}={bootstrap_servers}: cannot check the requested broker config "
                f"({', '.join(sorted(config))}) against that broker: {exc}"
            ),
            stacklevel=3,
        )
        return
    unapplied = {key: value for key, value in config.items() if actual.get(key) != str(value).strip()}
    if unapplied:
        found = ", ".join(f"{key}={value!r} (broker has {actual.get(key)!r})" for key, value in sorted(unapplied.items()))
        warnings.warn(
            OdradekConfigWarning(
                f"{BOOTSTRAP_ENV}={bootstrap_servers}: the external broker does not run with the config this "
                f"test asked for, and odradek_broker cannot apply it: {found}"
            ),
            stacklevel=3,
        )


async def _broker_configs(bootstrap_servers: str, keys: list[str]) -> dict[str, str | None]:
    from odradek.client import Admin, KafkaClient
    from odradek.client.admin import RESOURCE_BROKER

    async with KafkaClient(bootstrap_servers) as client:
        cluster = await client.refresh_metadata([])
        node_id = min(cluster.brokers)
        entries = await Admin(client).describe_configs(RESOURCE_BROKER, str(node_id), keys, include_synonyms=False)
    return {entry.name: entry.value for entry in entries}


def _run_in_thread(coroutine):
    """Run a coroutine to completion on a loop of its own (the test may be inside another loop)."""
    result: list = []

    def run() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            result.append(exc)

    thread = threading.Thread(target=run, name="odradek-config-check")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


@pytest.fixture
def odradek_broker_config() -> dict[str, str]:
    """Broker config for `odradek_broker`; override this fixture to change it."""
    return {}


@pytest.fixture
def odradek_broker(tmp_path: Path, odradek_broker_config: dict[str, str]) -> Iterator[object]:
    """A broker of its own for this test, on a free port, with data in `tmp_path`."""
    yield from _serve(tmp_path / "odradek-data", odradek_broker_config or None)


@pytest.fixture(scope="session")
def odradek_broker_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One broker for the whole session, on a free port."""
    yield from _serve(tmp_path_factory.mktemp("odradek-data"), None)
