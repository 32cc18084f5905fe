"""Transactions through a real waitress server: truncation and disconnects."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

import tgstream
from tests.dbapp import User, build_db_app, count_users, seed_users

from .conftest import read_timed

pytestmark = pytest.mark.live


@pytest.fixture
def engine(any_engine):
    seed_users(any_engine)
    return any_engine


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def app_for(engine, **views):
    def setup(config):
        for name, view in views.items():
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, stream=True)

    return build_db_app(engine, setup)


def test_mid_stream_error_truncates_and_commits_nothing(engine, live, tgstream_log):
    def boom(request):
        request.dbsession.add(User(id=10, name='view'))
        yield '['
        yield tgstream.flush
        request.dbsession.add(User(id=11, name='stream'))
        request.dbsession.flush()
        raise RuntimeError('boom')

    def users(request):
        yield str(request.dbsession.scalar(select(func.count()).select_from(User)))

    url = live(app_for(engine, boom=boom, users=users))
    response, chunks, complete = read_timed(url + '/boom')
    assert response.status_code == 200 and not complete
    assert b''.join(c for _, c in chunks) == b'['
    assert httpx.get(url + '/users').text == '5'
    assert wait_for(lambda: engine.pool.checkedout() == 0)


def test_commit_failure_truncates_on_the_wire(engine, live, tgstream_log):
    def dup(request):
        yield 'start\n'
        yield tgstream.flush
        request.dbsession.add(User(id=10, name='user1'))   # unique violation at commit
        yield 'end\n'

    url = live(app_for(engine, dup=dup))
    response, chunks, complete = read_timed(url + '/dup')
    assert not complete
    # every item yielded arrives; the failed commit cuts the response
    assert b''.join(c for _, c in chunks) == b'start\nend\n'
    assert count_users(engine) == 5


def test_client_disconnect_aborts_and_releases(engine, live):
    finished = threading.Event()

    def slow(request):
        request.add_finished_callback(lambda r: finished.set())
        for n in range(10, 400):
            request.dbsession.add(User(id=n, name='u%d' % n))
            request.dbsession.flush()
            yield '%d\n' % n
            yield tgstream.flush
            time.sleep(0.01)

    url = live(app_for(engine, slow=slow))
    host, port = url.split('//')[1].split(':')
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
    received = b''
    while b'12\n' not in received:
        received += sock.recv(4096)
    sock.close()
    assert finished.wait(5), 'the stream was not closed after the disconnect'
    assert wait_for(lambda: engine.pool.checkedout() == 0)
    assert count_users(engine) == 5
