"""The PostgreSQL backend: a row in the durable log, in the request's
transaction; one listening connection per process.

Sending: ``INSERT INTO <tgstream.live.table>`` on the request's own
SQLAlchemy session, so the event exists if and only if that transaction
commits; after the commit, the process's listener is poked.

Receiving: a daemon thread (a greenlet under gevent's monkey-patching) holds
one autocommit psycopg connection. It ``LISTEN``s (NOTIFY is a wake-up only:
the log carries the events), tries to become the log's sequencer (see
:mod:`tgstream.live.log`), and reads the log after the last position it
published, handing each event to the hub. When the connection breaks it
reconnects with a growing delay and catches up from the log: nothing is
lost, in order, no ``reset``. The sequencer also purges events older than
``tgstream.live.retention``.

NOTIFY messages on ``tgstream.live.pg_channel``: ``w`` (a process committed
events: sequencer, wake up), ``p`` (the sequencer gave positions: readers,
read). Writers never NOTIFY in their transaction -- PostgreSQL serialises
the commits of notifying transactions on a global lock (0.26x the commit
rate, see benchmarks/RESULTS.md); a ``w`` is sent by the listener, from its
own connection, with ``synchronous_commit`` off.
"""
from __future__ import annotations

import logging
import select
import socket
import threading
import time
from typing import Any

from .._compat import mark_session_changed
from . import log as sql
from .hub import Hub

log = logging.getLogger('tgstream.live')


def send(session: Any, table: str, channel: str, data: str) -> int:
    """Insert an event into the log on ``session`` (joined to the request's
    transaction); returns its key."""
    from sqlalchemy import text

    bind = session.get_bind()
    if bind.dialect.name != 'postgresql':
        raise RuntimeError(
            'tgstream.live.backend = postgresql, but the session notify() '
            'uses is bound to %s (a %s database); pass a PostgreSQL session '
            'with session=' % (bind.url.render_as_string(hide_password=True),
                                bind.dialect.name)
        )
    from sqlalchemy.exc import ProgrammingError

    try:
        key = session.execute(text(sql.insert_sql(table)),
                              {'channel': channel, 'data': data}).scalar_one()
    except ProgrammingError as exc:
        if getattr(exc.orig, 'sqlstate', None) != '42P01':  # undefined_table
            raise
        raise RuntimeError(
            'tgstream.live.table = %r: no such table for the session notify() '
            'uses, though the listener (tgstream.live.url) created it -- their '
            'search_path differs: give a schema-qualified name (schema.%s)'
            % (table, table.rpartition('.')[2])
        ) from exc
    # zope.sqlalchemy rolls back a transaction that only ran statements (no
    # flush): the event must make it commit.
    mark_session_changed(session)
    return key


class PostgresListener:
    """The process's listening connection: sequencer (when it holds the
    lock), reader and purger of the log, feeding ``hub``."""

    #: seconds the first listen() of a process waits for the first connection
    first_wait = 5.0
    max_delay = 5.0
    #: seconds between purges (and attempts to become the sequencer: poll)
    purge_every = 60.0
    #: seconds at least between two sequencing steps: commits that come
    #: faster are sequenced together (one statement, one NOTIFY), which keeps
    #: the log's cost per commit low under load
    batch = 0.01

    def __init__(self, hub: Hub, url: str, pg_channel: str, table: str,
                 retention: float = 86400.0, poll: float = 1.0):
        self.hub = hub
        self.url = url
        self.pg_channel = pg_channel
        self.table = table
        self.retention = retention
        self.poll = poll
        self.connected = threading.Event()
        #: successful connections so far (> 1: it reconnected)
        self.connections = 0
        self.backend_pid: int | None = None
        #: whether this process is the log's sequencer now
        self.sequencer = False
        self._stop = threading.Event()
        self._poked = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(
            target=self._run, name='tgstream-live-listener', daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        if timeout and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            for sock in (self._wake_r, self._wake_w):
                sock.close()

    def poke(self) -> None:
        """Events were committed in this process: sequence them now (one
        wake-up for all the pokes until the listener takes it)."""
        if not self._poked:
            self._poked = True
            self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b'.')
        except OSError:  # full (it will wake anyway) or closed (stopped)
            pass

    def _run(self) -> None:
        import psycopg

        delay = 0.05
        while not self._stop.is_set():
            try:
                conn = psycopg.connect(
                    self.url, autocommit=True,
                    application_name='tgstream-live-listener',
                )
            except psycopg.Error as exc:
                log.warning('tgstream live listener: cannot connect (%s); '
                            'retrying in %.1fs', exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            try:
                self._connected(conn)
                delay = 0.05
                self._serve(conn)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning('tgstream live listener: connection lost (%s); '
                                'reconnecting', exc)
            except Exception:
                # never a silent end of delivery: log it, start again
                log.exception('tgstream live listener: failed; reconnecting')
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_delay)
            finally:
                self.connected.clear()
                self.sequencer = False
                try:
                    conn.close()
                except Exception:  # pragma: no cover - already broken
                    pass

    def _connected(self, conn) -> None:
        sql.ensure_table(conn, self.table)
        conn.execute('LISTEN %s' % self.pg_channel)
        self.backend_pid = conn.info.backend_pid
        self.connections += 1
        if self.connections == 1:
            head = conn.execute(sql.head_sql(self.table)).fetchone()[0] or 0
            if self.hub.stream_count() and head > self.hub.head:
                # streams that subscribed before the first connection (the
                # database was unreachable) cannot know what they missed
                self.hub.reset_all('the live listener connected late')
            self.hub.advance(head)
        else:
            log.warning('tgstream live listener: reconnected; catching up '
                        'from position %d', self.hub.head)
        self.connected.set()

    def _serve(self, conn) -> None:
        lock, sequence = sql.lock_sql(self.table), sql.sequence_sql(self.table)
        read, purge = sql.read_sql(self.table), sql.purge_sql(self.table)
        notify = "SELECT pg_notify('%s', 'p')" % self.pg_channel
        wake = ("BEGIN; SET LOCAL synchronous_commit TO off; "
                "NOTIFY %s, 'w'; COMMIT" % self.pg_channel)
        origin = int(time.time() * 1e6)
        sock = conn.fileno()
        next_check = 0.0  # sequencer lock attempts and purges
        due = True  # read (and sequence) on the first round
        last_step = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_check:
                next_check = now + min(self.poll, self.purge_every)
                if not self.sequencer:
                    self.sequencer = bool(conn.execute(lock).fetchone()[0])
                    due = due or self.sequencer
                elif now >= getattr(self, '_next_purge', 0.0):
                    self._next_purge = now + self.purge_every
                    conn.execute(purge, {'retention': self.retention})
            for message in conn.notifies(timeout=0):
                due = due or message.payload == ('w' if self.sequencer else 'p')
            if due or self._poked:
                # commits that come faster than `batch` share one step
                wait = last_step + self.batch - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
                last_step = time.monotonic()
                poked, self._poked, due = self._poked, False, False
                caught_up = False
                if self.sequencer:
                    while True:
                        with conn.transaction():
                            rows = conn.execute(sequence, {'origin': origin}).fetchall()
                            if rows:
                                conn.execute(notify)
                        # the new positions follow the hub's head: publish
                        # them as they are (else read the log up to them)
                        caught_up = self._publish(rows)
                        if len(rows) < sql.PAGE or not caught_up:
                            break
                elif poked:
                    conn.execute(wake)  # the sequencer is in another process
                if not caught_up:
                    self._read(conn, read)
                continue
            timeout = max(0.0, min(next_check - time.monotonic(), self.poll))
            ready, _, _ = select.select([sock, self._wake_r], [], [], timeout)
            if self._wake_r in ready:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
            if not ready:
                due = True  # the poll: a safety net for a lost wake-up

    def _publish(self, rows: list) -> bool:
        """Publish the rows a sequencing step returned if they follow the
        hub's head (True), or nothing (False)."""
        if not rows or min(row[0] for row in rows) != self.hub.head + 1:
            return False
        for event in sql.to_events(rows):
            self.hub.publish(event)
        self.hub.advance(max(row[0] for row in rows))
        return True

    def _read(self, conn, read: str) -> None:
        while True:
            rows = conn.execute(read, {'after': self.hub.head}).fetchall()
            for event in sql.to_events(rows):
                self.hub.publish(event)
            if rows:
                self.hub.advance(max(row[0] for row in rows))
            if len(rows) < sql.PAGE:
                return


