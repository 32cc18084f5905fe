"""What the client sees on the wire (waitress)."""
from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

import tgstream
from tests.handshake import Handshake

from .conftest import read_timed

pytestmark = pytest.mark.live


def app_with(make_app, **views):
    def setup(config):
        for name, view in views.items():
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, stream=True)

    return make_app(setup)


def test_items_arrive_as_they_are_yielded(make_app, live):
    handshake = Handshake()

    def slow(request):
        for n in range(5):
            yield '%d\n' % n
            # go on only once the client has the item; the pause is longer
            # than tgstream.flush_interval, so the next item goes at once too
            handshake.wait_for(b'%d\n' % n)
            time.sleep(0.06)

    url = live(app_with(make_app, slow=slow))
    response, chunks, complete = handshake.read(url + '/slow')
    assert complete and response.status_code == 200
    assert b''.join(c for _, c in chunks) == b'0\n1\n2\n3\n4\n'
    assert 'content-length' not in response.headers
    assert handshake.late == []  # every item was on the wire before the next
    assert len(chunks) >= 5


def test_error_after_first_item_cuts_the_response(make_app, live, tgstream_log):
    def boom(request):
        yield 'partial\n'
        yield tgstream.flush
        raise RuntimeError('secret detail')

    def fine(request):
        yield 'fine'

    url = live(app_with(make_app, boom=boom, fine=fine))
    response, chunks, complete = read_timed(url + '/boom')
    assert response.status_code == 200
    assert not complete
    body = b''.join(c for _, c in chunks)
    assert body == b'partial\n'
    assert b'secret' not in body
    assert httpx.get(url + '/fine').text == 'fine'
    assert any('GET /boom' in r.getMessage() for r in tgstream_log.records)


def test_concurrent_streams_see_their_own_request(make_app, live):
    def echo(request):
        for _ in range(5):
            time.sleep(0.01)
            yield tgstream.request.params['n'] + ','
            yield tgstream.flush

    url = live(app_with(make_app, echo=echo), threads=20)

    def fetch(n):
        return n, httpx.get('%s/echo?n=%d' % (url, n), timeout=20).text

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(fetch, range(20)))
    for n, text in results:
        assert text == ('%d,' % n) * 5
