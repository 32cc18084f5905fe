"""CSV formula-injection guard (placeholder; see the security issue)."""
from __future__ import annotations

from typing import Any


def guard_row(row: list[Any]) -> list[Any]:
    """Return ``row`` with spreadsheet-formula cells neutralised."""
    return row
