"""The PostgreSQL backend's durable event log: its SQL, and reading it.

Writers insert a row, without a position, in the notifying transaction
itself (the row exists iff that transaction commits). One process at a time
-- the one whose listener holds the table's advisory lock -- is the
*sequencer*: it gives committed rows their positions, in the order it sees
them commit, in one statement at a time. Positions therefore become visible
in increasing order, with no gaps: a reader asking for ``position > last``
never skips a row that committed late (the outbox gap of ids assigned at
insert), and every process agrees on each event's position -- its SSE id.

The log starts with an *origin* row (channel ``''``, position = the
creation time in microseconds): a log created again later starts above
every id of the old one, so old ids are told ``reset``, never replayed
wrongly. The purge keeps the newest row, so positions never restart.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Any, Iterator, Sequence

from .hub import Event, Reset

#: rows per sequencing step, read step and replay page
PAGE = 500


def ddl(table: str) -> list[str]:
    """The statements that create the log ``table`` (documented in
    docs/live.rst for teams that manage their schema with migrations)."""
    name = table.rpartition('.')[2]
    return [
        'CREATE TABLE IF NOT EXISTS %s ('
        ' id bigserial NOT NULL,'
        ' position bigint,'
        ' channel text NOT NULL,'
        ' data text NOT NULL,'
        ' created_at timestamptz NOT NULL DEFAULT now())' % table,
        # readers and replays walk positions (a replay reads the range a
        # client missed, whatever its channels: no channel index to keep up);
        # the purge reads created_at from the index
        'CREATE UNIQUE INDEX IF NOT EXISTS %s_position ON %s (position) '
        'INCLUDE (created_at) WHERE position IS NOT NULL' % (name, table),
        # the sequencer: committed rows still without a position
        'CREATE INDEX IF NOT EXISTS %s_unsequenced ON %s (id) '
        'WHERE position IS NULL' % (name, table),
    ]


def origin_sql(table: str) -> str:
    return ("INSERT INTO %s (position, channel, data) SELECT %%(origin)s, '', 'null' "
            'WHERE NOT EXISTS (SELECT 1 FROM %s)' % (table, table))


def ensure_table(conn: Any, table: str) -> None:
    """Create ``table`` and its origin row if missing (psycopg connection in
    autocommit mode; an advisory lock serialises processes doing it at once)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('tgstream.live.ddl'))")
        exists = conn.execute('SELECT to_regclass(%s)', (table,)).fetchone()[0]
        if exists is None:
            for statement in ddl(table):
                conn.execute(statement)
        conn.execute(origin_sql(table), {'origin': int(time.time() * 1e6)})


def insert_sql(table: str) -> str:
    return 'INSERT INTO %s (channel, data) VALUES (:channel, :data) RETURNING id' % table


def lock_sql(table: str) -> str:
    # the sequencer's session lock, one per table of the database
    return ("SELECT pg_try_advisory_lock(hashtext('tgstream.live.sequencer:' || "
            "%s::regclass::oid::text))" % _literal(table))


def sequence_sql(table: str) -> str:
    return (
        'WITH next AS ('
        ' SELECT id FROM {t} WHERE position IS NULL ORDER BY id LIMIT {page}'
        '), numbered AS ('
        ' SELECT next.id, (SELECT coalesce(max(position), %(origin)s) FROM {t}'
        '   WHERE position IS NOT NULL) + row_number() OVER (ORDER BY next.id) AS position'
        ' FROM next'
        # created_at becomes the time the committed row was sequenced (its
        # commit time within a sequencing step): retention and the delivery
        # latency count from there
        ') UPDATE {t} SET position = numbered.position, created_at = clock_timestamp()'
        ' FROM numbered WHERE {t}.id = numbered.id'
        ' RETURNING {t}.position, {t}.channel, {t}.data, {t}.id,'
        ' extract(epoch FROM {t}.created_at)'
    ).format(t=table, page=PAGE)


def read_sql(table: str) -> str:
    return ('SELECT position, channel, data, id, extract(epoch FROM created_at) '
            'FROM %s WHERE position > %%(after)s '
            'ORDER BY position LIMIT %d' % (table, PAGE))


def head_sql(table: str) -> str:
    return 'SELECT max(position) FROM %s WHERE position IS NOT NULL' % table


def purge_sql(table: str) -> str:
    # everything older than the cutoff, except the newest row
    return (
        'DELETE FROM {t} WHERE position IS NOT NULL AND position < coalesce('
        ' (SELECT position FROM {t} WHERE position IS NOT NULL AND created_at >= '
        ' now() - %(retention)s * interval \'1 second\''
        '  ORDER BY position LIMIT 1),'
        ' (SELECT max(position) FROM {t} WHERE position IS NOT NULL))'
    ).format(t=table)


def _literal(text: str) -> str:
    return "'%s'" % text.replace("'", "''")


def to_events(rows: Sequence) -> list[Event]:
    """Log rows ``(position, channel, data, id[, sequenced at])`` as events,
    in order, without the origin row."""
    return [Event(channel, str(position), data, position, key,
                  float(stamp[0]) if stamp else 0.0)
            for position, channel, data, key, *stamp in sorted(rows) if channel]


_ID = re.compile(r'^(\d{1,19})(?::(\d{1,19}(?:,\d{1,19})*))?$')


def parse_id(text: str) -> tuple[int, frozenset] | None:
    """An SSE id of the log -- ``<position>``, or from :func:`current_id`
    ``<position>:<key>,<key>`` (rows the page already had) -- else ``None``."""
    match = _ID.match(text.strip())
    if match is None:
        return None
    keys = frozenset(int(k) for k in match.group(2).split(',')) if match.group(2) else frozenset()
    return int(match.group(1)), keys


class LiveLog:
    """Reads of the log outside the listener: replays and bounds, on a small
    pool of its own (a replay holds a connection only while it reads a page)."""

    def __init__(self, url: str, table: str):
        self.url = url
        self.table = table
        self._engine: Any = None
        self._ensured = False
        self._lock = threading.Lock()

    @property
    def engine(self) -> Any:
        if self._engine is None:
            import sqlalchemy

            self._engine = sqlalchemy.create_engine(
                self.url.replace('postgresql://', 'postgresql+psycopg://', 1),
                pool_size=2, max_overflow=3, pool_pre_ping=True,
            )
        return self._engine

    def ensure(self) -> None:
        """Create the table on first use (once per process)."""
        if self._ensured:
            return
        with self._lock:
            if self._ensured:
                return
            with self.engine.connect() as conn:
                raw = conn.connection.driver_connection
                autocommit, raw.autocommit = raw.autocommit, True
                try:
                    ensure_table(raw, self.table)
                finally:
                    raw.autocommit = autocommit
            self._ensured = True

    def _query(self, sql: str, params: dict) -> list:
        with self.engine.connect() as conn:
            return list(conn.exec_driver_sql(sql, params))

    def backlog(self, channels: Sequence[str], last_event_id: str,
                upto: int) -> tuple[Iterator, int, frozenset]:
        """The events of ``channels`` after ``last_event_id`` up to
        position ``upto`` (read page by page), or a :class:`Reset`; the
        position after which live events are new to this client; and the
        rows it already has (see :func:`current_id`)."""
        parsed = parse_id(last_event_id)
        if parsed is None:
            return iter([Reset('unknown Last-Event-ID %r' % (last_event_id,))]), upto, frozenset()
        after, exclude = parsed
        low, high = self._query(
            'SELECT min(position), max(position) FROM %s WHERE position IS NOT NULL'
            % self.table, {})[0]
        if high is None and after == 0:
            return iter(()), upto, exclude
        if high is None or after > high:
            return iter([Reset('unknown Last-Event-ID %r' % (last_event_id,))]), upto, frozenset()
        if after < low - 1:
            return iter([Reset('Last-Event-ID %r is older than the log\'s retention'
                               % (last_event_id,))]), upto, frozenset()
        return self._pages(list(channels), after, upto), max(after, upto), exclude

    def _pages(self, channels: list, after: int, upto: int) -> Iterator:
        sql = ('SELECT position, channel, data, id, (SELECT min(position) FROM {t}'
               ' WHERE position IS NOT NULL) FROM {t} WHERE position > %(after)s AND'
               ' position <= %(upto)s AND channel = ANY(%(channels)s)'
               ' ORDER BY position LIMIT {page}').format(t=self.table, page=PAGE)
        while after < upto:
            rows = self._query(sql, {'after': after, 'upto': upto, 'channels': channels})
            if rows and rows[0][4] > after + 1:
                # purged while it was replayed: never a partial recovery
                yield Reset('the log was purged past position %d during the replay' % after)
                return
            yield from to_events([row[:4] for row in rows])
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def current_id(session: Any, table: str, channels: Sequence[str]) -> str:
    """The id that stands for "everything the current transaction sees":
    the highest position it sees, and the keys of the rows of ``channels``
    it sees that have no position yet (they will come later, already had)."""
    from sqlalchemy import text

    high, keys = session.execute(text(
        'SELECT (SELECT max(position) FROM {t} WHERE position IS NOT NULL),'
        ' array(SELECT id FROM {t} WHERE position IS NULL AND channel = ANY(:channels)'
        ' ORDER BY id)'.format(t=table)), {'channels': list(channels)}).one()
    position = '%d' % (high or 0)
    return position + (':' + ','.join(map(str, keys)) if keys else '')
