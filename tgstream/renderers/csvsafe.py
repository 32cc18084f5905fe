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
  ``float``, ``Decimal``, ``Fraction``, ``bool``) and ``None`` are not
  changed, so ``-5`` stays ``-5``;
- except in the first cell of a row: there a ``-`` number or numeric text
  is escaped (``'-5``) unless every other cell is empty or made of
  :data:`NUMERIC_CHARS` -- a reader splitting on another separator reads the
  line as one cell, and ``-5,5+HYPERLINK(...)`` is a formula
  (:func:`guard_row`);
- a ``str`` subclass (a ``(str, Enum)`` member) is judged by its
  characters -- what the ``csv`` module writes, whatever its ``__str__``
  says -- and those characters are what is written;
- any other object is judged by ``str(value)`` (what the ``csv`` module
  writes) and returned unchanged when that is safe;
- inside a cell, a segment after a separator or line break
  (:data:`SEPARATORS`: ``, ; tab |`` and :data:`LINE_BREAKS`, every line
  break of ``str.splitlines()``) that starts a formula gets the same ``'``
  (``x;'=cmd``), a number too (``x;'-5``): a reader that splits there sees
  an escaped cell.

The guard's property, tested with hypothesis
(tests/renderers/test_guard_property.py): for every dialect
:func:`unsafe_dialect` accepts, no cell read back by the writer's dialect,
a ``;`` reader, a ``,`` reader, or those after ``str.splitlines()``, begins
with ``= + - @`` (after tabs and CRs) unless escaped or made of numbers.

Cells are also safe for readers other than the file's own dialect:

- :func:`row_needs_quotes`: a row with a text cell containing a CR, an LF,
  or a separator some reader splits on (``, ; tab |`` -- ``;`` is Excel's
  list separator in much of Europe), or starting with white space (a reader
  with ``skipinitialspace`` strips it), is written with every cell quoted,
  so no reader sees a new row or cell start inside it;
- :func:`unsafe_dialect`: format options under which a cell cannot be kept
  whole for every reader (``quoting=QUOTE_NONE``, ``doublequote=False``, a
  quote character other than ``"``, an unusual line terminator) are refused
  while the guard is on.

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

import csv
import datetime
import functools
import operator
import re
import uuid
from decimal import Decimal
from numbers import Number
from typing import Any, Callable, Iterable

#: First characters that make a spreadsheet evaluate a cell.
DANGEROUS_PREFIXES = frozenset('=+-@|%\t\r\0')

#: defusedcsv's "this is a number, not a formula" pattern, matched against a
#: whole cell's text: such a cell keeps its leading ``-`` (see
#: :func:`guard_cell`; not inside a cell, and in a row's first cell only
#: under :data:`NUMERIC_CHARS`).
NUMERIC_PATTERN = r'-?[0-9,.]+'
# (\Z, not $: a trailing newline does not make a cell a number)
_NUMERIC = re.compile(NUMERIC_PATTERN + r'\Z')
#: The characters every other cell of a row must be made of (or be empty)
#: for the row's first cell to keep the numeric exemption: a reader that
#: splits on another separator reads the whole line as one cell.
NUMERIC_CHARS = frozenset('-0123456789,.')
#: Delimiters a reader strips as white space at the start of a cell: with
#: them, a line's empty leading cells vanish (see guard_blank_row_start).
BLANK_DELIMITERS = frozenset('\t')

# Exact types guard_row passes through without a call (the common cells):
# numbers and None, and types whose str() always starts with a digit or a
# hex digit (dates and times: the year; UUIDs), so guard_cell returns them
# unchanged.
_PLAIN_TYPES = frozenset((
    int, float, bool, type(None), Decimal,
    datetime.datetime, datetime.date, datetime.time, uuid.UUID,
))
_first_char = operator.itemgetter(slice(0, 1))


#: Every character ``str.splitlines()`` ends a line at: a reader that splits
#: lines that way starts a row after each one.
LINE_BREAKS = frozenset('\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029')

#: Characters that make a row be written fully quoted (see
#: :func:`row_needs_quotes`) and after which a formula inside a cell is
#: escaped: the separators readers split cells on, and :data:`LINE_BREAKS`.
SEPARATORS = frozenset(',;\t|') | LINE_BREAKS

# Inside a cell: a separator or line break, optional spaces and quotes (a
# foreign reader may take them for quoting), then a formula
# start and the rest of that segment (up to the next separator).
_SEPARATOR_CLASS = ''.join(map(re.escape, sorted(SEPARATORS)))
_INNER_FORMULA = re.compile(r'(?<=[%s])([ "]*)([=+\-@][^%s]*)' % (
    _SEPARATOR_CLASS, _SEPARATOR_CLASS))


def cell_text(value: Any) -> str:
    """Exactly the text :mod:`csv` writes for ``value`` (not ``None``)."""
    if isinstance(value, str):
        return str.__str__(value)  # the characters, whatever __str__ says
    if isinstance(value, float):
        return repr(value)
    return str(value)


def guard_cell(value: Any) -> Any:
    """``value``, or its text neutralised if a spreadsheet would run it.

    Safe values come back as they are, except a ``str`` subclass, which
    comes back as its characters (what is judged is what is written).

    Example::

        >>> guard_cell('=HYPERLINK("http://x")'), guard_cell('-5'), guard_cell(-5)
        ('\\'=HYPERLINK("http://x")', '-5', -5)
    """
    cls = value.__class__
    if cls in _PLAIN_TYPES:
        return value
    if cls is str:
        text = original = value
    elif isinstance(value, str):
        # csv writes a str subclass's characters: judge and write those
        text = original = str.__str__(value)
    elif isinstance(value, Number):
        return value
    else:
        text = cell_text(value)
        original = value
    if not SEPARATORS.isdisjoint(text):
        escaped = _INNER_FORMULA.sub(_escape_segment, text)
        if escaped != text:
            text = original = escaped
    if not text or text[0] not in DANGEROUS_PREFIXES or _NUMERIC.match(text):
        return original
    return "'" + text.replace('|', '\\|')


def _escape_segment(match: 're.Match[str]') -> str:
    # What a reader splitting on that separator would see as the start of a
    # cell of its own gets a ', numbers too: that reader's cell goes on past
    # the segment (to its next separator, maybe in the next cells: ";-5" then
    # ",5+HYPERLINK(...)"), so the segment alone proves nothing.
    return match.group(1) + "'" + match.group(2)


def _guard_row_start(row: list, start: int = 0) -> list:
    # ``row`` guarded cell by cell. Its first cell may start with "-" (a
    # number, or numeric text): a reader splitting on another separator
    # (";" for a "," file...) reads the line as one cell starting there, so
    # the exemption holds only if the rest cannot make that a formula.
    # ``start``: the index of the cell the line starts with for such a reader.
    first = row[start]
    if first is None:
        return row
    text = cell_text(first)
    if not text.startswith('-'):
        return row
    for value in row[start + 1:]:
        if value is not None and not NUMERIC_CHARS.issuperset(cell_text(value)):
            row = list(row)
            row[start] = "'" + text
            return row
    return row


def guard_blank_row_start(row: list) -> list:
    """A guarded ``row`` written with a delimiter readers strip as white
    space (a tab): its empty leading cells vanish for a reader that splits
    on another separator, so :func:`guard_row`'s first-cell rule applies to
    its first non-empty cell (``\t-1\t5+HYPERLINK(...)``)."""
    for index, value in enumerate(row):
        if value is not None and value != '':
            return _guard_row_start(row, index) if index else row
    return row


def _starts_negative(column: tuple) -> bool:
    # Does a cell of this (first) column start with "-"? At C speed for the
    # usual columns.
    kinds = set(map(type, column))
    if kinds == _STR:
        return '-' in set(map(_first_char, column))
    if kinds <= _INT_NONE:
        return min(filter(None, column), default=0) < 0
    return any(value is not None and cell_text(value)[:1] == '-' for value in column)


_INT_NONE = {int, type(None)}


def guard_row(row: Iterable[Any]) -> list[Any]:
    """A new list: ``row`` with every cell passed through :func:`guard_cell`,
    and its first cell escaped if it starts with ``-`` while another cell
    is not made of :data:`NUMERIC_CHARS` (``-5,5+HYPERLINK(...)`` is one
    formula cell to a reader splitting on ``;``).

    Called by the ``csv`` renderer for each row (header included) when the
    formula guard is on.
    """
    prefixes = DANGEROUS_PREFIXES
    separators = SEPARATORS
    plain = _PLAIN_TYPES
    # Inlined fast path (about 3x faster than calling guard_cell per cell):
    # most cells are numbers, None or harmless text.
    cells = [
        value
        if value.__class__ in plain
        or (
            value.__class__ is str
            and (not value or (value[0] not in prefixes and separators.isdisjoint(value)))
        )
        else guard_cell(value)
        for value in row
    ]
    return _guard_row_start(cells) if cells else cells


def _column_is_safe(column: tuple) -> bool:
    # True when guard_cell would return every cell of ``column`` unchanged,
    # checked at C speed for the common columns (numbers, dates, text that
    # starts with no trigger character); False means "check each cell".
    types = set(map(type, column))
    if types <= _PLAIN_TYPES:
        return True
    if types == {str}:
        # no trigger first, and no separator inside (a formula could follow)
        return DANGEROUS_PREFIXES.isdisjoint(map(_first_char, column)) and (
            char_finder(SEPARATORS)(''.join(column)) is None)
    return False


def plain_column(column: tuple, search: Callable[[str], Any], first: bool,
                 known: bool = False) -> Any:
    """The one "plain cell" predicate of the csv fast paths: the texts the
    :mod:`csv` module writes for the cells of ``column`` (``column`` itself
    when they are its own ``str`` cells), if every one is written as it is
    and the guard would change none of them; else ``None``.

    A cell is plain when it is ``None`` (``''``) or of a :data:`_PLAIN_TYPES`
    or exactly ``str``, its text (:func:`cell_text`) holds none of the
    characters ``search`` finds (the caller's dialect's and the guard's
    separators), and, for a ``str`` cell or a cell of the first column
    (where a reader splitting on another separator starts a cell: see
    :func:`guard_row`), its first character neither starts a formula nor is
    white space.

    ``known``: the caller knows every cell is ``None`` or text made of
    characters ``search`` does not find (the text of integers and dates of
    :class:`~tgstream.query.TextRows`, whose characters are
    ``TextRows.CHARACTERS``): not searched.
    """
    text: Any
    if known:
        text = ['' if value is None else value for value in column] if None in column \
            else column
        if first and '-' in set(map(_first_char, text)):
            return None  # a negative integer starts the row (guard_row)
        return text
    kinds = set(map(type, column))
    starts: set | None
    if kinds == _STR:
        text = column
        starts = set(map(_first_char, column))
    elif kinds <= _PLAIN_TEXT_TYPES:
        text = ['' if value is None else value if value.__class__ is str else cell_text(value)
                for value in column]
        starts = set(map(_first_char, text)) if first or str in kinds else None
    else:
        return None
    if search(''.join(text)) is not None:
        return None
    if starts is not None and (
        not starts.isdisjoint(DANGEROUS_PREFIXES) or any(map(str.isspace, starts))
    ):
        return None
    return text


_STR = {str}
_PLAIN_TEXT_TYPES = _PLAIN_TYPES | _STR


def first_chars(column: Any) -> set:
    """The first characters of the strings of ``column`` ('' for an empty one)."""
    return set(map(_first_char, column))


@functools.lru_cache(maxsize=32)
def char_finder(characters: frozenset) -> Callable[[str], Any]:
    # The search of a regular expression's character class scans a long
    # string many times faster than frozenset.isdisjoint(string) (which
    # makes and hashes a 1-character string per character).
    if not characters:
        return lambda text: None
    return re.compile('[%s]' % ''.join(map(re.escape, sorted(characters)))).search


def guard_rows(rows: list, plain: frozenset = frozenset()) -> list:
    """``rows`` with every cell passed through :func:`guard_cell`.

    The same cells as :func:`guard_row` on each row, decided column by
    column: a batch whose columns are all harmless (the usual case) is
    returned as it is, without a copy; otherwise only the columns with a
    cell to neutralise are rebuilt. Rows of unequal lengths are guarded row
    by row. ``plain``: indexes of columns the caller knows hold only cells
    that start with a digit (or ``None``): not checked.
    """
    if not rows:
        return rows
    if len(set(map(len, rows))) != 1 or not rows[0]:
        return [guard_row(row) for row in rows]
    columns: list[Any] = list(zip(*rows))
    unsafe = [index for index, column in enumerate(columns)
              if index not in plain and not _column_is_safe(column)]
    if unsafe:
        for index in unsafe:
            columns[index] = [guard_cell(value) for value in columns[index]]
        rows = list(zip(*columns))
    if _starts_negative(columns[0]):
        rows = [_guard_row_start(row) for row in rows]
    return rows


def row_needs_quotes(row: list[Any], separators: frozenset = SEPARATORS) -> bool:
    """Must this (guarded) row be written with every cell quoted?

    True when a text cell contains one of ``separators`` -- line breaks and
    the separators readers split on (:data:`SEPARATORS`), less those the
    writer quotes by itself (see :func:`unquoted_separators`) -- or starts
    with white space.
    """
    for value in row:
        if value.__class__ is str and value and (
            not separators.isdisjoint(value) or value[0].isspace()
        ):
            return True
    return False


def rows_needing_quotes(rows: list, separators: frozenset = SEPARATORS,
                        plain: frozenset = frozenset()) -> list | None:
    """:func:`row_needs_quotes` for each row, or None when no row needs it.

    Decided column by column at C speed when it can (the usual batch has no
    such cell); otherwise row by row. ``plain``: as for :func:`guard_rows`.
    """
    if rows and len(set(map(len, rows))) == 1:
        for index, column in enumerate(zip(*rows)):
            if index in plain:
                continue
            types = set(map(type, column))
            if str not in types:
                continue
            if types == {str} and char_finder(separators)(''.join(column)) is None and not any(
                map(str.isspace, map(_first_char, column))
            ):
                continue
            break
        else:
            return None
    flags = [row_needs_quotes(row, separators) for row in rows]
    return flags if any(flags) else None


def unquoted_separators(dialect: Any) -> frozenset:
    """The :data:`SEPARATORS` a writer in ``dialect`` does not quote by itself
    (it quotes cells holding its delimiter or a line terminator character)."""
    return SEPARATORS - set(dialect.delimiter + dialect.lineterminator)


#: Line terminators readers agree on.
SAFE_LINETERMINATORS = ('\r\n', '\n', '\r')


def unsafe_dialect(dialect: Any = 'excel', **fmtparams: Any) -> str | None:
    """Why the guard cannot keep cells whole under these options, or None.

    Checked when a view is configured (the ``csv`` renderer raises a
    ``ConfigurationError`` naming the view).
    """
    d = csv.writer(_NullFile(), dialect, **fmtparams).dialect
    if d.quoting == csv.QUOTE_NONE:
        return ('quoting=QUOTE_NONE cannot quote a cell that contains a '
                'separator or a line break')
    if not d.doublequote:
        return ('doublequote=False escapes quotes in a way other readers '
                'split on')
    if d.quotechar != '"':
        return 'quotechar=%r: other readers only know the quote character \'"\'' % (
            d.quotechar,)
    if d.lineterminator not in SAFE_LINETERMINATORS:
        return 'lineterminator=%r: use \'\\r\\n\', \'\\n\' or \'\\r\'' % (
            d.lineterminator,)
    if d.delimiter in '=+-@%\'' or d.delimiter.isalnum():
        return 'delimiter=%r can start a formula or hide one' % (d.delimiter,)
    if d.delimiter == d.quotechar or d.delimiter in LINE_BREAKS or d.delimiter == '\0':
        return ('delimiter=%r is the quote character or a line break: readers '
                'cannot tell cells apart' % (d.delimiter,))
    if d.escapechar is not None and (d.escapechar in DANGEROUS_PREFIXES or
                                     d.escapechar in SEPARATORS or
                                     d.escapechar in (d.delimiter, d.quotechar)):
        return ('escapechar=%r is a formula start, a separator, a line break, the '
                'delimiter or the quote character' % (d.escapechar,))
    return None


class _NullFile:
    def write(self, data: str) -> None:  # pragma: no cover - never written
        pass
