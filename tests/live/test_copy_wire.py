"""``stream_copy`` through a real waitress server on PostgreSQL: a failure
mid-COPY cuts the response and aborts; a client that leaves cancels the
COPY on the server (pg_stat_activity)."""
from __future__ import annotations

import socket
import struct
import time

import httpx
import pytest
import zope.sqlalchemy
from sqlalchemy import func, insert, literal_column, select, text

import tgstream
from tests.dbapp import User, build_db_app, count_users, seed_users

pytestmark = [pytest.mark.live, pytest.mark.postgresql]

#: rows 1..40 000, the row 20 000 held ``{sleep}`` seconds by the server
SLOW = ("SELECT n, CASE WHEN n = 20000 THEN pg_sleep({sleep})::text END AS s "
        "FROM generate_series(1, 40000) AS n")


@pytest.fixture
def engine(pg_engine):
    seed_users(pg_engine)
    return pg_engine


def app_name(engine) -> str:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT current_setting('application_name')"))


def copies(engine, name: str) -> list:
    """The active COPY statements of this test's sessions."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT pid, state FROM pg_stat_activity WHERE application_name = :name "
            "AND state = 'active' AND query LIKE 'COPY %'"), {'name': name}).all()


def wait_for(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def copy_app(engine, statement, before=None):
    def export(request):
        request.dbsession.execute(insert(User.__table__).values(id=100, name='written'))
        zope.sqlalchemy.mark_changed(request.dbsession)
        if before is not None:
            request.dbsession.execute(text(before))
        return tgstream.stream_copy(request.dbsession, statement)

    def setup(config):
        config.add_route('export', '/export')
        config.add_view(export, route_name='export', renderer='csv', stream=True)

    return build_db_app(engine, setup)


def read(url, on_first_chunk=None, timeout=15.0):
    """(body, complete): complete is False when the server cut the body."""
    body = b''
    with httpx.Client(timeout=timeout) as client:
        with client.stream('GET', url) as response:
            assert response.status_code == 200
            try:
                for chunk in response.iter_raw():
                    if not body and on_first_chunk is not None:
                        on_first_chunk()
                    body += chunk
            except httpx.RemoteProtocolError:
                return body, False
    return body, True


def test_a_whole_export_through_the_server(engine, live):
    statement = select(literal_column('n')).select_from(
        text('generate_series(1, 50000) AS n'))
    url = live(copy_app(engine, statement))
    body, complete = read(url + '/export')
    assert complete
    assert body == b'n\n' + b''.join(b'%d\n' % n for n in range(1, 50001))
    assert count_users(engine) == 6  # the view's row, committed after the stream


def _slow(sleep):
    return select(literal_column('n'), literal_column('s')).select_from(
        text('(%s) AS slow' % SLOW.format(sleep=sleep)))


def test_statement_timeout_mid_copy_cuts_and_aborts(engine, live, tgstream_log):
    url = live(copy_app(engine, _slow(30), before="SET LOCAL statement_timeout = '2s'"))
    body, complete = read(url + '/export')
    assert not complete
    # whole rows, in order, up to what the server had sent before row 20 000
    lines = body.split(b'\n')
    assert lines[0] == b'n,s' and lines[-1] == b''
    assert lines[1:-1] == [b'%d,' % n for n in range(1, len(lines) - 1)]
    assert 1000 < len(lines) - 2 < 20000  # (row 20 000 never came)
    assert count_users(engine) == 5  # aborted: the view's row is gone
    assert 'canceling statement due to statement timeout' in tgstream_log.text
    assert wait_for(lambda: engine.pool.checkedout() == 0)


@pytest.mark.parametrize('how', ['pg_cancel_backend', 'pg_terminate_backend'])
def test_cancelled_or_killed_backend_cuts_and_aborts(engine, live, tgstream_log, how):
    name = app_name(engine)
    url = live(copy_app(engine, _slow(30)))

    def kill():
        assert wait_for(lambda: copies(engine, name)), 'no COPY running'
        with engine.connect() as conn:
            for pid, _ in copies(engine, name):
                assert conn.scalar(text('SELECT %s(:pid)' % how), {'pid': pid})

    body, complete = read(url + '/export', on_first_chunk=kill)
    assert not complete and body.startswith(b'n,s\n1,\n')
    assert count_users(engine) == 5
    assert wait_for(lambda: not copies(engine, name))
    # the server goes on serving (a dead connection was dropped from the pool)
    body, complete = read(url + '/export', on_first_chunk=kill)
    assert not complete


def test_a_client_that_leaves_cancels_the_copy(engine, live):
    name = app_name(engine)
    endless = select(func.generate_series(1, 10 ** 9).label('n'))
    url = live(copy_app(engine, endless), outbuf_high_watermark=1 << 20)
    port = int(url.rsplit(':', 1)[1])
    sock = socket.create_connection(('127.0.0.1', port), timeout=10)
    try:
        sock.sendall(b'GET /export HTTP/1.1\r\nHost: x\r\n\r\n')
        received = b''
        while b'\n100000\n' not in received:
            data = sock.recv(65536)
            assert data, 'the response ended early'
            received += data
        running = copies(engine, name)
        assert running, 'the COPY is not running while the client reads'
    finally:  # a reset, as a crashed client or a closed tab
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.close()
    assert wait_for(lambda: not copies(engine, name)), (
        'the COPY still runs after the client left: %r' % copies(engine, name))
    assert wait_for(lambda: count_users(engine) == 5)  # aborted
    assert wait_for(lambda: engine.pool.checkedout() == 0)
