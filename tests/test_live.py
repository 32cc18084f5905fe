"""tgstream.notify / tgstream.listen: transactional semantics on both
backends (memory on SQLite, PostgreSQL LISTEN/NOTIFY on PostgreSQL)."""
from __future__ import annotations

import gc

import pytest
import webtest
from pyramid.exceptions import ConfigurationError

import tgstream
from tests.dbapp import count_users
from tests.liveapp import live_app, pg_live_settings
from tgstream.live import PayloadTooLarge, get_hub, stop_hub
from tgstream.live.hub import Reset


@pytest.fixture(params=['memory', 'postgresql'])
def backend(request, tmp_path):
    """(app, hub, engine) of the live app on one backend."""
    if request.param == 'memory':
        engine = request.getfixturevalue('sqlite_engine')
        settings = {}
    else:
        engine = request.getfixturevalue('pg_engine')
        settings = pg_live_settings(engine, request.getfixturevalue('pg_url'))
    app = live_app(engine, settings)
    hub = get_hub(app.registry)
    if hub.listener is not None:
        assert hub.listener.connected.wait(10), 'the listener did not connect'
    yield app, hub, engine
    stop_hub(app.registry)


def subscribe(hub, channel):
    return hub.subscribe([channel])[0]


def drain(subscription, expect: int, timeout=10.0):
    """``expect`` messages (ServerSentEvents) queued for ``subscription``."""
    items = []
    for _ in range(expect):
        item = subscription.get(timeout)
        assert item is not None, 'only %d of %d items arrived: %r' % (len(items), expect, items)
        items.append(item[1])
    return items


def replay(hub, channels, last_event_id):
    """The backlog ``listen(last_event_id=...)`` sends first, on either backend."""
    subscription, backlog, head, _ = hub.subscribe(channels, last_event_id)
    hub.unsubscribe(subscription)
    if hub.log is not None:
        backlog, _, _ = hub.log.backlog(channels, last_event_id, head)
    return list(backlog)


def names(items):
    import json

    return [json.loads(item.data)['name'] for item in items]


def test_commit_delivers_after_commit_in_order(backend):
    app, hub, engine = backend
    sub, backlog, _, head_id = hub.subscribe(['users'])
    assert backlog == [] and head_id is None
    client = webtest.TestApp(app)
    for name in ('a', 'b', 'c'):
        client.get('/add', {'name': name})
    items = drain(sub, 3)
    assert names(items) == ['a', 'b', 'c']
    assert len({item.id for item in items}) == 3
    assert count_users(engine) == 3


def test_a_transaction_that_only_notifies_delivers(backend):
    app, hub, engine = backend
    sub = subscribe(hub, 'users')
    webtest.TestApp(app).get('/add', {'name': 'only', 'only': '1'})
    assert names(drain(sub, 1)) == ['only']
    assert count_users(engine) == 0


def test_abort_doom_and_failed_stream_deliver_nothing(backend):
    app, hub, engine = backend
    sub = subscribe(hub, 'users')
    client = webtest.TestApp(app)
    client.get('/add', {'name': 'failed', 'fail': '1'}, status=400)
    client.get('/add', {'name': 'doomed', 'doom': '1'})
    with pytest.raises(RuntimeError, match='stream failed'):
        client.get('/stream_add', {'names': 'x,y', 'fail': '1'})
    client.get('/add', {'name': 'barrier'})
    assert names(drain(sub, 1)) == ['barrier']
    assert sub.get(0.2) is None
    assert count_users(engine) == 1


def test_stream_notifications_arrive_at_its_commit(backend):
    app, hub, engine = backend
    sub = subscribe(hub, 'users')
    client = webtest.TestApp(app)
    # read the stream by hand: its notifications wait for its last item
    response = client.app.__call__  # noqa: F841 (WebTest reads whole bodies)
    environ = webtest.TestRequest.blank('/stream_add?names=s1,s2').environ
    started = []
    body = app(environ, lambda status, headers, exc_info=None: started.append(status))
    first = next(iter(body))
    assert b's1' in first
    assert sub.get(0.3) is None, 'delivered before the stream committed'
    rest = b''.join(body)
    body.close()
    assert b's2' in rest
    assert names(drain(sub, 2)) == ['s1', 's2']


def test_stream_whose_client_leaves_delivers_nothing(backend):
    app, hub, engine = backend
    sub = subscribe(hub, 'users')
    environ = webtest.TestRequest.blank('/stream_add?names=gone1,gone2').environ
    body = app(environ, lambda status, headers, exc_info=None: None)
    next(iter(body))
    body.close()  # the server closes a stream whose client left
    webtest.TestApp(app).get('/add', {'name': 'barrier'})
    assert names(drain(sub, 1)) == ['barrier']
    assert count_users(engine) == 1


def test_payload_over_limit_is_an_error_at_notify(backend):
    app, hub, engine = backend
    sub = subscribe(hub, 'users')
    client = webtest.TestApp(app)
    with pytest.raises(PayloadTooLarge, match=r"notify\('users'\).*bytes.*8000"):
        client.get('/add', {'name': 'big', 'big': '1'})
    assert count_users(engine) == 0
    client.get('/add', {'name': 'barrier'})
    assert names(drain(sub, 1)) == ['barrier']


def test_last_event_id_replays_or_resets(backend):
    app, hub, engine = backend
    first = subscribe(hub, 'users')
    client = webtest.TestApp(app)
    for name in ('a', 'b', 'c'):
        client.get('/add', {'name': name})
    a, b, c = drain(first, 3)
    assert names(replay(hub, ['users'], a.id)) == ['b', 'c']
    assert replay(hub, ['users'], c.id) == []
    for unknown in ('no-such-id', '1', str(int(c.id) + 1) if hub.log else 'x-1'):
        backlog = replay(hub, ['users'], unknown)
        assert len(backlog) == 1 and isinstance(backlog[0], Reset), (unknown, backlog)


def test_channels_are_separate(backend):
    app, hub, engine = backend
    orders = subscribe(hub, 'orders')
    users = subscribe(hub, 'users')
    client = webtest.TestApp(app)
    client.get('/add', {'name': 'o', 'channel': 'orders'})
    client.get('/add', {'name': 'u'})
    assert names(drain(orders, 1)) == ['o']
    assert names(drain(users, 1)) == ['u']
    assert orders.get(0.1) is None


def test_connect_disconnect_cycles_leave_nothing(backend):
    app, hub, engine = backend
    environ = webtest.TestRequest.blank('/feed').environ
    baseline = hub.stream_count()
    gc.collect()
    # (subscriptions other tests' streams may still hold are not ours)
    before = {id(o) for o in gc.get_objects() if type(o).__name__ == 'Subscription'}
    for _ in range(2000):
        body = app(dict(environ), lambda status, headers, exc_info=None: None)
        # (PostgreSQL: a fresh client is first told the log's latest id)
        assert next(iter(body)).startswith((b': keep-alive\n', b': live\nid: '))
        body.close()
    del body
    assert hub.stream_count() == baseline
    gc.collect()
    assert not [o for o in gc.get_objects()
                if type(o).__name__ == 'Subscription' and id(o) not in before]


def test_notify_without_transaction_is_a_clear_error(sqlite_engine):
    app = live_app(sqlite_engine)
    import transaction
    from pyramid.scripting import prepare

    env = prepare(registry=app.registry)
    try:
        env['request'].tm = transaction.TransactionManager(explicit=True)
        with pytest.raises(RuntimeError, match='needs an open transaction'):
            tgstream.notify(env['request'], 'users', {})
        with pytest.raises(ValueError, match='live channel'):
            tgstream.notify(env['request'], 'a\nb', {})
    finally:
        env['closer']()


@pytest.mark.parametrize('settings, message', [
    ({'tgstream.live.backend': 'redis'}, 'tgstream.live.backend'),
    ({'tgstream.live.backend': 'postgresql'}, 'needs tgstream.live.url'),
    ({'tgstream.live.url': 'mysql://x'}, 'not a PostgreSQL URL'),
    ({'tgstream.live.history': '-1'}, 'tgstream.live.history'),
    ({'tgstream.live.pg_channel': 'a b'}, 'tgstream.live.pg_channel'),
    ({'tgstream.live.bakend': 'memory'}, 'tgstream.live.bakend'),
])
def test_bad_settings_are_configuration_errors(make_app, settings, message):
    with pytest.raises(ConfigurationError, match=message):
        make_app(settings=settings)


def test_streams_end_when_the_hub_stops(sqlite_engine):
    import threading

    app = live_app(sqlite_engine, {'tgstream.sse.keepalive': '10'})
    environ = webtest.TestRequest.blank('/feed').environ
    body = app(environ, lambda status, headers, exc_info=None: None)
    chunks = iter(body)
    assert next(chunks) == b': keep-alive\n\n'
    rest = []
    reader = threading.Thread(target=lambda: rest.extend(chunks))
    reader.start()  # blocks in the stream, waiting for an event
    stop_hub(app.registry)
    reader.join(10)
    assert not reader.is_alive()
    # a planned end: a retry with jitter (2000 ms + up to 100 %), then the end
    assert len(rest) == 1 and rest[0].startswith(b': end\nretry: ')
    assert 2000 <= int(rest[0].split(b'retry: ')[1]) <= 4000
    body.close()
    assert get_hub(app.registry).stream_count() == 0
    stop_hub(app.registry)


def test_notify_and_listen_need_a_request():
    with pytest.raises(RuntimeError, match=r'notify\(\) needs a request'):
        tgstream.notify(None, 'users', {})
    with pytest.raises(RuntimeError, match=r'listen\(\) needs a request'):
        tgstream.listen(None, 'users')


def test_a_feed_read_in_process_with_open_stream(sqlite_engine):
    """How an app tests its live feed without a server."""
    from tgstream.testing import open_stream

    app = live_app(sqlite_engine)
    try:
        with open_stream(app, '/feed') as feed:
            assert feed.next_chunk() == b': keep-alive\n\n'
            webtest.TestApp(app).get('/add', {'name': 'ann'})
            chunk = feed.next_chunk()
            assert chunk.startswith(b'id: ') and chunk.endswith(b'\ndata: {"name":"ann"}\n\n')
        assert get_hub(app.registry).stream_count() == 0
    finally:
        stop_hub(app.registry)
