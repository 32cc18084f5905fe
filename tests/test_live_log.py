"""The PostgreSQL durable log (tgstream.live.log) in process: the table on
first use, retention and its purge, ``current_id``'s rows not yet
sequenced, the listener's prompt stop; and what is shared with the memory
backend (several channels, ``current_id``, planned stream ends)."""
from __future__ import annotations

import json
import time

import pytest
import transaction
import webtest
from pyramid.exceptions import ConfigurationError
from pyramid.scripting import prepare
from sqlalchemy import text

import tgstream
from tests.liveapp import live_app, pg_live_settings
from tgstream import _compat
from tgstream.live import get_hub, log, stop_hub
from tgstream.live.hub import Reset


def names(items):
    return [json.loads(item.data)['name'] for item in items]


def drain(subscription, expect, timeout=10.0):
    items = []
    for _ in range(expect):
        item = subscription.get(timeout)
        assert item is not None, 'only %d of %d arrived: %r' % (len(items), expect, items)
        items.append(item[1])
    return items


def started(app):
    hub = get_hub(app.registry)
    assert hub.listener.connected.wait(10)
    return hub


@pytest.mark.postgresql
def test_the_table_is_created_on_first_use_as_documented(pg_engine, pg_url):
    settings = pg_live_settings(pg_engine, pg_url)
    table = settings['tgstream.live.table']
    with pg_engine.connect() as conn:
        assert conn.scalar(text('SELECT to_regclass(:t)'), {'t': table}) is None
    app = live_app(pg_engine, settings)
    try:
        started(app)
        webtest.TestApp(app).get('/add', {'name': 'a'})
        with pg_engine.connect() as conn:
            columns = conn.execute(text(
                "SELECT column_name FROM information_schema.columns WHERE table_schema"
                " = :s AND table_name = 'tgstream_live_events' ORDER BY ordinal_position"),
                {'s': table.split('.')[0]}).scalars().all()
            rows = conn.execute(text('SELECT channel, data FROM %s ORDER BY id' % table)).all()
        assert columns == ['id', 'position', 'channel', 'data', 'created_at']
        assert rows == [('', 'null'), ('users', '{"name":"a"}')]  # the origin, the event
    finally:
        stop_hub(app.registry)
    # docs/live.rst shows the DDL tgstream runs
    with open('docs/live.rst') as f:
        docs = ' '.join(f.read().split())
    for statement in log.ddl('tgstream_live_events'):
        assert ' '.join(statement.split()) in docs, statement


@pytest.mark.postgresql
def test_an_aborted_transaction_leaves_no_row(pg_engine, pg_url):
    settings = pg_live_settings(pg_engine, pg_url)
    app = live_app(pg_engine, settings)
    try:
        started(app)
        client = webtest.TestApp(app)
        client.get('/add', {'name': 'failed', 'fail': '1'}, status=400)
        client.get('/add', {'name': 'doomed', 'doom': '1'})
        client.get('/add', {'name': 'kept'})
        with pg_engine.connect() as conn:
            data = conn.execute(text("SELECT data FROM %s WHERE channel <> ''"
                                     % settings['tgstream.live.table'])).scalars().all()
        assert data == ['{"name":"kept"}']
    finally:
        stop_hub(app.registry)


@pytest.mark.postgresql
def test_retention_purges_old_events_and_resets_ids_before_them(pg_engine, pg_url):
    settings = pg_live_settings(pg_engine, pg_url, **{'tgstream.live.retention': '60'})
    table = settings['tgstream.live.table']
    app = live_app(pg_engine, settings)
    hub = started(app)
    try:
        sub = hub.subscribe(['users'])[0]
        client = webtest.TestApp(app)
        for name in ('old1', 'old2', 'new1', 'new2'):
            client.get('/add', {'name': name})
        old1, old2, new1, new2 = drain(sub, 4)
        with pg_engine.begin() as conn:  # the first two are two minutes old
            conn.execute(text("UPDATE %s SET created_at = now() - interval '120 s'"
                              ' WHERE position <= :p' % table), {'p': int(old2.id)})
        hub.listener.purge_every = 0.05
        hub.listener.poke()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with pg_engine.connect() as conn:
                left = conn.execute(text('SELECT position FROM %s ORDER BY position'
                                         % table)).scalars().all()
            if left == [int(new1.id), int(new2.id)]:
                break
            time.sleep(0.05)
        assert left == [int(new1.id), int(new2.id)]
        backlog, _, _ = hub.log.backlog(['users'], old1.id, hub.head)
        backlog = list(backlog)
        assert len(backlog) == 1 and isinstance(backlog[0], Reset)
        assert 'retention' in backlog[0].reason
        # the oldest kept event's predecessor is still a valid position
        backlog, _, _ = hub.log.backlog(['users'], old2.id, hub.head)
        assert names(list(backlog)) == ['new1', 'new2']
        # everything old: the newest row stays, so positions never restart
        with pg_engine.begin() as conn:
            conn.execute(text("UPDATE %s SET created_at = now() - interval '120 s'" % table))
        hub.listener.poke()
        deadline = time.monotonic() + 10
        while left != [int(new2.id)] and time.monotonic() < deadline:
            time.sleep(0.05)
            with pg_engine.connect() as conn:
                left = conn.execute(text('SELECT position FROM %s' % table)).scalars().all()
        assert left == [int(new2.id)]
        client.get('/add', {'name': 'next'})
        assert int(drain(sub, 1)[0].id) == int(new2.id) + 1
    finally:
        stop_hub(app.registry)


@pytest.mark.postgresql
def test_current_id_excludes_committed_rows_not_yet_sequenced(pg_engine, pg_url):
    settings = pg_live_settings(pg_engine, pg_url, **{'tgstream.live.poll': '0.1'})
    table = settings['tgstream.live.table']
    app = live_app(pg_engine, settings)
    hub = started(app)
    sub = hub.subscribe(['users'])[0]
    client = webtest.TestApp(app)
    client.get('/add', {'name': 'seen'})
    drain(sub, 1)
    stop_hub(app.registry)
    with pg_engine.connect() as blocker:
        # hold the sequencer's lock: commits now stay without a position
        assert blocker.scalar(text(log.lock_sql(table).replace('%%', '%')))
        blocker.commit()
        hub = started(app)
        try:
            client.get('/add', {'name': 'had'})  # committed before the render
            rendered = client.get('/current').json['id']
            assert ':' in rendered, rendered  # "position:key" -- the row the page had
            client.get('/add', {'name': 'after'})
            blocker.execute(text('SELECT pg_advisory_unlock_all()'))
            blocker.commit()
            stream = tgstream.listen(_request(app), 'users', last_event_id=rendered)
            deadline = time.monotonic() + 10
            while not hub.listener.sequencer and time.monotonic() < deadline:
                time.sleep(0.02)
            sent = []
            while len(sent) < 1 and time.monotonic() < deadline:
                item = next(stream)
                if getattr(item, 'data', None):
                    sent.append(item)
            stream.close()
            assert names(sent) == ['after']
        finally:
            stop_hub(app.registry)


def _request(app):
    env = prepare(registry=app.registry)
    env['closer']()
    return env['request']


@pytest.mark.postgresql
def test_the_listener_stops_at_once(pg_engine, pg_url):
    app = live_app(pg_engine, pg_live_settings(pg_engine, pg_url, **{'tgstream.live.poll': '30'}))
    hub = started(app)
    began = time.monotonic()
    stop_hub(app.registry)
    assert time.monotonic() - began < 0.5  # a wake-up, not a poll
    assert not hub.listener._thread.is_alive()


def test_memory_several_channels_and_current_id(sqlite_engine):
    app = live_app(sqlite_engine)
    hub = get_hub(app.registry)
    try:
        client = webtest.TestApp(app)
        env = prepare(registry=app.registry)
        try:
            origin = tgstream.live.current_id(env['request'], ['a', 'b'])
        finally:
            env['closer']()
        sub = hub.subscribe(['a', 'b'])[0]
        for channel, name in (('a', 'a1'), ('c', 'c1'), ('b', 'b1'), ('a', 'a2')):
            client.get('/add', {'name': name, 'channel': channel})
        a1, b1, a2 = drain(sub, 3)
        assert names([a1, b1, a2]) == ['a1', 'b1', 'a2']
        assert names(hub.subscribe(['b', 'a'], a1.id)[1]) == ['b1', 'a2']
        assert names(hub.subscribe(['a', 'b'], origin)[1]) == ['a1', 'b1', 'a2']
    finally:
        stop_hub(app.registry)


def test_max_lifetime_ends_streams_with_a_retry(sqlite_engine):
    app = live_app(sqlite_engine, {'tgstream.live.max_lifetime': '0.3',
                                   'tgstream.sse.keepalive': '10'})
    try:
        began = time.monotonic()
        body = webtest.TestApp(app).get('/feed').body  # ends by itself
        assert 0.25 < time.monotonic() - began < 5
        assert body.endswith(b'retry: ' + body.rsplit(b'retry: ', 1)[1])
        assert 2000 <= int(body.rsplit(b'retry: ', 1)[1]) <= 4000
        assert get_hub(app.registry).stream_count() == 0
    finally:
        stop_hub(app.registry)


@pytest.mark.parametrize('settings, message', [
    ({'tgstream.live.table': 'Bad-Name'}, 'tgstream.live.table'),
    ({'tgstream.live.table': 'a.b.c'}, 'tgstream.live.table'),
    ({'tgstream.live.retention': '0'}, 'tgstream.live.retention'),
    ({'tgstream.live.max_lifetime': '-1'}, 'tgstream.live.max_lifetime'),
    ({'tgstream.live.retry': 'soon'}, 'tgstream.live.retry'),
])
def test_bad_log_settings_name_the_setting(make_app, settings, message):
    with pytest.raises(ConfigurationError, match=message):
        make_app(settings=settings)


def test_listen_needs_channels(sqlite_engine):
    app = live_app(sqlite_engine)
    env = prepare(registry=app.registry)
    try:
        with pytest.raises(ValueError, match='live channels'):
            tgstream.listen(env['request'], [])
    finally:
        env['closer']()
        stop_hub(app.registry)


def test_compat_zope_sqlalchemy_session_state(sqlite_engine):
    """zope.sqlalchemy's ``_SESSION_STATE``: mark_session_changed makes a
    joined, statement-only transaction commit, and leaves others alone."""
    from sqlalchemy.orm import Session
    from zope.sqlalchemy import datamanager, register

    assert isinstance(datamanager._SESSION_STATE, object) and hasattr(
        datamanager._SESSION_STATE, 'get'), 'zope.sqlalchemy changed: _compat.mark_session_changed'
    manager = transaction.TransactionManager(explicit=True)
    session = Session(bind=sqlite_engine)
    register(session, transaction_manager=manager)
    with sqlite_engine.begin() as conn:
        conn.execute(text('CREATE TABLE t (x int)'))
    _compat.mark_session_changed(session)  # not joined: nothing happens
    assert datamanager._SESSION_STATE.get(session) is None
    with manager:
        session.execute(text('INSERT INTO t VALUES (1)'))
        _compat.mark_session_changed(session)
    with sqlite_engine.connect() as conn:
        assert conn.scalar(text('SELECT count(*) FROM t')) == 1, 'the statement was rolled back'


@pytest.mark.postgresql
def test_a_table_the_session_cannot_see_is_a_clear_error(pg_engine, pg_url):
    import uuid

    # the listener (no search_path: public) and the app's session (the
    # test's schema) resolve an unqualified name differently
    name = 'tgstream_t_' + uuid.uuid4().hex[:10]
    settings = pg_live_settings(pg_engine, pg_url, **{'tgstream.live.table': name})
    app = live_app(pg_engine, settings)
    try:
        started(app)
        with pytest.raises(RuntimeError, match=r'tgstream.live.table = .*schema-qualified'):
            webtest.TestApp(app).get('/add', {'name': 'x'})
    finally:
        stop_hub(app.registry)
        with pg_engine.begin() as conn:
            conn.execute(text('DROP TABLE IF EXISTS public.%s' % name))
