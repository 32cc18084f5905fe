"""Compression in front of a stream, end to end (waitress, httpx decompressing).

WebOb's lazy gzip in a tween: the stream is delivered and committed whole,
or cut. ``tgstream.compress``: the same, and progressive (a sync flush per
write).
"""
from __future__ import annotations

import gzip
import threading

import httpx
import pytest

import tgstream
from tests.dbapp import User, build_db_app, count_users, seed_users

pytestmark = pytest.mark.live


def webob_gzip_tween(handler, registry):
    """The usual Pyramid compression tween: WebOb's lazy gzip."""
    def tween(request):
        response = handler(request)
        if 'gzip' in request.headers.get('Accept-Encoding', ''):
            response.encode_content('gzip', lazy=True)
        return response

    return tween


@pytest.fixture
def engine(any_engine):
    seed_users(any_engine)
    return any_engine


def views(config, released=None):
    def rows(request):
        for n in range(100, 110):
            request.dbsession.add(User(id=n, name='u%d' % n))
            request.dbsession.flush()
            yield 'row %d\n' % n

    def failing(request):
        request.dbsession.add(User(id=200, name='never'))
        request.dbsession.flush()
        yield 'first\n'
        yield tgstream.flush
        raise RuntimeError('boom')

    def paced(request):
        yield 'first\n'
        assert released.wait(10), 'the client never saw the first line'
        yield 'second\n'

    def events(request):
        yield {'data': 'x'}

    for name, view in (('rows', rows), ('failing', failing), ('paced', paced)):
        config.add_route(name, '/' + name)
        config.add_view(view, route_name=name, stream=True)
    config.add_route('events', '/events')
    config.add_view(events, route_name='events', stream=True, renderer='sse')


def read(url, path, headers=None):
    """(response, decoded body, complete) with httpx decompressing."""
    body, complete = b'', True
    with httpx.Client(timeout=10) as client:
        with client.stream('GET', url + path, headers=headers) as response:
            try:
                for data in response.iter_bytes():
                    body += data
            except (httpx.RemoteProtocolError, httpx.DecodingError):
                complete = False
    return response, body, complete


def test_webob_lazy_gzip_delivers_and_commits_the_whole_stream(engine, live, tgstream_log):
    def setup(config):
        views(config)
        config.add_tween('tests.live.test_compress_wire.webob_gzip_tween')

    url = live(build_db_app(engine, setup))
    response, body, complete = read(url, '/rows')
    assert response.headers['Content-Encoding'] == 'gzip' and complete
    assert body == b''.join(b'row %d\n' % n for n in range(100, 110))
    assert count_users(engine) == 15

    response, body, complete = read(url, '/failing')
    assert response.headers['Content-Encoding'] == 'gzip'
    assert not complete, 'a failed stream must reach the client cut'
    assert count_users(engine) == 15


def test_tgstream_compress_is_progressive_and_honest(engine, live, tgstream_log):
    released = threading.Event()

    def setup(config):
        views(config, released)

    url = live(build_db_app(engine, setup, settings={'tgstream.compress': 'true'}))

    # progressive: the second line is produced only once the client has
    # decompressed the first one
    with httpx.Client(timeout=10) as client:
        with client.stream('GET', url + '/paced') as response:
            assert response.headers['Content-Encoding'] == 'gzip'
            assert 'Accept-Encoding' in response.headers['Vary']
            chunks = response.iter_bytes()
            seen = b''
            while b'first\n' not in seen:
                seen += next(chunks)
            released.set()
            seen += b''.join(chunks)
    assert seen == b'first\nsecond\n'

    response, body, complete = read(url, '/rows')
    assert complete and body.count(b'\n') == 10
    assert count_users(engine) == 15

    response, body, complete = read(url, '/failing')
    assert not complete and body.startswith(b'first\n')
    assert count_users(engine) == 15

    # no gzip for a client that does not accept it, nor for event streams
    raw = httpx.get(url + '/paced', headers={'Accept-Encoding': 'identity'})
    assert 'Content-Encoding' not in raw.headers and raw.headers['Vary'] == 'Accept-Encoding'
    assert raw.text == 'first\nsecond\n'
    sse = httpx.get(url + '/events', headers={'Accept-Encoding': 'gzip'})
    assert 'Content-Encoding' not in sse.headers and sse.text.startswith('data: ')


def test_compress_setting_is_checked():
    from pyramid.exceptions import ConfigurationError

    from tgstream.settings import parse_settings

    assert parse_settings({}).compress is False
    with pytest.raises(ConfigurationError, match='tgstream.compress'):
        parse_settings({'tgstream.compress': 'gzip'})


def test_gzip_stream_bytes_are_standard_gzip():
    from tgstream.compress import GzipStream

    class Source(list):
        closed = False

        def close(self):
            self.closed = True

    source = Source([b'a' * 100, b'b', b'', b'c\n'])
    body = GzipStream(source)
    data = b''.join(body)
    body.close()
    assert gzip.decompress(data) == b'a' * 100 + b'bc\n' and source.closed


def test_a_request_without_accept_encoding_gets_no_gzip(engine, live, tgstream_log):
    # plain curl, urllib3 without headers...: no Accept-Encoding at all
    import socket
    from urllib.parse import urlsplit

    url = live(build_db_app(engine, views, settings={'tgstream.compress': 'true'}))
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b'GET /rows HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        data = b''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    assert b'content-encoding' not in head.lower()
    assert b'row 100\n' in body and b'row 109\n' in body
