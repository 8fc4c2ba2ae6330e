"""docs/configuration.md is generated from the config table; CI fails when it is stale."""

from pathlib import Path

from odradek.config import describe_doc_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_current() -> None:
    assert DOCS.read_text() == describe_doc_markdown(), "run `make docs` and commit docs/configuration.md"
