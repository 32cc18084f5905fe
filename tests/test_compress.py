"""``tgstream.compress``: gzip only for a client whose ``Accept-Encoding``
asks for it (a raw WSGI call on a real Pyramid app -- WebTest decodes gzip
itself; the wire: tests/live/test_compress_wire.py)."""
from __future__ import annotations

import gzip

import pytest

from tests.compare import exchange


def _call(make_app, accept):
    def setup(config):
        def rows(request):
            yield 'row 1\n'
            yield 'row 2\n'

        config.add_route('rows', '/rows')
        config.add_view(rows, route_name='rows', stream=True)

    app = make_app(setup, settings={'tgstream.compress': 'true'})
    status, headers, body = exchange(
        app, 'GET', '/rows', headers={} if accept is None else {'Accept-Encoding': accept})
    return dict(headers), body


@pytest.mark.parametrize('accept', [None, '', 'identity', 'br', 'gzip;q=0', 'deflate'])
def test_no_gzip_unless_asked(make_app, accept):
    # no header at all (plain curl, many HTTP libraries): WebOb reads it as
    # "anything"; tgstream sends the body as it is
    headers, body = _call(make_app, accept)
    assert 'Content-Encoding' not in headers
    assert body == b'row 1\nrow 2\n'
    assert 'Accept-Encoding' in headers['Vary']


@pytest.mark.parametrize('accept', ['gzip', 'gzip, deflate, br', 'br;q=1, gzip;q=0.5', '*'])
def test_gzip_when_asked(make_app, accept):
    headers, body = _call(make_app, accept)
    assert headers['Content-Encoding'] == 'gzip'
    assert gzip.decompress(body) == b'row 1\nrow 2\n'
