"""More concurrent streams holding a connection than the pool has slots:
non-stream requests get a connection or a clear pool-timeout error (503);
nothing deadlocks or hangs, and everything is released afterwards."""
from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tests.live.test_transaction_wire import wait_for as wait_until

from . import app as stress_app
from .conftest import running, stats
from .test_load import check_threads

pytestmark = [pytest.mark.slow, pytest.mark.live]

SLOTS = 2
HOLDERS = 4
POOL = {'pool_size': SLOTS, 'max_overflow': 0, 'pool_timeout': 1}


def fetch(url: str) -> tuple[int | None, bytes, float]:
    """(status, body, seconds); status None when the stream was cut."""
    start = time.monotonic()
    body = b''
    with httpx.Client(timeout=30) as client:
        try:
            with client.stream('GET', url) as response:
                for chunk in response.iter_bytes():
                    body += chunk
        except httpx.RemoteProtocolError:
            return None, body, time.monotonic() - start
    return response.status_code, body, time.monotonic() - start


@pytest.mark.parametrize('policy', ['stream', 'view'])
def test_more_holding_streams_than_pool_slots(database, policy):
    stress_app.release.clear()
    settings = {'tgstream.transaction': policy}
    with running('waitress', database, settings, pool=POOL) as (url, engine, _):
        with concurrent.futures.ThreadPoolExecutor(HOLDERS + 3) as pool:
            holders = [pool.submit(fetch, url + '/hold') for _ in range(HOLDERS)]
            # the pool is saturated once every slot is held by a stream
            assert wait_until(lambda: engine.pool.checkedout() == SLOTS)
            assert wait_until(lambda: sum(h.done() for h in holders) == HOLDERS - SLOTS)
            # non-stream requests meanwhile: a clear error, in bounded time
            others = [pool.submit(fetch, url + '/count') for _ in range(3)]
            for status, body, seconds in (o.result(timeout=20) for o in others):
                assert status == 503
                assert b'connection pool timeout' in body
                assert seconds < 1 + 4   # pool_timeout + a generous margin
            stress_app.release.set()
            results = [h.result(timeout=20) for h in holders]

    held = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert len(held) == SLOTS
    assert all(body.endswith(b'released\n') for _, body, _ in held)
    for status, body, _ in refused:
        if policy == 'stream':
            # the connection is taken in the view: a normal error response
            assert status == 503 and b'connection pool timeout' in body
        else:
            # 'view': the stream takes a connection again after its first
            # item -- either it waits in the view (503) or, mid-stream, it
            # is cut
            assert (status == 503 and b'connection pool timeout' in body) or (
                status is None and body.startswith(b'rows=') and b'released' not in body)
    assert engine.pool.checkedout() == 0
    assert database.idle_in_transaction() == 0


def test_pool_recovers_after_pressure(database):
    """After the holders are gone, every thread is clean and requests pass."""
    stress_app.release.clear()
    with running('waitress', database, pool=POOL) as (url, engine, _):
        with concurrent.futures.ThreadPoolExecutor(HOLDERS) as pool:
            holders = [pool.submit(fetch, url + '/hold') for _ in range(HOLDERS)]
            assert wait_until(lambda: engine.pool.checkedout() == SLOTS)
            stress_app.release.set()
            statuses = sorted(h.result(timeout=20)[0] for h in holders)
        assert statuses.count(200) >= SLOTS
        assert wait_until(lambda: stats(url)['checkedout'] == 0)
        check_threads(url)
        assert httpx.get(url + '/count', timeout=10).status_code == 200
