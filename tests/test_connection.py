"""tgstream.connection on real sockets (TCP on 127.0.0.1): the FIN peek, the
reset, the server handles, the warning where there is none. The same
behaviour through each real server: tests/live/test_servers_matrix.py."""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
import time

import pytest

import tgstream.connection as connection_module
from tests.dbapp import User, build_db_app, count_users, seed_users
from tgstream.connection import (
    PROBE_PAUSE,
    Connection,
    client_probe,
    close_delimited,
    connection_of,
    cut,
    uncuttable_server,
)
from tgstream.testing import open_stream, record_streams


@pytest.fixture
def pair():
    """(server side, client side) of one TCP connection on 127.0.0.1."""
    listener = socket.create_server(('127.0.0.1', 0))
    client = socket.create_connection(listener.getsockname(), timeout=5)
    server, _ = listener.accept()
    listener.close()
    yield server, client
    for sock in (server, client):
        sock.close()


def rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    sock.close()


def test_a_connection_with_a_client_is_not_gone(pair):
    server, client = pair
    assert Connection('gunicorn', server.fileno()).client_gone() is False


def test_data_from_the_client_is_peeked_not_read(pair):
    server, client = pair
    client.sendall(b'GET /next HTTP/1.1\r\n')  # a pipelined request
    time.sleep(0.01)
    assert Connection('gunicorn', server.fileno()).client_gone() is False
    assert server.recv(100) == b'GET /next HTTP/1.1\r\n'


def test_a_fin_is_seen(pair):
    server, client = pair
    client.close()
    time.sleep(0.01)
    assert Connection('gunicorn', server.fileno()).client_gone() is True


def test_a_reset_is_seen(pair):
    server, client = pair
    connection = Connection('gunicorn', server.fileno())
    rst(client)
    time.sleep(0.01)
    assert connection.client_gone() is True


def test_the_peek_never_waits_and_leaves_the_servers_socket_as_it_was(pair):
    server, client = pair
    # a socket with a timeout polls before recv(); a gevent socket waits on
    # EAGAIN: the peek must do neither, nor change the socket's mode
    server.settimeout(5)
    flags = fcntl.fcntl(server.fileno(), fcntl.F_GETFL)
    start = time.monotonic()
    assert Connection('gunicorn', server.fileno()).client_gone() is False
    assert time.monotonic() - start < 1
    assert fcntl.fcntl(server.fileno(), fcntl.F_GETFL) == flags
    assert server.gettimeout() == 5


def test_the_peek_ignores_a_default_timeout(pair):
    server, client = pair
    flags = fcntl.fcntl(server.fileno(), fcntl.F_GETFL)
    socket.setdefaulttimeout(5)
    try:
        start = time.monotonic()
        assert Connection('gunicorn', server.fileno()).client_gone() is False
        assert time.monotonic() - start < 1
    finally:
        socket.setdefaulttimeout(None)
    assert fcntl.fcntl(server.fileno(), fcntl.F_GETFL) == flags


def test_the_probe_peeks_only_after_a_pause(pair, monkeypatch):
    server, client = pair
    connection = Connection('gunicorn', server.fileno())
    assert connection.client_gone_after_pause() is False  # peeked
    client.close()
    time.sleep(0.01)
    monkeypatch.setattr(connection_module, 'PROBE_PAUSE', 3600.0)
    assert connection.client_gone_after_pause() is False  # asked just now: no peek
    connection._asked -= 7200.0  # the last question was long ago: a pause
    assert connection.client_gone_after_pause() is True


def test_abort_makes_the_servers_close_a_reset(pair):
    server, client = pair
    server.sendall(b'partial')
    assert Connection('gunicorn', server.fileno()).abort() is True
    server.close()
    assert client.recv(100) == b'partial'  # what was sent still arrives
    with pytest.raises(ConnectionResetError):
        client.recv(100)


def test_abort_now_resets_before_the_server_closes(pair):
    server, client = pair
    server.sendall(b'partial')
    assert Connection('werkzeug', server.fileno()).abort(now=True) is True
    assert client.recv(100) == b'partial'
    with pytest.raises(ConnectionResetError):
        client.recv(100)
    # the server's later shutdown and close do not raise out of it
    with pytest.raises(OSError):
        server.sendall(b'more')


def test_a_descriptor_reused_by_another_connection_is_never_touched(pair):
    server, client = pair
    connection = Connection('gunicorn', server.fileno())
    number = server.fileno()
    server.close()
    client.close()
    # another connection, on the same descriptor number if the OS reuses it
    listener = socket.create_server(('127.0.0.1', 0))
    other_client = socket.create_connection(listener.getsockname(), timeout=5)
    other, _ = listener.accept()
    try:
        if other.fileno() != number:
            os.dup2(other.fileno(), number)
        assert connection.abort(now=True) is False
        assert connection.client_gone() is True
        other.sendall(b'still here')
        assert other_client.recv(100) == b'still here'
    finally:
        if other.fileno() != number:
            os.close(number)
        for sock in (listener, other, other_client):
            sock.close()


@pytest.mark.parametrize('key, server', [
    ('gunicorn.socket', 'gunicorn'),
    ('werkzeug.socket', 'werkzeug'),
    ('cheroot.socket', 'cheroot'),
])
def test_the_servers_handles_are_found(pair, key, server):
    environ = {key: pair[0]}
    found = connection_of(environ)
    assert (found.server, found.fileno) == (server, pair[0].fileno())
    assert connection_of(environ) is found  # once per request
    assert client_probe(environ) == found.client_gone_after_pause


def test_no_handle_no_connection():
    assert connection_of({}) is None
    assert client_probe({}) is None
    probe = lambda: False  # noqa: E731
    assert client_probe({'waitress.client_disconnected': probe}) is probe


def test_close_delimited_is_what_the_server_answers():
    assert close_delimited({'SERVER_PROTOCOL': 'HTTP/1.0'})
    assert not close_delimited({'SERVER_PROTOCOL': 'HTTP/1.1'})
    # werkzeug answers HTTP/1.0 unless threaded or forking
    werkzeug = {'SERVER_PROTOCOL': 'HTTP/1.1', 'werkzeug.socket': None}
    assert close_delimited({**werkzeug, 'wsgi.multithread': False, 'wsgi.multiprocess': False})
    assert not close_delimited({**werkzeug, 'wsgi.multithread': True, 'wsgi.multiprocess': False})
    # cheroot says what it speaks
    assert close_delimited({'SERVER_PROTOCOL': 'HTTP/1.1', 'ACTUAL_SERVER_PROTOCOL': 'HTTP/1.0'})


def test_mod_wsgi_in_daemon_mode_cannot_be_cut():
    assert uncuttable_server({'mod_wsgi.version': (6, 1, 1), 'mod_wsgi.process_group': 'app'}) == \
        'mod_wsgi (daemon mode)'
    # embedded mode: Apache itself leaves out the last chunk
    assert uncuttable_server({'mod_wsgi.version': (6, 1, 1), 'mod_wsgi.process_group': ''}) is None
    assert uncuttable_server({'gunicorn.socket': None}) is None


@pytest.fixture
def warned(monkeypatch):
    monkeypatch.setattr(connection_module, '_warned', set())


def test_cut_warns_once_per_server_where_it_cannot(warned, caplog):
    environ = {'mod_wsgi.version': (6, 1, 1), 'mod_wsgi.process_group': 'app',
               'SERVER_PROTOCOL': 'HTTP/1.1'}
    with caplog.at_level(logging.WARNING, logger='tgstream'):
        cut(environ, 'export')
        cut(dict(environ), 'export')
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert warnings == [
        'stream export failed on mod_wsgi (daemon mode), which ends the response as if it were '
        'complete: the client cannot tell it was cut (see "Failed streams on each server" in '
        'tgstream\'s production docs)'
    ]


def test_cut_warns_for_a_close_delimited_response_without_a_handle(warned, caplog):
    with caplog.at_level(logging.WARNING, logger='tgstream'):
        cut({'SERVER_PROTOCOL': 'HTTP/1.0'}, 'export')
    assert any('close-delimited HTTP/1.0 response' in r.getMessage() for r in caplog.records)


def test_cut_resets_where_it_can_and_says_nothing(warned, caplog, pair):
    server, client = pair
    with caplog.at_level(logging.WARNING, logger='tgstream'):
        cut({'SERVER_PROTOCOL': 'HTTP/1.0', 'gunicorn.socket': server}, 'export')
    assert not caplog.records
    with pytest.raises(ConnectionResetError):  # close-delimited: at once
        client.recv(100)


# -- through a stream ---------------------------------------------------------


@pytest.fixture
def engine(sqlite_engine):
    seed_users(sqlite_engine)
    return sqlite_engine


def _pausing_app(engine, paused):
    def view(request):
        request.dbsession.add(User(id=10, name='paused'))
        yield 'first\n'
        paused()  # the client leaves here
        time.sleep(PROBE_PAUSE * 2)

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', stream=True)

    return build_db_app(engine, setup)


def test_a_client_gone_during_a_pause_aborts_before_the_commit(engine, pair):
    server, client = pair
    app = _pausing_app(engine, client.close)
    with record_streams(app) as streams:
        response = open_stream(app, '/v', environ={'gunicorn.socket': server})
        assert response.read(1) == b'first\n'
        with pytest.raises(Exception):  # noqa: B017 - the server's "client gone" error
            response.next_chunk()
        response.close()
        event = streams.assert_disconnected('/v', count=1)
    assert event.transaction == 'aborted'
    assert count_users(engine) == 5


def test_a_client_still_there_commits(engine, pair):
    server, client = pair
    app = _pausing_app(engine, lambda: None)
    with record_streams(app) as streams:
        response = open_stream(app, '/v', environ={'gunicorn.socket': server})
        assert response.read() == b'first\n'
        response.close()
        streams.assert_committed('/v', count=1)
    assert count_users(engine) == 6
