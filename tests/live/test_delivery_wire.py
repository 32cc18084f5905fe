"""Delivery semantics on the wire (waitress): when each item reaches the
client against when it was yielded, and nothing yielded is lost.

"Delivered before the pause" is tested with a handshake: the view blocks
(bounded) until the client has received what it yielded, so a rule that
holds an item until the next one would fail, not merely be slow.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from tests.handshake import Handshake
from tgstream.stream import StreamIterator

from .conftest import read_timed
from .test_demo_wire import copy_ini, free_port

pytestmark = pytest.mark.live

TEMPLATES = 'tests.pkgs.templatesapp:templates/'
WAIT = 10.0   # a handshake that never comes fails the test after this long


def add(config, name, view, renderer=None, **options):
    config.add_route(name, '/' + name)
    config.add_view(view, route_name=name, renderer=renderer, stream=True, **options)


def arrival_of(chunks, token: bytes) -> float:
    """When (seconds into the response) ``token`` was complete on the client."""
    body = b''
    for when, chunk in chunks:
        body += chunk
        if token in body:
            return when
    raise AssertionError('%r never arrived' % token)


def fetch(shake: Handshake, url: str):
    """``shake.read(url)``, with the monotonic time the request started."""
    started = time.monotonic()
    response, chunks, complete = shake.read(url, timeout=WAIT * 3)
    return started, b''.join(c for _, c in chunks), chunks, complete


def _item(renderer, n):
    if renderer is None:
        return 'item-%s\n' % n
    return {'v': 'item-%s' % n}


@pytest.mark.parametrize('renderer', [None, 'json', 'ndjson', 'csv', 'sse'])
@pytest.mark.parametrize('burst', [1, 16])
def test_a_burst_reaches_the_client_before_the_pause_ends(make_app, live, renderer, burst):
    shake = Handshake(WAIT)
    yielded = {}

    def view(request):
        for n in range(burst):
            yielded[n] = time.monotonic()
            yield _item(renderer, n)
        # the pause ends only once the client has every item of the burst
        arrived = shake.wait_for(b'item-%d' % (burst - 1))
        yield _item(renderer, 'end' if arrived else 'TIMEOUT')

    url = live(make_app(lambda c: add(c, 'v', view, renderer)))
    started, body, chunks, complete = fetch(shake, url + '/v')
    assert complete
    assert shake.late == [], 'the burst was held back until the pause ended'
    assert b'item-end' in body
    for n, when in yielded.items():
        # measured: yield -> on the client (generous: the machine is loaded)
        assert started + arrival_of(chunks, b'item-%d' % n) - when < WAIT / 4


def test_ndjson_progress_before_slow_work(make_app, live):
    # The example: "writing" must be shown while the work runs.
    shake = Handshake(WAIT)

    def progress(request):
        yield {'status': 'started'}
        yield {'status': 'writing'}
        done = shake.wait_for(b'"writing"')     # the slow work
        yield {'status': 'done' if done else 'TIMEOUT'}

    url = live(make_app(lambda c: add(c, 'v', progress, 'ndjson')))
    started, body, chunks, complete = fetch(shake, url + '/v')
    assert complete and shake.late == []
    assert [json.loads(line) for line in body.splitlines()] == [
        {'status': 'started'}, {'status': 'writing'}, {'status': 'done'},
    ]


def test_template_heading_arrives_before_a_slow_row(make_app, live):
    shake = Handshake(WAIT)

    def page(request):
        def rows():
            yield 'row 1' if shake.wait_for(b'</h1>') else 'TIMEOUT'

        return {'title': 'Report', 'rows': rows()}

    app = make_app(
        lambda c: add(c, 'v', page, TEMPLATES + 'heading.jinja2'),
        includes=('tgstream', 'pyramid_jinja2'),
    )
    started, body, chunks, complete = fetch(shake, live(app) + '/v')
    assert complete and shake.late == []
    assert b'<h1>Report</h1>' in body and b'<li>row 1</li>' in body


def test_template_flush_releases_a_long_run_before_a_slow_row(make_app, live, monkeypatch):
    monkeypatch.setattr(StreamIterator, 'fast_pull', 60.0)   # every pull fast
    shake = Handshake(WAIT)

    def page(request):
        def slow():
            yield 'slow' if shake.wait_for(b'<li>299</li></ul>') else 'TIMEOUT'

        return {'fast': range(300), 'slow': slow()}

    app = make_app(
        lambda c: add(c, 'v', page, TEMPLATES + 'flushed.jinja2'),
        includes=('tgstream', 'pyramid_jinja2'),
    )
    started, body, chunks, complete = fetch(shake, live(app) + '/v')
    assert complete and shake.late == [] and body.endswith(b'<p>slow</p>')


class CountingApp:
    """WSGI middleware counting the non-empty chunks the server is handed
    (one ``write`` each)."""

    def __init__(self, app):
        self.app = app
        self.writes: list[int] = []

    def __call__(self, environ, start_response):
        body = self.app(environ, start_response)
        return _Counted(body, self.writes)


class _Counted:
    def __init__(self, body, writes):
        self.body = body
        self.iterator = iter(body)
        self.writes = writes

    def __iter__(self):
        return self

    def __next__(self):
        chunk = next(self.iterator)
        if chunk:
            self.writes.append(len(chunk))
        return chunk

    def close(self):
        close = getattr(self.body, 'close', None)
        if close is not None:
            close()


@pytest.mark.parametrize('renderer', [None, 'json', 'ndjson'])
def test_twenty_thousand_fast_items_arrive_in_few_writes(make_app, live, renderer, monkeypatch):
    # The subject is joining a long fast run; what counts as fast has its
    # own tests (fake clock). A loaded machine preempts this thread for
    # milliseconds at a time: allow that without a new run of single writes.
    monkeypatch.setattr(StreamIterator, 'fast_pull', 0.05)
    def many(request):
        for n in range(20_000):
            yield ('%d\n' % n) if renderer is None else {'n': n}

    app = CountingApp(make_app(lambda c: add(c, 'v', many, renderer)))
    response, chunks, complete = read_timed(live(app) + '/v', timeout=60)
    assert complete
    body = b''.join(c for _, c in chunks)
    if renderer == 'json':
        assert json.loads(body) == [{'n': n} for n in range(20_000)]
    else:
        assert len(body.splitlines()) == 20_000
    assert len(app.writes) <= 300, len(app.writes)


def test_items_held_at_a_failure_arrive_before_the_cut(make_app, live, tgstream_log):
    def failing(request):
        yield {'n': 'start'}
        for n in range(100):          # a fast run: its tail is held ...
            yield {'n': n}
        raise RuntimeError('secret')  # ... when this happens

    url = live(make_app(lambda c: add(
        c, 'v', failing, 'ndjson', stream_options={'error_marker': True}
    )))
    response, chunks, complete = read_timed(url + '/v')
    assert not complete
    lines = [json.loads(line) for line in b''.join(c for _, c in chunks).splitlines()]
    assert lines == [{'n': 'start'}] + [{'n': n} for n in range(100)] + [
        {'error': 'stream failed'}
    ]
    assert any('outcome=error' in r.getMessage() for r in tgstream_log.records)


def test_tg_stream_list_delivers_each_number_as_it_is_yielded(tmp_path):
    # The demo's TurboGears port: '[' and '1, ' before the first pause, then
    # one number per pause -- never one interval late.
    from pyramid.paster import get_app

    from tgstream.testing import serve

    pause = 0.4
    ini = copy_ini(tmp_path, free_port(), demo_pause=str(pause), demo_seed_users='10')
    app = get_app(str(ini), 'main')
    try:
        with serve(app) as server:
            response, chunks, complete = read_timed(server.url + '/tg/stream_list')
    finally:
        app.registry['dbengine'].dispose()
    assert complete
    assert json.loads(b''.join(c for _, c in chunks)) == list(range(1, 11))
    arrived = {}
    body = b''
    for when, chunk in chunks:
        body += chunk
        for number in re.findall(rb'(\d+)[,\]]', body):
            arrived.setdefault(int(number), when)
    start = chunks[0][0]
    # '1, ' is yielded right after '[' and before the first pause
    assert arrived[1] - start < pause / 2
    for n in range(2, 11):
        # each number arrives a pause after the previous one, not with it
        assert arrived[n] - arrived[n - 1] > pause / 2
