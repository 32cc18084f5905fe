"""The app the fault and load suite serves: in-process (waitress) or in a
gunicorn subprocess (``tests.stress.app:from_env()``, configured by
``STRESS_*`` environment variables).

Cookiecutter wiring (tests/dbapp.py) on a table of its own, plus a
diagnostic WSGI layer under ``/_diag/`` that runs outside Pyramid:

``/_diag/threads?n=N``
    N concurrent calls meet at a barrier, so each runs on its own worker
    thread; each reports its thread and the size of Pyramid's thread-local
    stack there (0 unless a request was left pushed on that thread);
``/_diag/stats``
    the outcomes of finished streams (recorded with tgstream.testing's
    StreamRecorder), the ids of committed streams and the pool's
    checked-out connections.
"""
from __future__ import annotations

import json
import os
import threading
import time

import sqlalchemy.exc
from pyramid.response import Response
from pyramid.threadlocal import manager
from sqlalchemy import Integer, event, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import tgstream
from tests.dbapp import build_db_app, make_engine
from tgstream.testing import record_streams

#: items written and yielded by a normal /write stream
ITEMS = 8
#: SQLite busy timeout: writing streams queue for the database lock
SQLITE_BUSY_SECONDS = 60


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = 'stress_rows'
    id: Mapped[int] = mapped_column(primary_key=True)
    stream: Mapped[int] = mapped_column(Integer, index=True)
    n: Mapped[int] = mapped_column(Integer)


#: set by a test to let /hold streams finish (in-process servers only)
release = threading.Event()


def write(request):
    """Write and yield ``n`` rows for stream ``s``; ``fail=k`` raises before
    row k; ``hold=1`` keeps going (10 ms apart, ``n`` at most) until the
    client leaves; ``pause_after=k&pause_for=t`` sleeps ``t`` seconds after
    row k."""
    params = request.params
    stream = int(params['s'])
    count = int(params.get('n', ITEMS))
    fail = int(params.get('fail', -1))
    pause = 0.01 if params.get('hold') else float(params.get('pause', 0.002))
    pause_after = int(params.get('pause_after', -1))
    session = request.dbsession
    for n in range(count):
        if n == fail:
            raise RuntimeError('stream %d fails at row %d' % (stream, n))
        session.add(Row(stream=stream, n=n))
        session.flush()
        yield 's%d:%d\n' % (stream, n)
        yield tgstream.flush
        time.sleep(float(params['pause_for']) if n == pause_after else pause)


def hold(request):
    """Take a connection, then hold it until ``release`` (10 s at most)."""
    yield 'rows=%d\n' % request.dbsession.scalar(select(func.count()).select_from(Row))
    yield tgstream.flush
    request.dbsession.scalar(select(func.count()).select_from(Row))  # ('view' policy: again)
    release.wait(10)
    yield 'released\n'


def count(request):
    """A normal (non-stream) request that needs a connection."""
    total = request.dbsession.scalar(select(func.count()).select_from(Row))
    return Response('%d' % total, content_type='text/plain')


def pool_timeout(exc, request):
    # The clear error for a saturated pool: 503, not a hang or a bare 500.
    request.response.status = 503
    request.response.text = 'database busy: connection pool timeout (%s)' % exc
    return request.response


class Diagnostics:
    """WSGI middleware answering ``/_diag/*`` before Pyramid sees them."""

    def __init__(self, app, engine, recorder):
        self.app = app
        self.engine = engine
        self.recorder = recorder
        self.barriers: dict[int, threading.Barrier] = {}
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO', '')
        if not path.startswith('/_diag/'):
            return self.app(environ, start_response)
        if path == '/_diag/threads':
            n = int(environ.get('QUERY_STRING', 'n=1').split('=')[1])
            body = self.threads(n)
        elif path == '/_diag/stats':
            body = self.stats()
        else:
            start_response('404 Not Found', [('Content-Type', 'text/plain')])
            return [b'unknown diagnostic']
        data = json.dumps(body).encode()
        start_response('200 OK', [('Content-Type', 'application/json'),
                                  ('Content-Length', str(len(data)))])
        return [data]

    def threads(self, n: int) -> dict:
        stack = len(manager.stack)   # before anything of ours is pushed
        with self.lock:
            barrier = self.barriers.setdefault(n, threading.Barrier(n))
        try:
            barrier.wait(timeout=10)
            met = True
        except threading.BrokenBarrierError:   # a worker thread is stuck
            met = False
        return {'thread': threading.get_ident(), 'stack': stack, 'met': met}

    def stats(self) -> dict:
        events = self.recorder.find()
        outcomes: dict[str, int] = {}
        for finished in events:
            key = '%s/%s' % (finished.outcome, finished.transaction)
            outcomes[key] = outcomes.get(key, 0) + 1
        committed = sorted(
            int(e.request.params['s']) for e in events
            if e.transaction == 'committed' and e.path == '/write'
        )
        return {'outcomes': outcomes, 'committed': committed,
                'finished': len(events), 'checkedout': self.engine.pool.checkedout()}


def make_app(engine, settings=None):
    """The stress app on ``engine``, wrapped in :class:`Diagnostics`."""
    def setup(config):
        for view, stream in ((write, True), (hold, True), (count, False)):
            config.add_route(view.__name__, '/' + view.__name__)
            config.add_view(view, route_name=view.__name__, stream=stream)
        config.add_view(pool_timeout, context=sqlalchemy.exc.TimeoutError)

    app = build_db_app(engine, setup, settings)
    recorder = record_streams(app)
    return Diagnostics(app, engine, recorder)


def create_engine(url, schema=None, application_name=None, **pool):
    """An engine with the suite's pool and, on PostgreSQL, a schema and an
    application_name of its own (to find its sessions in pg_stat_activity)."""
    connect_args = {}
    if url.startswith('postgresql'):
        if schema:
            connect_args['options'] = '-csearch_path=%s' % schema
        if application_name:
            connect_args['application_name'] = application_name
    engine = make_engine(url, connect_args=connect_args, **pool)
    if url.startswith('sqlite'):
        # A writing stream holds SQLite's database lock until it ends (the
        # 'stream' policy): concurrent writers queue for it. Wait long enough.
        @event.listens_for(engine, 'connect')
        def _busy_timeout(dbapi_connection, record):
            dbapi_connection.execute('PRAGMA busy_timeout = %d' % (SQLITE_BUSY_SECONDS * 1000))
    return engine


def from_env():
    """``tests.stress.app:from_env()`` for gunicorn: STRESS_URL,
    STRESS_SCHEMA, STRESS_APP_NAME, STRESS_POOL_SIZE, STRESS_MAX_OVERFLOW."""
    env = os.environ
    engine = create_engine(
        env['STRESS_URL'], env.get('STRESS_SCHEMA'), env.get('STRESS_APP_NAME'),
        pool_size=int(env.get('STRESS_POOL_SIZE', 5)),
        max_overflow=int(env.get('STRESS_MAX_OVERFLOW', 0)),
        pool_timeout=10,
    )
    return make_app(engine)
