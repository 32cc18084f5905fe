"""The ``csv`` stream renderer: one CSV row per item, quoted by :mod:`csv`.

Items are mappings (``dict``, SQLAlchemy ``RowMapping``), SQLAlchemy
``Row`` objects, or sequences of cells (``list``, ``tuple``).

- Header: the ``columns`` option, else the first item's keys (a mapping's
  keys, a ``Row``'s column names); sequences without ``columns`` have no
  header. ``header=False`` leaves the header row out.
- With ``columns``, mappings and rows are projected on them (other keys are
  left out); without, a later mapping with a key the header lacks is an
  error. A missing key is an empty cell. A sequence whose length differs
  from the header's (or, without a header, the first row's) is an error: a
  ragged file is never written silently.
- Cells are written by :mod:`csv` (``None`` is empty, other values ``str()``).
- ``dialect`` (a name such as ``'excel-tab'`` or a :class:`csv.Dialect`) and
  the :mod:`csv` format parameters (``delimiter``, ``quotechar``,
  ``escapechar``, ``doublequote``, ``skipinitialspace``, ``lineterminator``,
  ``quoting``) are options; ``bom=True`` starts the file with a UTF-8 byte
  order mark (for Excel).
- The formula-injection guard (:mod:`tgstream.renderers.csvsafe`) applies to every row
  unless ``tgstream.csv.formula_guard = false`` or ``formula_guard=False``.
- ``text/csv; charset=utf-8``; name the download with the view's
  ``stream_filename='users.csv'`` option (``filename=`` with ``expose``), or
  per request with
  ``request.response.content_disposition = tgstream.content_disposition(name)``.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any, Callable, Sequence

from .._compat import NOT_A_ROW, row_result
from ..items import ResultRows, TupleRows
from ..query import TextRows
from ..settings import get_settings
from . import BaseEncoder, StreamRenderer
from .csvsafe import (
    BLANK_DELIMITERS,
    SEPARATORS,
    char_finder,
    guard_blank_row_start,
    guard_row,
    guard_rows,
    plain_column,
    rows_needing_quotes,
    unquoted_separators,
    unsafe_dialect,
)
from .encoders import Encoder

try:
    from sqlalchemy.engine import Row
except ImportError:  # pragma: no cover
    Row = None  # type: ignore[assignment,misc]

FORMAT_PARAMETERS = frozenset(
    {
        'delimiter',
        'quotechar',
        'escapechar',
        'doublequote',
        'skipinitialspace',
        'lineterminator',
        'quoting',
    }
)

BOM = '\ufeff'.encode('utf-8')


def _describe(item: Any) -> str:
    cls = type(item)
    return '%s.%s' % (cls.__module__, cls.__qualname__)


#: stream_query's batches of tuples (tgstream.items.TupleRows, TextRows)
_TUPLE_ROWS = (TupleRows, TextRows)

#: quoting modes under which the csv module writes str(value) as it writes
#: the value (not QUOTE_NONNUMERIC, nor Python 3.12's QUOTE_STRINGS)
_TEXT_AS_VALUE_QUOTING = frozenset(
    getattr(csv, name) for name in ('QUOTE_MINIMAL', 'QUOTE_ALL', 'QUOTE_NONE', 'QUOTE_NOTNULL')
    if hasattr(csv, name))

#: batches written by the csv module, without the verbatim check, after one
#: that failed it
_VERBATIM_BACKOFF = 15


def _verbatim_special(dialect: Any) -> str | None:
    """The characters a cell must not contain to be written as it is by a
    writer in ``dialect``: its delimiter, quote and escape characters, its
    line terminator's, the separators and line breaks the formula guard and
    the quoting of unsafe rows look for, NUL. ``None``: the dialect may
    quote more than those cells (``quoting`` other than ``QUOTE_MINIMAL``;
    ``skipinitialspace``, with which newer Pythons quote more)."""
    if dialect.quoting != csv.QUOTE_MINIMAL or dialect.skipinitialspace:
        return None
    special = set(SEPARATORS) | set(dialect.lineterminator) | {'\0', dialect.delimiter}
    special.update(c for c in (dialect.quotechar, dialect.escapechar) if c)
    return ''.join(sorted(special))


def verbatim_text(rows: list, special: str, delimiter: str,
                  lineterminator: str, known: frozenset = frozenset()) -> str | None:
    """What the :mod:`csv` writer writes for ``rows`` when a check at C speed,
    column by column, proves it would write every cell as it is -- and the
    formula guard and the quoting of unsafe rows would change nothing
    (:func:`~tgstream.renderers.csvsafe.plain_column`): the cells joined by
    the delimiter, each line ended by the line terminator. ``None`` when
    the check fails (the csv module writes them).

    ``known``: indexes of :class:`~tgstream.query.TextRows` columns
    (``TextRows.plain``), whose characters are known not to be ``special``
    (the caller checked ``TextRows.CHARACTERS`` once): not searched.
    """
    if len(set(map(len, rows))) != 1 or len(rows[0]) < 2:
        return None  # ragged rows, or one-cell rows (csv quotes an empty one)
    search = char_finder(frozenset(special))
    columns: list | None = None  # the columns rewritten as their text
    for index, column in enumerate(zip(*rows)):
        text = plain_column(column, search, index == 0, index in known)
        if text is None:
            return None
        if text is not column:
            columns = columns or list(zip(*rows))
            columns[index] = text
    lines = rows if columns is None else zip(*columns)
    return lineterminator.join(map(delimiter.join, lines)) + lineterminator


class CSVEncoder(BaseEncoder):
    """Encode items as CSV rows (see the module docstring)."""

    flush_each = False
    #: batches of rows as tuples (tgstream.items.TupleRows); of text
    #: (tgstream.query.TextRows) only where that writes the same file (set
    #: per dialect in __init__)
    takes_tuple_rows = True
    takes_text_rows = False

    def __init__(
        self,
        *,
        columns: Sequence[str] | None = None,
        header: bool = True,
        dialect: Any = 'excel',
        fmtparams: dict | None = None,
        guard: Callable[[list], list] | None = guard_row,
        bom: bool = False,
    ):
        # csv.writer writes each line into a StringIO (a C call per line)
        self._out = io.StringIO()
        self._writer = csv.writer(self._out, dialect, **(fmtparams or {}))
        # With the guard on, a row holding a line break or a separator some
        # reader splits on is written fully quoted (renderers.csvsafe).
        self._quoted_writer = (
            csv.writer(self._out, dialect, **{**(fmtparams or {}), 'quoting': csv.QUOTE_ALL})
            if guard is not None and self._writer.dialect.quoting == csv.QUOTE_MINIMAL
            else None
        )
        self._separators = unquoted_separators(self._writer.dialect)
        dialect = self._writer.dialect
        # The text of an integer or a date is written as the value itself is,
        # unless the quoting mode tells numbers from text (QUOTE_NONNUMERIC
        # quotes the text '1', not the number 1).
        self.takes_text_rows = dialect.quoting in _TEXT_AS_VALUE_QUOTING
        # a batch whose cells need nothing is joined (verbatim_text); not
        # under a guard of the app's own, whose rules are unknown
        special = _verbatim_special(dialect) if guard is None or guard is guard_row else None
        # a delimiter readers strip as white space: the line may start at a
        # later cell (csvsafe.guard_blank_row_start), which verbatim batches
        # do not check
        self._blank_start = guard is not None and dialect.delimiter in BLANK_DELIMITERS
        if self._blank_start:
            special = None
        self._verbatim = (special, dialect.delimiter, dialect.lineterminator)
        # the text of TextRows' integers and dates holds none of the
        # characters a cell must not hold: decided once, for every batch
        self._verbatim_text_rows = special is not None and TextRows.CHARACTERS.isdisjoint(special)
        self._verbatim_wait = 0  # batches to write without trying it (see encode_batch)
        self.columns = list(columns) if columns is not None else None
        self.header = header
        self.guard = guard
        self.bom = bom
        self.keys: list | None = self.columns
        self._keyset: frozenset | None = None
        self._width: int | None = len(self.columns) if self.columns else None
        self._row_parent: Any = None
        self._row_picker: Callable[[Any], Any] | None = None
        self.started = False

    # -- items to cells -----------------------------------------------------

    def _start(self, keys: list | None) -> None:
        self.started = True
        if keys is not None:
            self.keys = keys
            self._width = len(keys)
            if self.header:
                self._writerow(list(keys))

    def _writerow(self, cells: list) -> None:
        guard = self.guard
        if guard is None:
            self._writer.writerow(cells)
            return
        self._writerows([guard(cells)])

    def _writerows(self, rows: list, plain: frozenset = frozenset()) -> None:
        # rows already guarded
        if self._blank_start:
            rows = [guard_blank_row_start(row) for row in rows]
        quoted = self._quoted_writer
        flags = (rows_needing_quotes(rows, self._separators, plain)
                 if quoted is not None else None)
        if flags is None:
            self._writer.writerows(rows)
            return
        writer = self._writer
        for row, flag in zip(rows, flags):
            (quoted if flag and quoted is not None else writer).writerow(row)

    def _cells(self, item: Any) -> list:
        if isinstance(item, Mapping):
            return self._mapping_cells(item)
        if Row is not None and isinstance(item, Row):
            return self._row_cells(item)
        if isinstance(item, (str, bytes, bytearray)) or not hasattr(item, '__iter__'):
            raise TypeError(
                'csv items must be mappings (dict), SQLAlchemy Rows or '
                'sequences of cells (list, tuple), not %s' % _describe(item)
            )
        cells = list(item)
        if not self.started:
            self._start(self.columns)
        if self._width is None:  # no header: the first row sets the width
            self._width = len(cells)
        return cells

    def _check_widths(self, rows: list) -> None:
        # After the csv module wrote the rows (so a cell's own conversion
        # error comes first): a ragged row is an error, never a silent file.
        width = self._width
        assert width is not None  # set by the header or the first row
        if set(map(len, rows)) == {width}:  # the usual case, at C speed
            return
        for row in rows:
            if len(row) != width:
                raise ValueError('csv row has %d cells, %s has %d' % (
                    len(row), 'the first row' if self.keys is None else 'the header', width))

    def _mapping_cells(self, item: Mapping) -> list:
        if not self.started:
            self._start(self.columns if self.columns is not None else list(item.keys()))
        keys = self._named_columns(item)
        keyset = self._keyset
        if keyset is None:
            keyset = self._keyset = frozenset(keys)
        if item.keys() == keyset:
            return [item[key] for key in keys]
        if self.columns is None:
            extra = [key for key in item.keys() if key not in keyset]
            if extra:
                raise ValueError(
                    'csv item has keys not in the header %r: %r (the header '
                    'comes from the first item; set the columns option to '
                    'choose the columns)' % (keys, extra)
                )
        return [item.get(key, '') for key in keys]

    def _named_columns(self, item: Any) -> list:
        if self.keys is None:
            raise TypeError(
                'csv item %s has named columns but the stream has no header '
                '(its first item was a sequence); set the columns option'
                % _describe(item)
            )
        return self.keys

    def _row_cells(self, row) -> list:
        try:
            parent = row_result(row)  # the result's metadata: one picker per result
        except NOT_A_ROW:  # pragma: no cover - a Row subclass of another kind
            parent = None
        if self._row_picker is None or parent is None or parent is not self._row_parent:
            self._row_picker = self._picker(row)
            self._row_parent = parent
        return self._row_picker(row)

    def _picker(self, row) -> Callable[[Any], list]:
        return self._fields_picker(list(row._fields), row)

    def _fields_picker(self, fields: list, row: Any) -> Callable[[Any], list]:
        # the cells of rows with these column names, in the header's order
        if not self.started:
            self._start(self.columns if self.columns is not None else fields)
        keys = self._named_columns(row)
        if keys == fields:
            return list
        missing = [key for key in keys if key not in fields]
        if missing:
            raise ValueError('csv row has no column(s) %r' % (missing,))
        if self.columns is None and len(fields) != len(keys):
            raise ValueError(
                'csv row has columns %r, the header has %r' % (fields, keys)
            )
        indexes = [fields.index(key) for key in keys]
        return lambda row: [row[index] for index in indexes]

    # -- the Encoder protocol -------------------------------------------------

    def _flush(self) -> bytes:
        out = self._out
        data = out.getvalue().encode('utf-8')
        out.seek(0)
        out.truncate()
        if self.bom:
            self.bom = False
            data = BOM + data
        return data

    def encode(self, item: Any) -> bytes:
        cells = self._cells(item)
        self._writerow(cells)
        self._check_widths([cells])
        return self._flush()

    def encode_batch(self, items: list) -> bytes:
        """The bytes of :meth:`encode` for each item, joined; the guard is
        applied column by column (:func:`~tgstream.renderers.csvsafe.guard_rows`).
        On error the encoder is left as it was (the stream then encodes the
        items one by one to find the failing one)."""
        if not items:
            return b''
        state = self._state()
        plain: frozenset = frozenset()
        rows: list
        try:
            if items.__class__ in _TUPLE_ROWS:  # tuples of one result (stream_query)
                fields_pick = self._fields_picker(items.keys, items)
                if fields_pick is list:
                    rows = items
                    if items.__class__ is TextRows:
                        plain = items.plain
                else:
                    rows = [fields_pick(row) for row in items]
            elif items.__class__ is ResultRows:  # one result: one picker for all
                self._row_cells(items[0])
                pick = self._row_picker
                assert pick is not None  # set by _row_cells
                # Rows are sequences the csv module can write as they are
                rows = items if pick is list else [pick(row) for row in items]
            else:
                rows = [self._cells(item) for item in items]
            guard = self.guard
            special, delimiter, lineterminator = self._verbatim
            text = None
            if special is not None:
                if self._verbatim_wait:
                    self._verbatim_wait -= 1
                else:
                    text = verbatim_text(rows, special, delimiter, lineterminator,
                                         plain if self._verbatim_text_rows else frozenset())
                    if text is None:
                        # the batches of one stream are alike: after a batch
                        # that needs the csv module, don't pay the check (a
                        # tenth of that batch's cost) on every one
                        self._verbatim_wait = _VERBATIM_BACKOFF
            if text is not None:  # what the writer would write, faster
                self._out.write(text)
            elif guard is None:
                self._writer.writerows(rows)
            else:
                self._writerows(
                    guard_rows(rows, plain) if guard is guard_row
                    else [guard(row) for row in rows], plain)
            self._check_widths(rows)
        except BaseException:
            self._restore(state)
            raise
        return self._flush()

    def _state(self) -> tuple:
        return (self._out.tell(), self.started, self.keys, self._keyset, self._width,
                self._row_parent, self._row_picker)

    def _restore(self, state: tuple) -> None:
        (position, self.started, self.keys, self._keyset, self._width,
         self._row_parent, self._row_picker) = state
        self._out.seek(position)
        self._out.truncate()

    def end(self) -> bytes:
        if not self.started:
            self._start(self.columns)
        return self._flush()


class CSVStreamRenderer(StreamRenderer):
    """``renderer='csv'``: ``text/csv; charset=utf-8`` (options: see
    :mod:`tgstream.renderers.csv`)."""

    content_type = 'text/csv; charset=utf-8'
    options = frozenset(
        {'columns', 'header', 'dialect', 'formula_guard', 'bom'} | FORMAT_PARAMETERS
    )

    def __init__(self, info):
        super().__init__(info)
        options = info.options
        columns = options.get('columns')
        if columns is not None:
            if (
                isinstance(columns, (str, bytes))
                or not isinstance(columns, (list, tuple))
                or not columns
                or not all(isinstance(c, str) for c in columns)
            ):
                raise self.option_error(
                    'columns', '%r is not a non-empty list of column names' % (columns,)
                )
            columns = list(columns)
        self.columns = columns
        self.header = self.bool_option(options, 'header', True)
        self.bom = self.bool_option(options, 'bom', False)
        # None: the tgstream.csv.formula_guard setting decides
        self.formula_guard = (
            self.bool_option(options, 'formula_guard', True)
            if 'formula_guard' in options else None
        )
        self.dialect = options.get('dialect', 'excel')
        self.fmtparams = {k: v for k, v in options.items() if k in FORMAT_PARAMETERS}
        try:
            csv.writer(io.StringIO(), self.dialect, **self.fmtparams)
        except (TypeError, ValueError, csv.Error) as exc:
            raise self.option_error(
                'dialect/format',
                'dialect=%r %r is not a valid csv dialect: %s'
                % (self.dialect, self.fmtparams, exc),
            ) from None
        guard = self.formula_guard
        if guard is None:
            guard = get_settings(info.registry).csv_formula_guard
        problem = unsafe_dialect(self.dialect, **self.fmtparams) if guard else None
        if problem is not None:
            raise self.option_error(
                'dialect/format',
                'the formula guard cannot keep every cell safe with %s; change '
                'the option, or turn the guard off (formula_guard=False) for '
                'files only programs read' % problem,
            )

    def __call__(self, value: Any, request) -> tuple:
        copy = getattr(value, 'tgstream_copy', None)  # tgstream.stream_copy()
        if copy is not None:
            return copy(self, request, super().__call__)
        return super().__call__(value, request)

    def encoder(self, request) -> Encoder:
        guard = self.formula_guard
        if guard is None:
            guard = get_settings(request.registry).csv_formula_guard
        return CSVEncoder(
            columns=self.columns,
            header=self.header,
            dialect=self.dialect,
            fmtparams=self.fmtparams,
            guard=guard_row if guard else None,
            bom=self.bom,
        )


def includeme(config) -> None:
    config.add_stream_renderer('csv', CSVStreamRenderer)
