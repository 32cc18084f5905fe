"""``stream_query``: stream a query's results in constant memory.

Rows are fetched ``batch`` at a time, with a server-side cursor where the
driver has one (PostgreSQL with psycopg or psycopg2, MySQL, Oracle...:
SQLAlchemy's ``yield_per``, which implies ``stream_results``); SQLite's
cursor already steps through the results row by row. ORM objects are
expunged from the session once their batch has been consumed, so the
identity map holds one batch at a time.
"""
from __future__ import annotations

from typing import Any, Iterator

from ._compat import batch_expunge
from .items import Batch, ResultRows


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

    def batches(self) -> Iterator[Batch]:
        """The results as :class:`tgstream.Batch` lists of ``batch`` items."""
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


def _result_types() -> tuple:
    try:
        from sqlalchemy.engine import MappingResult, Result, ScalarResult
        from sqlalchemy.orm import Query
    except ImportError:  # pragma: no cover - SQLAlchemy is an extra
        return ((), ())
    return (Result, ScalarResult, MappingResult), (Query,)


_RESULTS, _QUERIES = _result_types()


def result_batches(value: Any) -> Iterator[Batch] | None:
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
    """
    if _RESULTS and isinstance(value, _RESULTS):
        return _partitions(value, None)
    if _QUERIES and isinstance(value, _QUERIES):
        return _partitions(None, value)
    return None


def _query_result(query):
    # Query.__iter__ runs Query._iter() (the Result, scalars for a single
    # entity); with yield_per for a server-side cursor where allowed.
    from sqlalchemy.exc import InvalidRequestError

    if not query.load_options._yield_per:
        try:
            return query.yield_per(DEFAULT_BATCH_ROWS)._iter()
        except InvalidRequestError:  # eager loaders that need all rows
            pass
    return query._iter()


def _partitions(result, query) -> Iterator[Batch]:
    from sqlalchemy.engine import Result

    if result is None:  # a Query runs when the stream is primed
        result = _query_result(query)
    rows = isinstance(result, Result)
    size = DEFAULT_BATCH_ROWS if rows else DEFAULT_BATCH_OBJECTS
    # A partition per fetch of the result's own yield_per (a smaller one
    # would cost a server-side cursor round trip each), encoded ``size``
    # at a time. (``_yield_per``: SQLAlchemy keeps it on the real result.)
    real = getattr(result, '_real_result', None) or result
    fetch = max(getattr(real, '_yield_per', None) or size, size)
    try:
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
