"""``stream_query``: stream a query's results in constant memory.

Rows are fetched ``batch`` at a time, with a server-side cursor where the
driver has one (PostgreSQL with psycopg or psycopg2, MySQL, Oracle...:
SQLAlchemy's ``yield_per``, which implies ``stream_results``); SQLite's
cursor already steps through the results row by row. ORM objects are
expunged from the session once their batch has been consumed, so the
identity map holds one batch at a time.
"""
from __future__ import annotations

import operator
from typing import Any, Iterator

from ._compat import (
    batch_expunge,
    prefetched_rows,
    query_result,
    result_processors,
    result_yield_per,
)
from .items import Batch, ResultRows, TupleRows


def _entity_columns(statement: Any) -> list[int]:
    # The columns that are whole ORM entities: select(User, Note) -> [0, 1];
    # select(User.id) -> [] (an attribute of User, not a User).
    descriptions = getattr(statement, 'column_descriptions', None) or ()
    return [
        index
        for index, description in enumerate(descriptions)
        if description.get('entity') is not None
        and description.get('expr') is description.get('entity')
    ]


def _expunge(session, objects) -> None:
    """Remove ``objects`` from ``session``: those it holds and that have no
    pending changes (expunging those would silently drop the changes)."""
    from sqlalchemy.orm.base import instance_state

    key = session.hash_key
    states = []
    for obj in objects:
        state = instance_state(obj)
        if state.session_id == key and not state.modified:
            states.append(state)
    # Session.expunge() costs ~6 us per object (it walks the cascades); the
    # batch form it uses itself costs a tenth of that (tgstream._compat).
    expunge_states = batch_expunge(session)
    if expunge_states is not None:
        expunge_states(states)
    else:  # pragma: no cover
        for state in states:
            session.expunge(state.obj())


class QueryStream:
    """The results of :func:`stream_query`: iterate it for the items.

    Each iteration runs the statement anew. A stream renderer given a
    ``QueryStream`` as the view's return value streams it batch by batch
    (:meth:`batches`), which is faster than item by item.
    """

    def __init__(self, session, statement, batch: int | None, scalars: bool | None,
                 expunge: bool):
        self.session = session
        self.statement = statement
        entities = _entity_columns(statement)
        self.scalars = (
            entities == [0] and len(statement.column_descriptions) == 1
            if scalars is None else scalars
        )
        self.entity_columns = entities
        self.expunge = expunge
        if batch is None:
            batch = DEFAULT_BATCH_OBJECTS if entities else DEFAULT_BATCH_ROWS
        self.batch = batch

    def batches(self, text: bool = False, tuples: bool = False) -> Iterator[Batch]:
        """The results as :class:`tgstream.Batch` lists of ``batch`` items.

        ``tuples=True`` (the ``json`` and ``ndjson`` renderers): the rows of
        a plain column select may come as :class:`~tgstream.items.TupleRows`
        read from the driver's cursor (see :func:`_tuple_partitions`).
        ``text=True`` (the ``csv`` renderer): the same, and on PostgreSQL
        with psycopg as :class:`TextRows` whose cells are the text ``str()``
        gives of the usual values (see :func:`_text_partitions`). Any other
        result as ``Row`` objects or ORM objects."""
        from sqlalchemy.orm import scoped_session

        session = self.session
        if isinstance(session, scoped_session):
            session = session()  # the thread's session (the stream's thread)
        # Rows are fetched FETCH_ROWS at a time at least (one round trip per
        # fetch of a server-side cursor), encoded ``batch`` at a time; ORM
        # objects are loaded ``batch`` at a time (each fetch makes them all).
        fetch = self.batch if self.entity_columns else max(self.batch, FETCH_ROWS)
        result = session.execute(
            self.statement, execution_options={'yield_per': fetch}
        )
        if self.scalars:
            result = result.scalars()
        orm = self.expunge and bool(self.entity_columns)
        batch = self.batch
        try:
            if (text or tuples) and not self.scalars and not self.entity_columns:
                partitions: Iterator[TupleRows] | None = (
                    _text_partitions(result, fetch) if text else None)
                if partitions is None:
                    partitions = _tuple_partitions(result, fetch)
                if partitions is not None:
                    yield from _cut(partitions, fetch, batch)
                    return
            # Rows of one result: the encoders need not check each row.
            rows = not self.scalars
            # one partition per fetch (a partition smaller than the fetch
            # size would cost a round trip each), encoded ``batch`` at a time
            for partition in result.partitions(fetch):
                for start in range(0, len(partition), batch):
                    part = partition[start:start + batch] if fetch > batch else partition
                    yield Batch(ResultRows(part) if rows else part)
                    if orm:
                        self._release(session, part)
        finally:
            result.close()

    def _release(self, session, partition: list) -> None:
        # The consumer has encoded this batch: let its objects go.
        if self.scalars:  # the first column's values
            if self.entity_columns[:1] == [0]:
                _expunge(session, partition)
        else:
            columns = self.entity_columns
            _expunge(session, [
                row[index] for row in partition for index in columns
                if row[index] is not None
            ])

    #: the optional protocol of the stream renderers (json, ndjson, csv)
    tgstream_batches = batches

    def tgstream_text_batches(self) -> Iterator[Batch]:
        """:meth:`batches` with ``text=True`` (the ``csv`` renderer's)."""
        return self.batches(text=True)

    def tgstream_tuple_batches(self) -> Iterator[Batch]:
        """:meth:`batches` with ``tuples=True`` (the json renderers')."""
        return self.batches(tuples=True)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches():
            yield from batch.items

    def __repr__(self) -> str:
        return '<tgstream.QueryStream batch=%d %s>' % (
            self.batch, 'objects' if self.scalars else 'rows'
        )


#: Default batch sizes: small enough that one batch allocates fewer than
#: the garbage collector's first threshold (700) of container objects, so a
#: long stream does not promote its rows and trigger full collections (with
#: 1 000, a 200 000-row stream took 1.5x as long); an ORM object costs ~5.
DEFAULT_BATCH_OBJECTS = 100
DEFAULT_BATCH_ROWS = 500
#: Rows (not ORM objects) are fetched at least this many at a time.
FETCH_ROWS = 1000


class TextRows(TupleRows):
    """Rows of one result as plain tuples of text (the ``csv`` renderer's
    PostgreSQL fast path).

    ``keys``: the column names. ``plain``: the indexes of the columns whose
    cells are digits-first text or ``None`` (integers, dates and timestamps
    loaded as the text ``str()`` gives of their Python values), which the
    formula guard and the quoting checks may skip.
    """

    __slots__ = ('plain',)

    #: every character the cells of the ``plain`` columns may hold: the
    #: text of integers (``-123``), dates (``2024-01-02``) and timestamps
    #: without time zone (``2024-01-02 03:04:05.678``)
    CHARACTERS = frozenset('0123456789-:. ')

    def __init__(self, rows, keys: list, plain: frozenset):
        super().__init__(rows, keys)
        self.plain = plain

    def part(self, start: int, size: int) -> 'TextRows':
        return TextRows(self[start:start + size], self.keys, self.plain)


# PostgreSQL type oids whose text form (DateStyle ISO) is what str() gives
# of psycopg's Python value: int2, int4, int8 always; date and timestamp
# (without time zone) when the text has exactly the usual length (no
# fraction of a second, no BC, no infinity, a 4-digit year) -- other values
# are loaded by psycopg's own loader, then str()'d.
_TEXT_INTEGERS = (20, 21, 23)
_TEXT_DATES = {1082: 10, 1114: 19}


def _text_partitions(result, fetch: int) -> Iterator[TextRows] | None:
    """The partitions of ``result`` as :class:`TextRows` read from the
    psycopg cursor itself (no SQLAlchemy ``Row`` per row), or ``None`` when
    that would not give the same cells: whatever :func:`_cursor_source`
    refuses, a column with a SQLAlchemy result processor (a
    ``TypeDecorator``, an ``Enum``...), another dialect or driver, a
    session whose ``DateStyle`` is not ISO."""
    source = _cursor_source(result)
    if source is None or any(source[1]):
        return None
    cursor, _ = source
    dialect = getattr(getattr(result, 'context', None), 'dialect', None)
    if (
        dialect is None or dialect.name != 'postgresql' or dialect.driver != 'psycopg'
        or not hasattr(cursor, 'adapters')
        or not cursor.connection.info.parameter_status('DateStyle').startswith('ISO')
    ):
        return None
    return _read_text(result, cursor, fetch, cursor.description)


def _cursor_source(result) -> tuple[Any, list] | None:
    """The one decision of both fast paths: ``(cursor, processors)`` when
    the rows of ``result`` may be read from its driver cursor and put
    through ``processors`` (SQLAlchemy's own, ``None`` for a column without
    one) to be exactly what the result itself would give; else ``None``.

    Refused: anything but a plain ``CursorResult`` (``scalars()``,
    ``mappings()``), a result with a filter of its own (``columns()``,
    ``unique()``), rows logged by ``echo='debug'``, a result read ahead of
    by more than the one row a ``yield_per`` result buffers at execution
    (see :func:`tgstream._compat.result_processors`)."""
    cursor = getattr(result, 'cursor', None)
    processors = result_processors(result)
    if (
        cursor is None or processors is None
        or not cursor.description or len(processors) != len(cursor.description)
        # the rows read ahead at execution time come through the result
        or prefetched_rows(result) != 1
    ):
        return None
    return cursor, processors


def _read_text(result, cursor, fetch, description) -> Iterator[TextRows]:
    from psycopg.pq import Format
    from psycopg.types.string import TextLoader

    first = result.fetchone()  # from SQLAlchemy's buffer: no fetch
    keys = list(result.keys())
    integers = [i for i, d in enumerate(description) if d.type_code in _TEXT_INTEGERS]
    dates = [(i, _TEXT_DATES[d.type_code]) for i, d in enumerate(description)
             if d.type_code in _TEXT_DATES]
    texts = frozenset(integers) | frozenset(i for i, _ in dates)
    adapters = cursor.adapters  # the cursor's own copy: the connection is unchanged
    loaders = {}
    for oid in {description[i].type_code for i in texts}:
        loaders[oid] = cursor.connection.adapters.get_loader(oid, Format.TEXT)(oid, cursor)
        adapters.register_loader(oid, TextLoader)
    first_row = tuple(
        str(value) if index in texts and value is not None else value
        for index, value in enumerate(first)
    )
    rows = TextRows([first_row], keys, texts)
    rows.extend(cursor.fetchmany(fetch - 1))
    while rows:
        for index, length in dates:
            column = [value for value in map(operator.itemgetter(index), rows)
                      if value is not None]
            if set(map(len, column)) - {length}:
                _fix_dates(rows, index, length, loaders[description[index].type_code])
        yield rows
        rows = TextRows(cursor.fetchmany(fetch), keys, texts)


def _fix_dates(rows: list, index: int, length: int, loader) -> None:
    # Unusual dates (fractions of a second, BC, infinity, years past 9999):
    # psycopg's own loader (its value or its error), then str().
    for number, row in enumerate(rows):
        value = row[index]
        if value is not None and len(value) != length:
            cells = list(row)
            cells[index] = str(loader.load(value.encode('ascii')))
            rows[number] = tuple(cells)


def _cut(partitions: Iterator[TupleRows], fetch: int, size: int) -> Iterator[Batch]:
    # one partition per fetch (a smaller one would cost a server-side cursor
    # round trip each), encoded ``size`` rows at a time
    for partition in partitions:
        for start in range(0, len(partition), size):
            yield Batch(partition.part(start, size) if fetch > size else partition)


def _tuple_partitions(result, fetch: int) -> Iterator[TupleRows] | None:
    """The partitions of ``result`` as :class:`~tgstream.items.TupleRows`
    read from the driver's cursor and put through SQLAlchemy's own result
    processors (the values each ``Row`` would hold, without building the
    ``Row``), or ``None`` when that is not known to give the same values
    (see :func:`_cursor_source`)."""
    source = _cursor_source(result)
    if source is None:
        return None
    cursor, processors = source
    return _read_tuples(result, cursor, fetch, _tuple_processor(processors))


def _tuple_processor(processors: list):
    """``rows -> rows`` with each column through its processor (generated:
    one comprehension per fetch), or ``None`` when no column has one."""
    if not any(processors):
        return None
    namespace: dict[str, Any] = {}
    names = ''.join('v%d, ' % index for index in range(len(processors)))
    cells = []
    for index, processor in enumerate(processors):
        if processor is None:
            cells.append('v%d' % index)
        else:
            namespace['_p%d' % index] = processor
            cells.append('_p{0}(v{0})'.format(index))
    exec(  # noqa: S102 - names and indexes only
        'def process(rows):\n    return [(%s,) for (%s) in rows]\n'
        % (', '.join(cells), names),
        namespace,
    )
    return namespace['process']


def _read_tuples(result, cursor, fetch: int, process) -> Iterator[TupleRows]:
    keys = list(result.keys())
    first = tuple(result.fetchone())  # from SQLAlchemy's buffer: no fetch
    raw = cursor.fetchmany(fetch - 1)
    rows = TupleRows([first], keys)
    while True:
        if raw:
            if raw[0].__class__ is not tuple:  # a driver's own row class
                raw = [tuple(row) for row in raw]
            rows.extend(raw if process is None else process(raw))
        if not rows:
            return
        yield rows
        rows = TupleRows((), keys)
        raw = cursor.fetchmany(fetch)


def _result_types() -> tuple:
    try:
        from sqlalchemy.engine import MappingResult, Result, ScalarResult
        from sqlalchemy.orm import Query
    except ImportError:  # pragma: no cover - SQLAlchemy is an extra
        return ((), ())
    return (Result, ScalarResult, MappingResult), (Query,)


_RESULTS, _QUERIES = _result_types()


def result_batches(value: Any, *, tuples: bool = False,
                   text: bool = False) -> Iterator[Batch] | None:
    """The batches of a SQLAlchemy ``Result``, ``ScalarResult``,
    ``MappingResult`` or ORM ``Query`` a view returned, or ``None`` for
    any other value.

    The stream renderers (json, ndjson, csv) call it, so that returning
    ``session.execute(stmt)``, ``session.scalars(stmt)`` or
    ``session.query(User)`` streams batch by batch like
    :func:`stream_query` (same bytes as item by item, fewer calls). A
    result is read with ``partitions()`` (its ``yield_per`` server-side
    cursor, if it has one, stays in use); a ``Query`` runs with
    ``yield_per`` unless its loader options forbid it. Objects are not
    expunged (unlike :func:`stream_query`, the session is not known).
    ``tuples`` and ``text``: as for :meth:`QueryStream.batches`, for a
    ``yield_per`` result of a Core statement not read from yet.
    """
    if _RESULTS and isinstance(value, _RESULTS):
        return _partitions(value, None, tuples or text, text)
    if _QUERIES and isinstance(value, _QUERIES):
        return _partitions(None, value)
    return None


def _partitions(result, query, tuples: bool = False, text: bool = False) -> Iterator[Batch]:
    from sqlalchemy.engine import Result

    if result is None:  # a Query runs when the stream is primed
        result = query_result(query, DEFAULT_BATCH_ROWS)
    rows = isinstance(result, Result)
    size = DEFAULT_BATCH_ROWS if rows else DEFAULT_BATCH_OBJECTS
    # A partition per fetch of the result's own yield_per (a smaller one
    # would cost a server-side cursor round trip each), encoded ``size``
    # at a time.
    fetch = max(result_yield_per(result) or size, size)
    try:
        plain: Iterator[TupleRows] | None = None
        if tuples and rows:  # the driver's rows as tuples, where that is the same
            plain = (_text_partitions(result, fetch) if text else None) or _tuple_partitions(
                result, fetch)
        if plain is not None:
            yield from _cut(plain, fetch, size)
            return
        for partition in result.partitions(fetch):
            for start in range(0, len(partition), size):
                part = partition[start:start + size] if fetch > size else partition
                # Rows of one result: the encoders need not check each row.
                yield Batch(ResultRows(part) if rows else part)
    finally:
        result.close()


def stream_query(session, statement, batch: int | None = None, *,
                 scalars: bool | None = None, expunge: bool = True) -> QueryStream:
    """Stream the results of ``statement`` through ``session``, ``batch`` rows at a time.

    Yields ORM objects for a single-entity ``select(User)`` (or when
    ``scalars=True``), ``Row`` objects otherwise. Every row is returned
    once, in the statement's order. Uses a server-side cursor where the
    driver supports one (``yield_per``), so memory stays flat whatever the
    size of the result; on PostgreSQL the cursor lives in the request's
    transaction, which tgstream keeps open while the stream runs.

    With ``expunge=True`` (the default) the ORM objects of a batch are
    removed from the session when the next batch is fetched: the identity
    map stays bounded, but those objects are detached afterwards (lazy
    loads on them fail) and objects the view loaded before that appear in
    the results are detached too. Objects with pending changes are kept.

    ``batch`` defaults to 100 when the rows hold ORM objects and to 500
    otherwise (see :data:`DEFAULT_BATCH_OBJECTS`); raise it when the
    database is far away and each fetch costs a long round trip.

    Example::

        @expose('json', route_name='users', stream=True)
        def users(request):
            return tgstream.stream_query(request.dbsession, select(User).order_by(User.id))

    Returning it (rather than ``yield from``) lets the json, ndjson and csv
    renderers encode whole batches at once, the fastest path.
    """
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError('stream_query batch=%r is not a positive int' % (batch,))
    return QueryStream(session, statement, batch, scalars, expunge)
