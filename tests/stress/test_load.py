"""300 streaming requests, 30 at a time, against a real server: a third of the
clients leave mid-stream (connection reset), a sixth of the streams raise.

Afterwards the database holds exactly the rows of the streams that
completed, no connection is checked out or idle in transaction, no worker
thread has a request left on Pyramid's thread-local stack, and a normal
request is served.
"""
from __future__ import annotations

import concurrent.futures
import logging
import random
import time

import httpx
import pytest
from sqlalchemy import func, select

from tgstream.testing import disconnect_after

from .app import ITEMS, Row
from .conftest import running, stats

pytestmark = [pytest.mark.slow, pytest.mark.live]

REQUESTS = 300
CONCURRENCY = 30
THREADS = 8


def plan(seed: int = 7):
    """Stream ids 1..300, a random third leaving, a (disjoint) sixth failing."""
    ids = list(range(1, REQUESTS + 1))
    random.Random(seed).shuffle(ids)
    leaving = set(ids[:REQUESTS // 3])
    failing = set(ids[REQUESTS // 3:REQUESTS // 3 + REQUESTS // 6])
    return ids, leaving, failing


def run_client(url: str, stream: int, leaving: set, failing: set):
    """One client: returns (stream, 'left' | 'complete' | 'cut', body)."""
    if stream in leaving:
        # 400 rows 10 ms apart: only a missed disconnect lets it complete
        disconnect_after('%s/write?s=%d&n=400&hold=1' % (url, stream),
                         b's%d:1\n' % stream, timeout=60)
        return stream, 'left', b''
    query = '/write?s=%d%s' % (stream, '&fail=3' if stream in failing else '')
    body = b''
    with httpx.Client(timeout=60) as client:
        try:
            with client.stream('GET', url + query) as response:
                assert response.status_code == 200, (stream, response.read())
                for chunk in response.iter_bytes():
                    body += chunk
        except httpx.RemoteProtocolError:   # no terminating chunk: cut
            return stream, 'cut', body
    return stream, 'complete', body


def wait_for_streams(url: str, count: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = stats(url)
        if found['finished'] >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def check_threads(url: str, threads: int = THREADS) -> None:
    """Every worker thread is free and has nothing on Pyramid's stack."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        reports = list(pool.map(
            lambda _: httpx.get('%s/_diag/threads?n=%d' % (url, threads), timeout=20).json(),
            range(threads)))
    assert all(r['met'] for r in reports), 'a worker thread is stuck: %r' % reports
    assert len({r['thread'] for r in reports}) == threads
    assert [r['stack'] for r in reports] == [0] * threads, 'a request was left on a thread'


def rows_by_stream(engine_or_db) -> dict[int, int]:
    engine = engine_or_db
    with engine.connect() as conn:
        return dict(conn.execute(select(Row.stream, func.count()).group_by(Row.stream)).all())


@pytest.mark.parametrize('server', ['waitress', 'gunicorn'])
def test_load_with_disconnects_and_failures(server, database, caplog):
    caplog.set_level(logging.ERROR, logger='tgstream')
    ids, leaving, failing = plan()
    normal = set(ids) - leaving - failing
    started = time.monotonic()
    with running(server, database) as (url, engine, _):
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(lambda s: run_client(url, s, leaving, failing), ids))
        elapsed = time.monotonic() - started
        found = wait_for_streams(url, REQUESTS)

        # what the clients saw
        by_kind: dict[str, set] = {}
        for stream, kind, body in results:
            by_kind.setdefault(kind, set()).add(stream)
            if kind == 'complete':
                assert body == b''.join(b's%d:%d\n' % (stream, n) for n in range(ITEMS))
            elif kind == 'cut':   # never a complete-looking body after an error
                assert body == b''.join(b's%d:%d\n' % (stream, n) for n in range(3))
        assert by_kind == {'complete': normal, 'cut': failing, 'left': leaving}

        # what the server reports (StreamFinished, recorded by the app)
        assert found['finished'] == REQUESTS, found
        assert found['outcomes'] == {
            'completed/committed': len(normal),
            'disconnected/aborted': len(leaving),
            'error/aborted': len(failing),
        }
        assert set(found['committed']) == normal

        # the database holds exactly the rows of the completed streams
        db_engine = engine or database.engine()
        try:
            assert rows_by_stream(db_engine) == dict.fromkeys(normal, ITEMS)
        finally:
            if engine is None:
                db_engine.dispose()

        # nothing leaked
        assert stats(url)['checkedout'] == 0
        assert database.idle_in_transaction() == 0
        check_threads(url)
        assert httpx.get(url + '/count', timeout=10).text == str(len(normal) * ITEMS)
        if server == 'waitress':   # in-process: the log lines are ours to see
            failed = [r for r in caplog.records if 'outcome=error' in r.getMessage()]
            assert len(failed) == len(failing)
            assert all('transaction=aborted' in r.getMessage() for r in failed)
    print('\n%s/%s: %d requests in %.1fs' % (server, database.kind, REQUESTS, elapsed))
