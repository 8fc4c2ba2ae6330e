"""How commands print: aligned tables for people, JSON for programs. Nothing else prints data."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["print_json", "print_table", "text"]


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(text(v) for v in value) if value else "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, file=None) -> None:
    """Columns padded to their widest cell, two spaces apart; header in capitals."""
    out = file or sys.stdout
    cells = [[text(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(widths[i]) for i, v in enumerate(values)).rstrip()
    print(line([h.upper() for h in headers]), file=out)
    for row in cells:
        print(line(row), file=out)


def print_json(value: Any, *, file=None) -> None:
    print(json.dumps(value, indent=2, default=str), file=file or sys.stdout)
