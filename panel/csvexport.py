"""What every CSV download of the panel shares: streaming through csv.writer, and cells made
inert for spreadsheets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# A spreadsheet runs a cell that starts like a formula (or a tab or carriage return before
# one): customers' links, names and notes are quoted with an apostrophe to stay text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Echo:
    """csv.writer writes into this and gets the line back, for streaming."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value[:1] in _FORMULA_STARTS else value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in values]
