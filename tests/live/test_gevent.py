"""Under gunicorn's gevent worker: per-request state stays per request
(threadlocals, the transaction manager, a TurboGears-style scoped session),
and one process fans live events out to many concurrent SSE streams."""
from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import httpx
import pytest
import sqlalchemy

from tests.liveapp import parse_sse
from tgstream.testing.servers import serve_gunicorn

pytestmark = pytest.mark.live

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def gevent_server(pg_url):
    pytest.importorskip('gevent')
    schema = 'g_' + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(pg_url, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE SCHEMA %s' % schema)
    env = {
        'GEVENT_APP_PG_URL': pg_url,
        'GEVENT_APP_SCHEMA': schema,
        'GEVENT_APP_CHANNEL': 't_' + uuid.uuid4().hex[:12],
        'GEVENT_APP_POOL': '5',
        'GEVENT_APP_KEEPALIVE': '1',
    }
    try:
        with serve_gunicorn(
            'tests.geventapp:from_env()', workers=1, env=env, cwd=ROOT,
            args=['--worker-class', 'gevent', '--worker-connections', '1000'],
            ready_path='/stats',
        ) as server:
            yield server
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql('DROP SCHEMA %s CASCADE' % schema)
        admin.dispose()


def stats(server):
    return httpx.get(server.url + '/stats', timeout=10).json()


async def crosstalk(url, count, steps):
    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one(tag):
            response = await client.get(url + '/crosstalk', params={'tag': tag, 'steps': steps})
            return tag, response.status_code, response.text
        return await asyncio.gather(*(one('t%d' % n) for n in range(count)))


def test_per_request_state_stays_per_request_under_gevent(gevent_server):
    assert stats(gevent_server)['patched'] is True
    count, steps = 150, 8
    results = asyncio.run(crosstalk(gevent_server.url, count, steps))
    for tag, status, text in results:
        assert status == 200, (tag, status, text[-300:])
        assert text.splitlines() == ['%s:%d:ok' % (tag, step) for step in range(steps)]


async def listen_all(url, count, expect, publish):
    """``count`` SSE clients on /feed; once all are in, ``publish()``; each
    must receive exactly ``expect`` data events. Returns their data lists."""
    limits = httpx.Limits(max_connections=count + 10)
    ready = 0
    all_ready = asyncio.Event()

    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one():
            nonlocal ready
            received = b''
            async with client.stream('GET', url + '/feed') as response:
                counted = False
                async for chunk in response.aiter_raw():
                    received += chunk
                    if not counted:
                        counted = True
                        ready += 1
                        if ready == count:
                            all_ready.set()
                    data = [e['data'] for e in parse_sse(received) if 'data' in e]
                    if len(data) >= expect:
                        return data
            return [e.get('data') for e in parse_sse(received)]

        tasks = [asyncio.ensure_future(one()) for _ in range(count)]
        await asyncio.wait_for(all_ready.wait(), 60)
        await asyncio.get_running_loop().run_in_executor(None, publish)
        return await asyncio.wait_for(asyncio.gather(*tasks), 60)


def test_one_gevent_worker_fans_out_to_many_live_streams(gevent_server):
    url = gevent_server.url
    count, events = 100, 5

    def publish():
        deadline = time.monotonic() + 30
        while stats(gevent_server)['streams'] < count:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for n in range(events):
            assert httpx.get(url + '/add', params={'n': n}, timeout=10).status_code == 200

    results = asyncio.run(listen_all(url, count, events, publish))
    expected = [json.dumps({'n': n}, separators=(',', ':')) for n in range(events)]
    assert all(data == expected for data in results), results[:3]
    deadline = time.monotonic() + 20
    while stats(gevent_server)['streams']:
        assert time.monotonic() < deadline, 'live streams were not freed'
        time.sleep(0.1)
