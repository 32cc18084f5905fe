"""``stream_copy``: a CSV export written by PostgreSQL's ``COPY``, streamed
in the request's transaction, with the formula guard computed in SQL.

On PostgreSQL with psycopg 3 the statement runs as ``COPY (SELECT ... FROM
(statement)) TO STDOUT WITH (FORMAT csv, ...)`` on the session's own
connection -- the same transaction and snapshot as the view's other queries
-- and psycopg's rows are sent as they come, joined into writes of
``tgstream.chunk_size`` bytes. Elsewhere (SQLite) it is
``stream_query(session, statement)`` through the csv renderer: the regular
path. docs/copy.rst says what differs between the two.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator

from .copysql import copy_options, copy_sql
from .query import _entity_columns, stream_query
from .renderers.csvsafe import BLANK_DELIMITERS
from .renderers.encoders import RawEncoder
from .settings import get_settings

#: Marks the execution of the statement that learns its SQL and columns.
_PROBE = 'tgstream_copy_probe'


class CopyStream:
    """What :func:`stream_copy` returns: streamed by the ``csv`` renderer.

    Each rendering runs the statement anew. Iterating it directly is a
    ``TypeError``: only the csv renderer knows the file's format.
    """

    def __init__(self, session: Any, statement: Any):
        self.session = session
        self.statement = statement

    def tgstream_copy(self, renderer: Any, request: Any, regular: Callable) -> tuple:
        """The ``(items, encoder)`` of the csv stream ``renderer`` for this
        export: COPY's rows on PostgreSQL, else ``regular`` (the renderer's
        own path) given :func:`tgstream.stream_query` of the statement."""
        options, refused = copy_options(renderer.dialect, renderer.fmtparams)
        if refused:  # on every database: what PostgreSQL would refuse
            raise renderer.option_error(
                ', '.join(item.split('=')[0] for item in refused),
                'tgstream.stream_copy() writes PostgreSQL\'s CSV, which cannot '
                'honour %s; use the csv renderer\'s regular path (return '
                'tgstream.stream_query(...)) for that format' % '; '.join(refused))
        session = _thread_session(self.session)
        guard = renderer.formula_guard
        if guard is None:
            guard = get_settings(request.registry).csv_formula_guard
        connection = session.connection(bind_arguments={'clause': self.statement})
        if not _copy_capable(connection) or (
            guard and options.get('delimiter', ',') in BLANK_DELIMITERS
        ):
            # (a tab-separated guarded file: the guard's row rule looks past
            # empty leading cells, which one SQL expression per column cannot)
            return regular(stream_query(session, self.statement), request)
        settings = get_settings(request.registry)
        chunks = _copy_chunks(
            session, connection, self.statement, renderer, bool(guard), options,
            settings.chunk_size, settings.flush_interval)
        return chunks, RawEncoder(charset='utf-8')

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(
            'tgstream.stream_copy() is a CSV file written by the database: return it '
            'from a view with renderer=\'csv\' and stream=True (for rows, use '
            'tgstream.stream_query())')

    def __repr__(self) -> str:
        return '<tgstream.CopyStream>'


def stream_copy(session: Any, statement: Any) -> CopyStream:
    """Stream ``statement``'s rows as the CSV PostgreSQL's ``COPY`` writes.

    Return it from a ``renderer='csv'`` stream view. On PostgreSQL (psycopg
    3) the rows are formatted by the server -- ``COPY (statement) TO STDOUT
    WITH (FORMAT csv, ...)`` on the session's connection, in the request's
    transaction, read chunk by chunk in constant memory -- with the formula
    guard computed in SQL (the csv renderer's rule) and the header written
    by the csv renderer. The view's ``stream_options`` map onto COPY's
    options (``delimiter``, ``quoting=csv.QUOTE_ALL``, ``header``,
    ``columns``, ``bom``, ``formula_guard``); one COPY cannot honour is a
    ``ConfigurationError`` naming it, on every database. On other databases
    the export is :func:`tgstream.stream_query` through the csv renderer.

    ``statement``: a select of columns (Core or ORM attributes); a select of
    whole ORM entities is a ``TypeError`` (select their columns).

    Example::

        @expose('csv', route_name='orders_csv', stream=True, filename='orders.csv')
        def orders_csv(request):
            stmt = select(Order.id, Order.customer, Order.total).order_by(Order.id)
            return tgstream.stream_copy(request.dbsession, stmt)

    Caveat: PostgreSQL's CSV is not the csv renderer's byte for byte (line
    endings, booleans, floats...): see docs/copy.rst.
    """
    entities = _entity_columns(statement)
    if entities:
        names = [d.get('name') for d in statement.column_descriptions]
        raise TypeError(
            'tgstream.stream_copy() exports columns; %r selects whole ORM entities '
            '(%s): select their columns, e.g. select(*%s.__table__.c)'
            % (names, ', '.join(str(names[i]) for i in entities), names[entities[0]]))
    return CopyStream(session, statement)


def _thread_session(session: Any) -> Any:
    from sqlalchemy.orm import scoped_session

    return session() if isinstance(session, scoped_session) else session


def _copy_capable(connection: Any) -> bool:
    # COPY through psycopg 3 (sync); the guard's SQL needs a UTF-8 database
    dialect = connection.dialect
    if dialect.name != 'postgresql' or dialect.driver != 'psycopg':
        return False
    raw = connection.connection.driver_connection
    return raw.info.parameter_status('server_encoding') == 'UTF8'


def _probe(session: Any, connection: Any, statement: Any) -> tuple[str, list, list]:
    """The statement as SQL with its parameters bound, its column names and
    type oids: executed once by the session (autoflush, ORM events, bind
    processors, echo, as for any query) with ``LIMIT 0``."""
    import psycopg
    from sqlalchemy import event

    seen: list = []

    def capture(conn, cursor, sql, parameters, context, executemany):
        if context is None or not context.execution_options.get(_PROBE) or seen:
            return sql, parameters
        seen.append((sql, parameters))
        return 'SELECT * FROM (%s) AS tgstream_probe LIMIT 0' % sql, parameters

    if session.autoflush:  # what executing the statement would flush
        session.flush()
    event.listen(connection, 'before_cursor_execute', capture, retval=True)
    try:
        result = session.execute(
            statement, execution_options={_PROBE: True, 'autoflush': False},
            bind_arguments={'clause': statement})
        try:
            keys = list(result.keys())
            types = [column.type_code for column in result.cursor.description]
        finally:
            result.close()
    finally:
        event.remove(connection, 'before_cursor_execute', capture)
    if not seen:  # pragma: no cover - the session chose another connection
        raise RuntimeError('tgstream.stream_copy(): the session did not run the '
                           'statement on its connection for it')
    sql, parameters = seen[0]
    raw = connection.connection.driver_connection
    # the parameters bound by psycopg's own client-side quoting
    query = psycopg.ClientCursor(raw).mogrify(sql, parameters)
    return query, keys, types


def _copy_chunks(session, connection, statement, renderer, guard: bool, options: dict,
                 chunk_size: int, flush_interval: float) -> Iterator[bytes]:
    query, keys, types = _probe(session, connection, statement)
    names = keys
    columns = renderer.columns
    if columns is not None:  # project on them, by name, in their order
        missing = [name for name in columns if name not in keys]
        if missing:
            raise ValueError('csv row has no column(s) %r (the statement has %r)'
                             % (missing, keys))
        indexes = [keys.index(name) for name in columns]
        names = list(columns)
        query = 'SELECT %s FROM (%s) AS tgstream_c(%s)' % (
            ', '.join('c%d' % i for i in indexes), query,
            ', '.join('c%d' % i for i in range(len(keys))))
        types = [types[i] for i in indexes]
    # the header line: the csv renderer's encoder, in COPY's format
    # (imported here: importing tgstream loads no format module)
    from .renderers.csv import CSVEncoder
    from .renderers.csvsafe import guard_row

    header = CSVEncoder(
        columns=names, header=renderer.header, dialect=renderer.dialect,
        fmtparams={**renderer.fmtparams, 'lineterminator': '\n'},
        guard=guard_row if guard else None, bom=renderer.bom,
    ).end()
    raw = connection.connection.driver_connection
    sql = copy_sql(query, types, guard, options)
    clock = time.monotonic
    with raw.cursor() as cursor, _without_jit(cursor, guard):
        with cursor.copy(sql) as copy:
            # COPY sends a message per row: they are joined into chunk_size
            # writes (copied into one buffer: the message is freed at once),
            # and what came so far is written when the rows come slowly
            buffer = bytearray(header)
            last = clock()
            try:
                for data in copy:
                    buffer += data
                    if len(buffer) >= chunk_size or clock() - last >= flush_interval:
                        yield bytes(buffer)
                        buffer.clear()
                        last = clock()
            except Exception:
                if buffer:  # the rows received are delivered, then the cut
                    yield bytes(buffer)
                raise
            if buffer:
                yield bytes(buffer)


@contextlib.contextmanager
def _without_jit(cursor: Any, guard: bool) -> Iterator[None]:
    # The guard's expression has subqueries (for the rare cells it changes)
    # that the planner counts for every row: the COPY's estimated cost grows
    # a thousandfold, and with it come PostgreSQL's JIT (about a second of
    # compiling per query, measured on 200 000 rows: five times the COPY)
    # and a parallel plan (a Gather Merge and a sort instead of the index
    # scan: 60 ms before the first row). Neither pays: the COPY runs with
    # both off, the transaction's settings restored after it.
    if not guard or cursor.connection.info.server_version < 110000:  # no JIT before 11
        yield
        return
    previous = cursor.execute(
        "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather'), "
        "set_config('jit', 'off', true), "
        "set_config('max_parallel_workers_per_gather', '0', true)").fetchone()
    yield  # (after a failure the transaction is aborted, the settings with it)
    cursor.execute("SELECT set_config('jit', %s, true), "
                   "set_config('max_parallel_workers_per_gather', %s, true)", previous[:2])
