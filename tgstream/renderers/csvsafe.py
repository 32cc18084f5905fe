"""CSV formula-injection guard (OWASP "CSV Injection", CWE-1236).

A spreadsheet (Excel, LibreOffice Calc, Google Sheets) opening a CSV file
runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula
(``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``); a leading tab or carriage
return can hide such a cell. The ``csv`` stream renderer passes every row
through :func:`guard_row` unless the guard is off
(``tgstream.csv.formula_guard = false``, or ``stream_options={
'formula_guard': False}`` on one view).

The rule is defusedcsv's (3.0), plus the characters OWASP and ASVS 5.0
(1.2.10) add:

- a string cell whose first character is one of ``= + - @ | %`` (defusedcsv)
  or tab, carriage return, NUL (OWASP, ASVS) gets a ``'`` prepended and every
  ``|`` escaped as ``\\|`` (defusedcsv: the pipe is what DDE payloads need);
  spreadsheets show the cell as text;
- except a numeric-looking string: an optional ``-`` followed only by
  digits, ``,`` and ``.`` (``'-5'``, ``'-1,234.50'``) is left as it is, as
  defusedcsv does -- a spreadsheet reads it as a number, not a formula, so
  negative amounts already formatted as text survive; ``'+5'`` or ``'-1e5'``
  are escaped;
- numbers (anything registered as :class:`numbers.Number`: ``int``,
  ``float``, ``Decimal``, ``Fraction``, ``bool``) and ``None`` are never
  changed, so ``-5`` stays ``-5``;
- any other object is judged by ``str(value)`` (what the ``csv`` module
  writes) and returned unchanged when that is safe.

Why not call defusedcsv itself: its API is a replacement ``csv.writer``
and its per-cell function is private (``defusedcsv.csv._escape``); it does
not treat tab and carriage return, which the guard must; and tgstream's
runtime dependency is Pyramid only while the guard is on by default. The
test suite checks cell-for-cell agreement with defusedcsv's public writer
(tests/renderers/test_csvsafe.py) wherever defusedcsv has a rule.

Caveat: the prefix changes the data (``'=1+1`` is what a program reading
the file sees). Turn the guard off for files read by programs, or for
trusted data.
"""
from __future__ import annotations

import datetime
import operator
import re
import uuid
from decimal import Decimal
from numbers import Number
from typing import Any, Iterable

#: First characters that make a spreadsheet evaluate a cell.
DANGEROUS_PREFIXES = frozenset('=+-@|%\t\r\0')

# defusedcsv's "this is a number, not a formula" pattern (\Z, not $: a
# trailing newline does not make a cell a number).
_NUMERIC = re.compile(r'-?[0-9,.]+\Z')

# Exact types guard_row passes through without a call (the common cells):
# numbers and None, and types whose str() always starts with a digit or a
# hex digit (dates and times: the year; UUIDs), so guard_cell returns them
# unchanged.
_PLAIN_TYPES = frozenset((
    int, float, bool, type(None), Decimal,
    datetime.datetime, datetime.date, datetime.time, uuid.UUID,
))
_first_char = operator.itemgetter(slice(0, 1))


def guard_cell(value: Any) -> Any:
    """``value``, or its text neutralised if a spreadsheet would run it.

    Example::

        >>> guard_cell('=HYPERLINK("http://x")'), guard_cell('-5'), guard_cell(-5)
        ('\\'=HYPERLINK("http://x")', '-5', -5)
    """
    if value.__class__ is str:
        text = value
    elif value is None or isinstance(value, Number):
        return value
    else:
        text = str(value)
    if not text or text[0] not in DANGEROUS_PREFIXES or _NUMERIC.match(text):
        return value
    return "'" + text.replace('|', '\\|')


def guard_row(row: Iterable[Any]) -> list[Any]:
    """A new list: ``row`` with every cell passed through :func:`guard_cell`.

    Called by the ``csv`` renderer for each row (header included) when the
    formula guard is on.
    """
    prefixes = DANGEROUS_PREFIXES
    plain = _PLAIN_TYPES
    # Inlined fast path (about 3x faster than calling guard_cell per cell):
    # most cells are numbers, None or harmless text.
    return [
        value
        if value.__class__ in plain
        or (value.__class__ is str and (not value or value[0] not in prefixes))
        else guard_cell(value)
        for value in row
    ]


def _column_is_safe(column: tuple) -> bool:
    # True when guard_cell would return every cell of ``column`` unchanged,
    # checked at C speed for the common columns (numbers, dates, text that
    # starts with no trigger character); False means "check each cell".
    types = set(map(type, column))
    if types <= _PLAIN_TYPES:
        return True
    if types == {str}:
        return DANGEROUS_PREFIXES.isdisjoint(map(_first_char, column))
    return False


def guard_rows(rows: list) -> list:
    """``rows`` with every cell passed through :func:`guard_cell`.

    The same cells as :func:`guard_row` on each row, decided column by
    column: a batch whose columns are all harmless (the usual case) is
    returned as it is, without a copy; otherwise only the columns with a
    cell to neutralise are rebuilt. Rows of unequal lengths are guarded row
    by row.
    """
    if not rows:
        return rows
    if len(set(map(len, rows))) != 1:
        return [guard_row(row) for row in rows]
    columns: list[Any] = list(zip(*rows))
    unsafe = [index for index, column in enumerate(columns) if not _column_is_safe(column)]
    if not unsafe:
        return rows
    for index in unsafe:
        columns[index] = guard_row(columns[index])
    return list(zip(*columns))
