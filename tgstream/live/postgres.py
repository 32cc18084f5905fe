"""The PostgreSQL backend: ``pg_notify`` in the request's transaction, one
``LISTEN`` connection per process.

Sending: ``SELECT pg_notify(channel, message)`` on the request's own
SQLAlchemy session, so PostgreSQL delivers it when -- and only if -- that
transaction commits, to every listener, in commit order.

Receiving: a daemon thread (a greenlet under gevent's monkey-patching) holds
one autocommit psycopg connection, ``LISTEN``s, and hands each notification
to the hub. When the connection breaks (the server restarted, the backend
was terminated) it reconnects with a growing delay; once listening again, it
forgets the history and sends every stream a ``reset`` (notifications sent
meanwhile are lost).

Message format (text, < 8000 bytes): ``channel LF id LF json``.
"""
from __future__ import annotations

import logging
import threading

from .hub import Event, Hub

log = logging.getLogger('tgstream.live')


def format_message(channel: str, event_id: str, data: str) -> str:
    return '%s\n%s\n%s' % (channel, event_id, data)


def parse_message(message: str) -> Event | None:
    parts = message.split('\n', 2)
    if len(parts) != 3:
        return None
    return Event(*parts)


def send(session, pg_channel: str, message: str) -> None:
    """``pg_notify`` on ``session`` (joined to the request's transaction)."""
    from sqlalchemy import text

    bind = session.get_bind()
    if bind.dialect.name != 'postgresql':
        raise RuntimeError(
            'tgstream.live.backend = postgresql, but the session notify() '
            'uses is bound to %s (a %s database); pass a PostgreSQL session '
            'with session=' % (bind.url.render_as_string(hide_password=True),
                                bind.dialect.name)
        )
    session.execute(
        text('SELECT pg_notify(:channel, :message)'),
        {'channel': pg_channel, 'message': message},
    )
    _mark_changed(session)


def _mark_changed(session) -> None:
    # zope.sqlalchemy rolls back a transaction that only ran statements (no
    # flush): the notification must make it commit. The session joined the
    # transaction (with its own manager) when it executed; only its state
    # changes here.
    try:
        from zope.sqlalchemy import datamanager
    except ImportError:  # pragma: no cover - not a zope.sqlalchemy app
        return
    real = session() if hasattr(session, 'registry') else session  # scoped_session
    if datamanager._SESSION_STATE.get(real) is not None:
        datamanager.mark_changed(real)


class PostgresListener:
    """The process's ``LISTEN`` connection, feeding ``hub``."""

    #: seconds a ``notifies()`` call waits before checking for stop()
    poll = 1.0
    #: seconds the first listen() of a process waits for the first LISTEN
    first_wait = 5.0
    max_delay = 5.0

    def __init__(self, hub: Hub, url: str, pg_channel: str):
        self.hub = hub
        self.url = url
        self.pg_channel = pg_channel
        self.connected = threading.Event()
        #: successful LISTENs so far (> 1: it reconnected)
        self.connections = 0
        self.backend_pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name='tgstream-live-listener', daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

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
                conn.execute('LISTEN %s' % self.pg_channel)
                self.backend_pid = conn.info.backend_pid
                self.connections += 1
                if self.connections > 1:
                    # notifications sent while we were away are lost
                    self.hub.reset_all('the live listener reconnected')
                    log.warning('tgstream live listener: reconnected')
                elif self.hub.stream_count():
                    # streams that subscribed before the first LISTEN (the
                    # database was unreachable) may have missed events
                    self.hub.reset_all('the live listener connected late')
                self.connected.set()
                delay = 0.05
                while not self._stop.is_set():
                    for notify in conn.notifies(timeout=self.poll):
                        event = parse_message(notify.payload)
                        if event is None:
                            log.warning('tgstream live listener: ignored a '
                                        'foreign message on %s', self.pg_channel)
                            continue
                        self.hub.publish(event)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning('tgstream live listener: connection lost (%s); '
                                'reconnecting', exc)
            finally:
                self.connected.clear()
                try:
                    conn.close()
                except Exception:  # pragma: no cover - already broken
                    pass
