"""Slow and vanishing clients on waitress.

- A client that reads slowly: waitress blocks the stream once
  ``outbuf_high_watermark`` bytes wait for the client, so the server holds
  at most that much (the demo sets 1 MiB; waitress' default is 16 MiB per
  connection).
- A client that leaves while the stream pauses: with
  ``channel_request_lookahead`` waitress notices at once, and tgstream checks
  ``environ['waitress.client_disconnected']`` between items and before the
  commit: the stream is closed and aborted when the pause ends, without
  sending or committing anything more.
"""
from __future__ import annotations

import socket
import struct
import time

import pytest
from pyramid.config import Configurator
from sqlalchemy import func, select

from tgstream.testing import disconnect_after, record_streams, serve

from .app import Row
from .conftest import WAITRESS, running

pytestmark = [pytest.mark.slow, pytest.mark.live]

CHUNK = 64 * 1024
MiB = 1024 * 1024
DEMO_WATERMARK = WAITRESS['outbuf_high_watermark']


def big_stream_app(produced: dict):
    def big(request):
        chunk = b'x' * CHUNK
        for _ in range(40 * MiB // CHUNK):   # bounded: 40 MiB at most
            produced['bytes'] += CHUNK
            yield chunk

    with Configurator() as config:
        config.include('tgstream')
        config.add_route('big', '/big')
        config.add_view(big, route_name='big', stream=True)
        return config.make_wsgi_app()


def pending_output(server) -> int:
    """Bytes waitress holds for its client connections (its output buffers)."""
    return sum(getattr(channel, 'total_outbufs_len', 0)
               for channel in list(server.server._map.values()))


def read_slowly(server, seconds: float = 1.0):
    """Read 16 KiB every 10 ms for ``seconds``, then stop reading for 0.5 s.

    Returns (socket, bytes read). A small receive buffer keeps the kernel's
    share of what is in flight small.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect((server.host, server.port))
    sock.sendall(b'GET /big HTTP/1.1\r\nHost: test\r\n\r\n')
    read = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        read += len(sock.recv(16 * 1024))
        time.sleep(0.01)
    time.sleep(0.5)   # the producer runs ahead as far as waitress lets it
    return sock, read


def reset(sock) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    sock.close()


@pytest.mark.parametrize('watermark', [DEMO_WATERMARK, 16 * MiB],
                         ids=['demo-watermark', 'waitress-default'])
def test_a_slow_reader_keeps_server_memory_bounded(watermark):
    produced = {'bytes': 0}
    app = big_stream_app(produced)
    with record_streams(app) as streams, serve(app, outbuf_high_watermark=watermark) as server:
        sock, read = read_slowly(server)
        held = pending_output(server)
        ahead = produced['bytes'] - read
        reset(sock)
        event = streams.assert_disconnected('/big', timeout=10)
    assert event.transaction == 'not managed'
    if watermark == DEMO_WATERMARK:
        assert DEMO_WATERMARK <= 2 * MiB, 'the demo should bound slow clients tightly'
        # waitress' buffers: the watermark plus the chunk being written
        assert held <= watermark + 2 * CHUNK
        # everything else in flight is in the kernel's socket buffers
        assert ahead <= watermark + 8 * MiB
    else:
        # the contrast: with waitress' default the server runs far ahead
        assert held > 8 * MiB
    print('\nwatermark %d MiB: server held %.1f MiB, produced %.1f MiB ahead of the client'
          % (watermark // MiB, held / MiB, ahead / MiB))


def rows_of(engine, stream: int) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Row).where(Row.stream == stream))


PAUSE = 1.0


def test_a_client_gone_during_a_pause_is_noticed_when_it_ends(database):
    assert WAITRESS['channel_request_lookahead'] >= 1   # the demo's setting
    with running('waitress', database) as (url, engine, app):
        path = '/write?s=1&n=30&pause_after=2&pause_for=%s' % PAUSE
        disconnect_after(url + path, b's1:2\n')   # then the stream pauses
        left = time.monotonic()
        (event,) = app.recorder.wait(1, '/write', timeout=PAUSE + 10)
        assert event.outcome == 'disconnected' and event.transaction == 'aborted'
        # closed as the pause ended, before anything more was sent
        assert event.stream.ended_at - left < PAUSE + 0.5
        assert event.items == 3
        assert rows_of(engine, 1) == 0
        assert engine.pool.checkedout() == 0
        assert database.idle_in_transaction() == 0
