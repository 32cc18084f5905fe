"""Live streams over a real waitress server, on both backends."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.liveapp import SSEClient, live_app, pg_live_settings
from tgstream.live import get_hub, stop_hub

pytestmark = pytest.mark.live


@pytest.fixture(params=['memory', 'postgresql'])
def served(request, live):
    """(url, app, engine) of the live app with keep-alives every 0.2 s."""
    settings = {'tgstream.sse.keepalive': '0.2'}
    if request.param == 'memory':
        engine = request.getfixturevalue('sqlite_engine')
    else:
        engine = request.getfixturevalue('pg_engine')
        settings.update(pg_live_settings(engine, request.getfixturevalue('pg_url')))
    app = live_app(engine, settings)
    hub = get_hub(app.registry)
    if hub.listener is not None:
        assert hub.listener.connected.wait(10)
    url = live(app, threads=8, channel_request_lookahead=1)
    yield url, app, engine
    stop_hub(app.registry)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def has_data(count):
    return lambda events: len([e for e in events if 'data' in e and 'event' not in e]) >= count


def test_committed_events_reach_every_open_feed(served):
    url, app, engine = served
    hub = get_hub(app.registry)
    clients = [SSEClient(url + '/feed') for _ in range(3)]
    try:
        for client in clients:
            client.read_until(lambda events: events)  # the first keep-alive
            assert client.response.headers['content-type'].startswith('text/event-stream')
        assert wait_for(lambda: hub.stream_count() == 3)
        httpx.get(url + '/add', params={'name': 'rolled', 'fail': '1'})
        httpx.get(url + '/add', params={'name': 'ann'})
        httpx.get(url + '/add', params={'name': 'bob'})
        for client in clients:
            client.read_until(has_data(2))
            data = [e['data'] for e in client.data_events()]
            assert data == ['{"name":"ann"}', '{"name":"bob"}']
            assert all(e['id'] for e in client.data_events())
    finally:
        for client in clients:
            client.close()
    assert wait_for(lambda: hub.stream_count() == 0), 'slots were not freed'


def test_reconnect_with_last_event_id(served):
    url, app, engine = served
    client = SSEClient(url + '/feed')
    try:
        client.read_until(lambda events: events)
        for name in ('a', 'b', 'c'):
            httpx.get(url + '/add', params={'name': name})
        client.read_until(has_data(3))
        a, b, c = client.data_events()
    finally:
        client.close()
    again = SSEClient(url + '/feed', headers={'Last-Event-ID': a['id']})
    try:
        events = again.read_until(has_data(2))
        assert [e['id'] for e in again.data_events()] == [b['id'], c['id']]
        assert not [e for e in events if e.get('event') == 'reset']
    finally:
        again.close()
    fresh = SSEClient(url + '/feed')
    try:
        # a fresh client is told the latest id (an id-only event)
        events = fresh.read_until(lambda events: any('id' in e for e in events))
        assert [e['id'] for e in events if 'id' in e] == [c['id']]
    finally:
        fresh.close()
    lost = SSEClient(url + '/feed', headers={'Last-Event-ID': 'gone-1'})
    try:
        events = lost.read_until(lambda events: any(e.get('event') == 'reset' for e in events))
        reset = [e for e in events if e.get('event') == 'reset'][0]
        assert 'gone-1' in reset['data']
    finally:
        lost.close()


def test_client_that_leaves_is_noticed_and_its_slot_freed(served, tgstream_server):
    url, app, engine = served
    hub = get_hub(app.registry)
    from tgstream.testing.servers import disconnect_after

    for _ in range(20):
        disconnect_after(url + '/feed', b'keep-alive')
    assert wait_for(lambda: hub.stream_count() == 0, timeout=20), hub.stream_count()


def test_waiting_feed_holds_no_connection(served):
    url, app, engine = served
    client = SSEClient(url + '/feed?touch=1')
    try:
        client.read_until(lambda events: events)
        assert wait_for(lambda: engine.pool.checkedout() == 0), engine.pool.status()
        httpx.get(url + '/add', params={'name': 'z'})
        client.read_until(has_data(1))
        assert engine.pool.checkedout() == 0
    finally:
        client.close()


def test_idle_feed_sends_keepalives_at_the_interval(served):
    url, app, engine = served  # tgstream.sse.keepalive = 0.2
    client = SSEClient(url + '/feed')
    try:
        started = time.monotonic()
        # (PostgreSQL: the log's latest id comes first, in an id-only event)
        client.read_until(lambda events: events)
        if 'id' in client.events()[0]:
            client.buffer = client.buffer.split(b'\n\n', 1)[1]
        events = client.read_until(lambda events: len(events) >= 6, timeout=20)
        elapsed = time.monotonic() - started
        assert all(e == {':': 'keep-alive'} for e in events)
        # 5 intervals after the first: at least 1 s; generous upper bound
        assert 0.9 <= elapsed < 10, elapsed
    finally:
        client.close()
