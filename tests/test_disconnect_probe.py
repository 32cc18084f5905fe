"""waitress' ``environ['waitress.client_disconnected']``, checked between items
and before the commit: a client gone during a pause aborts the stream.

In-process, with the probe set by hand; tests/stress/test_slow_clients.py
runs the same through a real waitress with ``channel_request_lookahead``.
"""
from __future__ import annotations

import pytest
import webtest
from waitress.channel import ClientDisconnected

import tgstream
from tests.dbapp import User, count_users, seed_users
from tests.live.test_wire import app_with
from tests.test_transaction import stream_app
from tgstream.testing import open_stream, record_streams

PROBE = 'waitress.client_disconnected'


@pytest.fixture
def engine(any_engine):
    seed_users(any_engine)
    return any_engine


def app_for(engine, view):
    # a long flush interval: without the probe the items after the pause
    # would all be pulled (and committed) in one write
    return stream_app(engine, {'tgstream.flush_interval': '30'}, v=view)


def pausing_stream(gone, pulled, more=50):
    def view(request):
        request.dbsession.add(User(id=10, name='view'))
        yield 'first\n'
        gone.append(True)   # the client leaves while the stream pauses here
        for n in range(11, 11 + more):
            pulled.append(n)
            request.dbsession.add(User(id=n, name='u%d' % n))
            request.dbsession.flush()
            yield '%d\n' % n

    return view


def test_a_client_gone_during_a_pause_aborts_at_the_next_item(engine):
    gone, pulled = [], []
    app = app_for(engine, pausing_stream(gone, pulled))
    with record_streams(app) as streams:
        response = open_stream(app, '/v', environ={PROBE: lambda: bool(gone)})
        assert response.next_chunk() == b'first\n'
        with pytest.raises(ClientDisconnected):
            response.next_chunk()
        response.close()
        event = streams.assert_disconnected('/v', count=1)
    assert event.transaction == 'aborted'
    assert pulled == [11]   # one item pulled after the pause, none sent
    assert response.body == b'first\n'
    assert count_users(engine) == 5
    assert engine.pool.checkedout() == 0


def test_without_the_probe_the_same_stream_completes_and_commits(engine):
    # The control: what the probe prevents (a server that cannot tell).
    gone, pulled = [], []
    app = app_for(engine, pausing_stream(gone, pulled, more=5))
    with record_streams(app) as streams:
        with open_stream(app, '/v') as response:
            response.read()
        streams.assert_committed('/v')
    assert count_users(engine) == 5 + 6


def test_a_client_gone_before_the_end_prevents_the_commit(engine):
    gone = []

    def view(request):
        request.dbsession.add(User(id=10, name='view'))
        yield 'only\n'
        gone.append(True)   # gone while the stream finishes its work

    app = app_for(engine, view)
    with record_streams(app) as streams:
        response = open_stream(app, '/v', environ={PROBE: lambda: bool(gone)})
        assert response.next_chunk() == b'only\n'
        with pytest.raises(ClientDisconnected):
            response.next_chunk()
        streams.assert_disconnected('/v', count=1)
    assert count_users(engine) == 5


def test_a_client_gone_before_the_first_write_never_starts_the_stream(make_app):
    started = []

    def view(request):
        yield 'first'
        started.append(True)
        yield 'second'

    app = app_with(make_app, v=view)
    with record_streams(app) as streams:
        response = open_stream(app, '/v', environ={PROBE: lambda: True})
        with pytest.raises(ClientDisconnected):
            response.next_chunk()
        streams.assert_disconnected('/v')
    assert started == []


def test_a_connected_client_changes_nothing(make_app):
    def view(request):
        yield 'a'
        yield tgstream.flush
        yield 'b'

    app = app_with(make_app, v=view)
    response = webtest.TestApp(app, extra_environ={PROBE: lambda: False}).get('/v')
    assert response.text == 'ab'
