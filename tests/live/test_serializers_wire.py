"""Stream renderers on the wire (waitress on 127.0.0.1)."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

import tgstream
from tests.dbapp import User, build_db_app, seed_users
from tests.handshake import Handshake
from tgstream.stream import StreamIterator
from tgstream.testing import open_stream

from .conftest import read_timed

pytestmark = pytest.mark.live


def app_with(make_app, renderer, **views):
    def setup(config):
        for name, view in views.items():
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, renderer=renderer, stream=True)

    return make_app(setup)


def test_slow_json_stream_delivers_each_item_promptly(make_app, live):
    handshake = Handshake()

    def slow(request):
        for n in range(4):
            yield {'n': n}
            # the client has it before the view goes on (a pause longer
            # than tgstream.flush_interval: the next item goes at once too)
            handshake.wait_for(b'{"n":%d}' % n)
            time.sleep(0.06)

    url = live(app_with(make_app, 'json', slow=slow))
    response, chunks, complete = handshake.read(url + '/slow')
    assert complete and response.headers['content-type'] == 'application/json'
    assert json.loads(b''.join(c for _, c in chunks)) == [{'n': n} for n in range(4)]
    # the first item is on the wire at once, not held back by coalescing;
    # each one that follows arrives before the view goes on
    assert chunks[0][1].startswith(b'[{"n":0}')
    assert handshake.late == []
    assert len([chunk for _, chunk in chunks if b'"n"' in chunk]) == 4


def test_failed_json_stream_is_cut_and_not_valid_json(make_app, live, tgstream_log):
    class Unencodable:
        pass

    def failing(request):
        yield {'n': 1}
        yield tgstream.flush
        yield Unencodable()

    url = live(app_with(make_app, 'json', failing=failing))
    response, chunks, complete = read_timed(url + '/failing')
    body = b''.join(c for _, c in chunks)
    assert response.status_code == 200 and not complete
    assert body == b'[{"n":1}'
    with pytest.raises(ValueError):
        json.loads(body)
    assert 'Unencodable' in tgstream_log.text


def test_fast_stream_is_coalesced_and_identical(make_app, live, monkeypatch):
    # The subject is joining a long fast run; what counts as fast has its
    # own tests (fake clock). A loaded machine preempts this thread for
    # milliseconds at a time: allow that without a new run of single writes.
    monkeypatch.setattr(StreamIterator, 'fast_pull', 0.05)
    items = [{'n': n, 'text': 'row %d' % n} for n in range(20000)]
    app = app_with(make_app, 'ndjson', rows=lambda request: iter(items))
    with open_stream(app, '/rows') as response:
        in_process = response.read()
    url = live(app)
    response, chunks, complete = read_timed(url + '/rows')
    body = b''.join(c for _, c in chunks)
    assert complete and body == in_process
    assert [json.loads(line) for line in body.splitlines()] == items
    assert 'content-length' not in response.headers
    assert len(chunks) < 200  # ~560 KiB in 64 KiB writes, not 20 000 writes


def test_sse_events_arrive_as_they_are_yielded(make_app, live):
    handshake = Handshake()

    def events(request):
        yield tgstream.sse_idle
        handshake.wait_for(b': keep-alive')  # the headers went at once
        for n in range(3):
            yield tgstream.ServerSentEvent({'n': n}, event='tick', id=n)
            handshake.wait_for(b'id: %d\n' % n)  # every event is written at once

    url = live(app_with(make_app, 'sse', events=events))
    response, chunks, complete = handshake.read(url + '/events')
    assert complete
    assert response.headers['content-type'].startswith('text/event-stream')
    assert response.headers['cache-control'] == 'no-cache'
    assert response.headers['x-accel-buffering'] == 'no'
    assert chunks[0][1] == b': keep-alive\n\n'  # headers and a comment at once
    assert handshake.late == []
    ticks = [t for t, chunk in chunks if b'event: tick' in chunk]
    assert len(ticks) == 3


def test_stream_query_through_waitress(sqlite_engine, live):
    seed_users(sqlite_engine, 500)

    def setup(config):
        config.add_route('users', '/users')
        config.add_view(
            lambda request: tgstream.stream_query(
                request.dbsession, select(User).order_by(User.id), batch=50),
            route_name='users', renderer='json', stream=True)

    url = live(build_db_app(sqlite_engine, setup))
    response, chunks, complete = read_timed(url + '/users')
    assert complete
    users = json.loads(b''.join(c for _, c in chunks))
    assert [u['id'] for u in users] == list(range(1, 501))
