"""On the wire too, a request that does not stream is the same with tgstream.

The apps of ``tests/test_ecosystem.py`` and ``tests/test_invisible.py`` are
served by waitress with and without tgstream; the raw HTTP responses (status
line, headers in order, body; only ``Date`` removed and the server's port
replaced) must be identical.
"""
from __future__ import annotations

import socket

import pytest

from tests.test_ecosystem import build, cornice_setup, predicate_setup
from tests.test_invisible import build_pair

pytestmark = pytest.mark.live


def raw_exchange(url: str, method: str, path: str, body: bytes = b'',
                 content_type: str | None = None) -> bytes:
    host, port = url.split('//', 1)[1].split(':')
    lines = ['%s %s HTTP/1.1' % (method, path), 'Host: %s:%s' % (host, port),
             'Connection: close', 'Content-Length: %d' % len(body)]
    if content_type:
        lines.append('Content-Type: %s' % content_type)
    request = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b''.join(chunks)
    head, _, rest = raw.partition(b'\r\n\r\n')
    head = b'\r\n'.join(line for line in head.split(b'\r\n')
                        if not line.lower().startswith(b'date:'))
    # redirects name the server: its port is the only legitimate difference
    return (head + b'\r\n\r\n' + rest).replace(b':' + port.encode(), b':PORT')


def compare(live, apps, requests):
    urls = [live(app) for app in apps]
    for request in requests:
        without, with_ = (raw_exchange(url, *request) for url in urls)
        assert with_ == without, request
        assert without.startswith(b'HTTP/1.1 ')


def test_cornice_on_the_wire(live):
    compare(live, [build(cornice_setup, False), build(cornice_setup, True)], [
        ('GET', '/items'),
        ('POST', '/items', b'{"n": 1}', 'application/json'),
        ('POST', '/items', b'n=1', 'text/plain'),
        ('GET', '/items'),
    ])


def test_content_type_predicate_on_the_wire(live):
    compare(live, [build(predicate_setup, False), build(predicate_setup, True)], [
        ('POST', '/upload', b'[1]', 'application/json'),
        ('POST', '/upload', b'a,b', 'text/csv'),
        ('POST', '/upload', b'x', 'text/plain'),
    ])


def test_cookiecutter_app_on_the_wire(live, tmp_path):
    pair = build_pair(tmp_path)
    try:
        compare(live, [app for app, _, _ in pair], [
            ('GET', '/json'),
            ('HEAD', '/json'),
            ('POST', '/write?id=60'),
            ('GET', '/vetoed'),
            ('GET', '/failing'),
            ('GET', '/redirect'),
            ('GET', '/retried'),
            ('GET', '/callbacks'),
            ('GET', '/file_response'),
            ('GET', '/nowhere'),
        ])
    finally:
        for _, engine, _ in pair:
            engine.dispose()
