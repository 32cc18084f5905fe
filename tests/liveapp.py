"""A small app with live feeds, for the live-stream tests (both backends)."""
from __future__ import annotations

import json
import os
import threading
import time

import httpx
from pyramid.httpexceptions import HTTPBadRequest

import tgstream
from tests.dbapp import User, build_db_app

#: /hold's gates: name -> (notified, open)
GATES: dict[str, tuple[threading.Event, threading.Event]] = {}


def wsgi_app():
    """The live app for a server in another process (gunicorn's
    ``tests.liveapp:wsgi_app()``): ``TGSTREAM_LIVE_APP`` is JSON with
    ``url``, ``schema`` and ``settings``."""
    import sqlalchemy

    config = json.loads(os.environ['TGSTREAM_LIVE_APP'])
    engine = sqlalchemy.create_engine(
        config['url'], connect_args={'options': '-csearch_path=%s' % config['schema']})
    return live_app(engine, config['settings'])


def pg_live_settings(engine, pg_url: str, **extra: str) -> dict:
    """``tgstream.live.*`` for the PostgreSQL backend on ``engine``'s schema
    (the ``pg_engine`` fixture's): a log table and a NOTIFY channel of the
    test's own."""
    import uuid

    from sqlalchemy import text

    with engine.connect() as conn:
        schema = conn.scalar(text('SELECT current_schema()'))
    settings = {
        'tgstream.live.backend': 'postgresql',
        'tgstream.live.url': pg_url,
        'tgstream.live.table': '%s.tgstream_live_events' % schema,
        # NOTIFY channels are database-wide: one per test
        'tgstream.live.pg_channel': 't_' + uuid.uuid4().hex[:12],
    }
    settings.update(extra)
    return settings


def live_app(engine, settings=None):
    """Routes: ``/add?name=..`` (``&fail=1``, ``&doom=1``, ``&big=1``),
    ``/stream_add?names=a,b`` (``&fail=1``: fails after notifying),
    ``/hold?name=..&gate=..`` (notifies, commits once :data:`GATES` opens),
    ``/current?channel=..`` (``current_id``), ``/feed?channel=..`` (an SSE
    live stream; ``channel`` repeated: several)."""
    from tests.dbapp import Base

    Base.metadata.create_all(engine)

    def add(request):
        name = request.params['name']
        if 'only' not in request.params:  # else: the notification is all it writes
            request.dbsession.add(User(name=name))
        payload = {'name': name, 'pad': 'x' * 9000} if 'big' in request.params else {'name': name}
        tgstream.notify(request, request.params.get('channel', 'users'), payload)
        if 'doom' in request.params:
            request.tm.doom()
        if 'fail' in request.params:
            raise HTTPBadRequest('failed after notify')
        return {'added': name}

    def stream_add(request):
        for name in request.params['names'].split(','):
            request.dbsession.add(User(name=name))
            request.dbsession.flush()
            tgstream.notify(request, 'users', {'name': name})
            yield {'added': name}
        if 'fail' in request.params:
            raise RuntimeError('stream failed after notify')

    def hold(request):
        # notify, then wait for the test to open the gate before committing
        gate = GATES.setdefault(request.params['gate'], (threading.Event(), threading.Event()))
        tgstream.notify(request, 'users', {'name': request.params['name']})
        gate[0].set()
        assert gate[1].wait(20), 'the test never opened the gate'
        return {'held': request.params['name']}

    def current(request):
        return {'id': tgstream.live.current_id(request, request.params.getall('channel') or
                                                 ['users'])}

    def feed(request):
        if 'touch' in request.params:  # use (and so check out) a connection
            request.dbsession.query(User).count()
        channels = request.params.getall('channel') or ['users']
        return tgstream.listen(request, channels if len(channels) > 1 else channels[0])

    def setup(config):
        config.add_route('add', '/add')
        config.add_view(add, route_name='add', renderer='json')
        config.add_route('stream_add', '/stream_add')
        config.add_view(stream_add, route_name='stream_add', renderer='ndjson', stream=True)
        config.add_route('hold', '/hold')
        config.add_view(hold, route_name='hold', renderer='json')
        config.add_route('current', '/current')
        config.add_view(current, route_name='current', renderer='json')
        config.add_route('feed', '/feed')
        config.add_view(feed, route_name='feed', renderer='sse', stream=True)

    return build_db_app(engine, setup, settings)


def parse_sse(data: bytes) -> list[dict]:
    """Events (dicts of fields; comments under ``':'``) of an SSE body."""
    events = []
    for block in data.decode('utf-8').split('\n\n'):
        if not block.strip():
            continue
        event: dict = {}
        for line in block.split('\n'):
            name, _, value = line.partition(':')
            event.setdefault(name or ':', []).append(value[1:] if value.startswith(' ') else value)
        events.append({k: '\n'.join(v) for k, v in event.items()})
    return events


class SSEClient:
    """Read an SSE response on a thread-free, bounded loop."""

    def __init__(self, url: str, headers: dict | None = None, timeout: float = 10.0):
        self.client = httpx.Client(timeout=timeout)
        self.stream = self.client.stream('GET', url, headers=headers or {})
        self.response = self.stream.__enter__()
        self.chunks = self.response.iter_raw()
        self.buffer = b''

    def events(self) -> list[dict]:
        return parse_sse(self.buffer)

    def read_until(self, predicate, timeout: float = 10.0) -> list[dict]:
        """Read until ``predicate(events)`` is true (AssertionError after
        ``timeout``); returns the events so far."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events()):
            assert time.monotonic() < deadline, 'timed out; events: %r' % self.events()
            self.buffer += next(self.chunks)
        return self.events()

    def data_events(self) -> list[dict]:
        return [e for e in self.events() if 'data' in e and e.get('event') != 'reset']

    def close(self) -> None:
        self.stream.__exit__(None, None, None)
        self.client.close()
