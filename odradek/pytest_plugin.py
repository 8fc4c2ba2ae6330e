"""pytest plugin (entry point `odradek`): a real Kafka-compatible broker for your tests.

Fixtures:

- `odradek_broker`: a fresh in-process broker per test, its log dir under the test's `tmp_path`.
- `odradek_broker_session`: one broker shared by the whole session (faster; tests share data,
  so give each test its own topic names).
- `odradek_broker_config`: override it to pass broker config (Kafka names, string values) to
  `odradek_broker`.

Each yields an object with `.bootstrap_servers` ("host:port") to hand to any Kafka client.
With `ODRADEK_BOOTSTRAP_SERVERS` set, no broker is started and the fixtures point at that one.

This module must stay cheap to import: pytest loads it in every session of an environment that
has odradek installed, so the broker is imported only when a fixture is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

BOOTSTRAP_ENV = "ODRADEK_BOOTSTRAP_SERVERS"


@dataclass(frozen=True)
class ExternalBroker:
    """A broker someone else runs, named by `ODRADEK_BOOTSTRAP_SERVERS`."""

    bootstrap_servers: str


def _serve(log_dir: Path, config: dict[str, str] | None) -> Iterator[object]:
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield ExternalBroker(external)
        return
    from odradek.broker import Broker

    with Broker(log_dir, config=config) as broker:
        yield broker


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
