"""The PostgreSQL backend's durable log on the wire: replay from processes
started after the events, a cut listener connection, commit order under a
forced interleaving, render-to-subscribe ids, several channels."""
from __future__ import annotations

import json
import os
import threading

import httpx
import pytest
from sqlalchemy import text

from tests.liveapp import GATES, SSEClient, live_app, pg_live_settings
from tgstream.live import get_hub, stop_hub
from tgstream.testing.servers import serve_gunicorn

pytestmark = [pytest.mark.live, pytest.mark.postgresql]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def data(client):
    return [json.loads(e['data'])['name'] for e in client.data_events()]


def resets(events):
    return [e for e in events if e.get('event') == 'reset']


def has_names(count):
    return lambda events: len([e for e in events if 'data' in e and 'event' not in e]) >= count


@pytest.fixture
def pg_app(pg_engine, pg_url):
    """(app, hub, settings) of the live app on PostgreSQL, in this process."""
    settings = pg_live_settings(pg_engine, pg_url, **{'tgstream.sse.keepalive': '0.2'})
    app = live_app(pg_engine, settings)
    hub = get_hub(app.registry)
    assert hub.listener.connected.wait(10)
    yield app, hub, settings
    stop_hub(app.registry)


def process(pg_engine, pg_url, settings):
    """A server in a process of its own (gunicorn, one gthread worker)."""
    with pg_engine.connect() as conn:
        schema = conn.scalar(text('SELECT current_schema()'))
    env = {'TGSTREAM_LIVE_APP': json.dumps(
        {'url': pg_url, 'schema': schema, 'settings': settings})}
    return serve_gunicorn('tests.liveapp:wsgi_app()', threads=8, env=env, cwd=ROOT,
                          ready_path='/current')


def test_replay_from_a_process_started_after_the_events(pg_engine, pg_url):
    settings = pg_live_settings(pg_engine, pg_url, **{'tgstream.sse.keepalive': '0.2'})
    with process(pg_engine, pg_url, settings) as first:
        client = SSEClient(first.url + '/feed')
        try:
            client.read_until(lambda events: any('id' in e for e in events))
            for name in ('a', 'b', 'c', 'd'):
                httpx.get(first.url + '/add', params={'name': name}).raise_for_status()
            client.read_until(has_names(4))
            ids = [e['id'] for e in client.data_events()]
        finally:
            client.close()
    # every process restarted: a new one has never seen these events
    with process(pg_engine, pg_url, settings) as second:
        again = SSEClient(second.url + '/feed', headers={'Last-Event-ID': ids[1]})
        try:
            events = again.read_until(has_names(2))
            assert data(again) == ['c', 'd'] and [e['id'] for e in again.data_events()] == ids[2:]
            assert not resets(events)
            httpx.get(second.url + '/add', params={'name': 'e'}).raise_for_status()
            again.read_until(has_names(3))
            assert data(again) == ['c', 'd', 'e']
        finally:
            again.close()
        # the query parameter works too; an id the log never had is a reset
        by_param = SSEClient(second.url + '/feed?last_event_id=' + ids[2])
        try:
            by_param.read_until(has_names(2))
            assert data(by_param) == ['d', 'e']
        finally:
            by_param.close()
        for unknown in ('%d' % (int(ids[-1]) + 1000), 'gone-1', '1'):
            lost = SSEClient(second.url + '/feed', headers={'Last-Event-ID': unknown})
            try:
                events = lost.read_until(resets)
                assert unknown in resets(events)[0]['data']
            finally:
                lost.close()


def test_two_processes_deliver_every_event_in_one_order(pg_engine, pg_url):
    settings = pg_live_settings(pg_engine, pg_url, **{'tgstream.sse.keepalive': '0.2'})
    with process(pg_engine, pg_url, settings) as one, process(pg_engine, pg_url, settings) as two:
        clients = [SSEClient(server.url + '/feed') for server in (one, two)]
        try:
            for client in clients:
                client.read_until(lambda events: any('id' in e for e in events))
            names = ['n%d' % i for i in range(30)]
            for i, name in enumerate(names):
                server = (one, two)[i % 2]
                httpx.get(server.url + '/add', params={'name': name}).raise_for_status()
            for client in clients:
                client.read_until(has_names(30), timeout=20)
            assert data(clients[0]) == data(clients[1]) == names
            assert [e['id'] for e in clients[0].data_events()] == [
                e['id'] for e in clients[1].data_events()]
        finally:
            for client in clients:
                client.close()


def test_a_cut_listener_catches_up_in_order_without_reset(pg_app, pg_engine, live):
    app, hub, settings = pg_app
    url = live(app, threads=8)
    client = SSEClient(url + '/feed')
    try:
        client.read_until(lambda events: any('id' in e for e in events))
        names = ['c%d' % i for i in range(40)]
        with pg_engine.connect() as conn:
            for name in names:
                # cut the listener's connection, then commit during the outage
                pid = hub.listener.backend_pid
                conn.execute(text('SELECT pg_terminate_backend(:pid)'), {'pid': pid})
                httpx.get(url + '/add', params={'name': name}).raise_for_status()
        events = client.read_until(has_names(40), timeout=30)
        assert data(client) == names
        assert not resets(events)
        assert hub.listener.connections > 10, hub.listener.connections
    finally:
        client.close()


def test_commit_order_when_the_first_to_notify_commits_last(pg_app, pg_engine, live):
    app, hub, settings = pg_app
    url = live(app, threads=8)
    client = SSEClient(url + '/feed')
    gate = 'order-%d' % id(client)
    notified, release = GATES.setdefault(gate, (threading.Event(), threading.Event()))
    try:
        client.read_until(lambda events: any('id' in e for e in events))
        t1 = threading.Thread(target=httpx.get, args=(url + '/hold',),
                              kwargs={'params': {'name': 't1', 'gate': gate}, 'timeout': 30})
        t1.start()
        assert notified.wait(10)  # T1 inserted its event first ...
        httpx.get(url + '/add', params={'name': 't2'}).raise_for_status()  # T2 commits
        client.read_until(has_names(1))
        assert data(client) == ['t2']  # T2's event is out while T1 is open
        release.set()  # ... and T1 commits last
        t1.join(20)
        client.read_until(has_names(2))
        assert data(client) == ['t2', 't1']
        t2_id, t1_id = [e['id'] for e in client.data_events()]
        assert int(t2_id) < int(t1_id)
        with pg_engine.connect() as conn:
            keys = dict(conn.execute(text(
                "SELECT data::json->>'name', id FROM %s WHERE channel = 'users'"
                % settings['tgstream.live.table'])).all())
        assert keys['t1'] < keys['t2'], 'T1 was not the first to insert'
    finally:
        release.set()
        client.close()
        GATES.pop(gate, None)
    # a client that saw T2 (and not T1) reconnects: it gets T1
    again = SSEClient(url + '/feed', headers={'Last-Event-ID': t2_id})
    try:
        events = again.read_until(has_names(1))
        assert data(again) == ['t1'] and not resets(events)
    finally:
        again.close()


def test_current_id_then_listen_has_no_gap_and_no_duplicate(pg_app, live):
    app, hub, settings = pg_app
    url = live(app, threads=8)
    httpx.get(url + '/add', params={'name': 'before'}).raise_for_status()
    rendered = httpx.get(url + '/current').json()['id']
    # committed after the render, before the page subscribes
    httpx.get(url + '/add', params={'name': 'between'}).raise_for_status()
    client = SSEClient(url + '/feed?last_event_id=' + rendered)
    try:
        client.read_until(has_names(1))
        httpx.get(url + '/add', params={'name': 'after'}).raise_for_status()
        events = client.read_until(has_names(2))
        assert data(client) == ['between', 'after'] and not resets(events)
    finally:
        client.close()


def test_several_channels_on_one_stream_in_commit_order(pg_app, live):
    app, hub, settings = pg_app
    url = live(app, threads=8)
    client = SSEClient(url + '/feed?channel=a&channel=b')
    try:
        client.read_until(lambda events: any('id' in e for e in events))
        for channel, name in (('a', 'a1'), ('c', 'c1'), ('b', 'b1'), ('a', 'a2')):
            httpx.get(url + '/add', params={'name': name, 'channel': channel}).raise_for_status()
        client.read_until(has_names(3))
        assert data(client) == ['a1', 'b1', 'a2']
        first = client.data_events()[0]['id']
    finally:
        client.close()
    again = SSEClient(url + '/feed?channel=b&channel=a', headers={'Last-Event-ID': first})
    try:
        events = again.read_until(has_names(2))
        assert data(again) == ['b1', 'a2'] and not resets(events)
    finally:
        again.close()


def read_to_the_end(client, timeout):
    """Read until the response ends; returns (seconds, complete)."""
    import time

    began = time.monotonic()
    try:
        while time.monotonic() - began < timeout:
            client.buffer += next(client.chunks)
    except StopIteration:
        return time.monotonic() - began, True
    except httpx.HTTPError:
        return time.monotonic() - began, False
    return time.monotonic() - began, False


def test_sigterm_ends_every_stream_cleanly_and_clients_resume(pg_engine, pg_url):
    settings = pg_live_settings(pg_engine, pg_url, **{'tgstream.sse.keepalive': '0.2'})
    with pg_engine.connect() as conn:
        schema = conn.scalar(text('SELECT current_schema()'))
    env = {'TGSTREAM_LIVE_APP': json.dumps(
        {'url': pg_url, 'schema': schema, 'settings': settings})}
    with serve_gunicorn('tests.liveapp:wsgi_app()', threads=8, env=env, cwd=ROOT,
                        ready_path='/current', args=['--graceful-timeout', '30']) as old:
        clients = [SSEClient(old.url + '/feed') for _ in range(3)]
        try:
            for client in clients:
                client.read_until(lambda events: any('id' in e for e in events))
            httpx.get(old.url + '/add', params={'name': 'before'}).raise_for_status()
            for client in clients:
                client.read_until(has_names(1))
            old.process.terminate()  # SIGTERM to gunicorn's master
            for client in clients:
                seconds, complete = read_to_the_end(client, 10)
                # well before the graceful timeout (30 s), the response terminated
                assert complete and seconds < 5, (seconds, complete)
                last = client.events()[-1]
                assert last[':'] == 'end' and 2000 <= int(last['retry']) <= 4000
            last_ids = [client.data_events()[-1]['id'] for client in clients]
            assert old.process.wait(10) == 0
        finally:
            for client in clients:
                client.close()
    # committed while no process ran; the clients reconnect to a new one
    with process(pg_engine, pg_url, settings) as new:
        httpx.get(new.url + '/add', params={'name': 'during'}).raise_for_status()
        for last_id in last_ids:
            again = SSEClient(new.url + '/feed', headers={'Last-Event-ID': last_id})
            try:
                events = again.read_until(has_names(1))
                assert data(again) == ['during'] and not resets(events)
            finally:
                again.close()


def test_sigterm_to_waitress_ends_streams_then_the_process(pg_engine, pg_url):
    import re
    import subprocess
    import sys

    settings = pg_live_settings(pg_engine, pg_url, **{'tgstream.sse.keepalive': '0.2'})
    with pg_engine.connect() as conn:
        schema = conn.scalar(text('SELECT current_schema()'))
    env = {**os.environ, 'TGSTREAM_LIVE_APP': json.dumps(
        {'url': pg_url, 'schema': schema, 'settings': settings})}
    server = subprocess.Popen(
        [sys.executable, '-m', 'waitress', '--listen=127.0.0.1:0', '--threads=8',
         '--call', 'tests.liveapp:wsgi_app'],
        cwd=ROOT, env=env, stderr=subprocess.STDOUT, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    # waitress logs "Serving on http://127.0.0.1:<port>"; read on a thread
    # (bounded wait), so a server that never says it cannot hang the test
    reader = threading.Thread(target=lambda: lines.extend(server.stdout or ()), daemon=True)
    reader.start()
    try:
        import time

        deadline = time.monotonic() + 30
        while not any('Serving on' in line for line in lines):
            assert server.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.05)
        url = re.search(r'http://127\.0\.0\.1:\d+', ''.join(lines)).group(0)
        client = SSEClient(url + '/feed')
        try:
            client.read_until(lambda events: any('id' in e for e in events))
            server.terminate()
            seconds, complete = read_to_the_end(client, 10)
            assert complete and seconds < 5, (seconds, complete)
            assert 'retry' in client.events()[-1]
        finally:
            client.close()
        assert server.wait(10) == -15  # then the default action ended it
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
