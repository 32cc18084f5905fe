"""Streamed Jinja2 templates on the wire (waitress)."""
from __future__ import annotations

import httpx
import pytest
from pyramid.response import Response

from tests.handshake import Handshake

from .conftest import read_timed

pytestmark = pytest.mark.live

APP = 'tests.pkgs.templatesapp'
TOOLBAR_SETTINGS = {'debugtoolbar.hosts': '127.0.0.1 ::1'}

# 10 000 rows; the row generator pauses every 2 000 rows, a little longer
# than tgstream.flush_interval (0.3 s in all)
SLOW = '/rows?n=10000&pause=0.06'


def error_view(exc, request):
    return Response('error view: %s' % type(exc).__name__, status=500)


def template_app(make_app, toolbar=False, handshake=None):
    includes = ('tgstream', 'pyramid_jinja2', APP)
    if toolbar:
        includes = ('pyramid_debugtoolbar',) + includes
    settings = dict(TOOLBAR_SETTINGS if toolbar else {})
    if handshake is not None:
        # At each pause, the client already has the page up to the row
        # after the previous pause: the page streams, it is not buffered.
        settings['tests.before_pause'] = lambda n: handshake.wait_for(
            b'<table>' if n <= 2000 else b'<tr><td>%d</td>' % (n - 2000))
    return make_app(
        lambda config: config.add_view(error_view, context=Exception),
        settings,
        includes,
    )


def assert_progressive(url, handshake, same_as_plain=True):
    response, chunks, complete = handshake.read(url + SLOW)
    assert complete and response.status_code == 200
    assert response.headers['content-type'] == 'text/html; charset=utf-8'
    assert 'content-length' not in response.headers
    body = b''.join(chunk for _, chunk in chunks)
    if same_as_plain:
        plain = httpx.get(url + '/rows?n=10000&plain', timeout=10)
        assert body == plain.content
    assert body.count(b'<tr>') == 10000
    assert handshake.late == [], handshake.late
    assert len(chunks) >= 5
    return body


def test_a_large_template_streams_progressively(make_app, live):
    handshake = Handshake()
    assert_progressive(live(template_app(make_app, handshake=handshake)), handshake)


def test_an_error_mid_render_truncates_the_page(make_app, live, tgstream_log):
    url = live(template_app(make_app))
    response, chunks, complete = read_timed(url + '/rows?n=10000&fail_at=6000')
    assert response.status_code == 200
    assert not complete
    body = b''.join(chunk for _, chunk in chunks)
    plain = httpx.get(url + '/rows?n=10000&plain', timeout=10).content
    assert 0 < len(body) < len(plain)
    assert plain.startswith(body)
    assert b'exploded' not in body
    assert any('GET /rows' in r.getMessage() for r in tgstream_log.records)
    # and the server is fine afterwards
    assert httpx.get(url + '/page', timeout=10).text.startswith('<p>hello')


def test_a_template_error_before_the_first_chunk_is_a_normal_500(make_app, live):
    url = live(template_app(make_app))
    response = httpx.get(url + '/syntax_error', timeout=10)
    assert response.status_code == 500
    assert response.text == 'error view: TemplateSyntaxError'


def test_streams_with_the_debug_toolbar(make_app, live):
    # the toolbar injects its button into the plain render only
    handshake = Handshake()
    url = live(template_app(make_app, toolbar=True, handshake=handshake))
    body = assert_progressive(url, handshake, same_as_plain=False)
    assert body.rstrip().endswith(b'</html>')
    plain = httpx.get(url + '/rows?n=10000&plain', timeout=10).content
    assert b'pDebug' in plain and b'pDebug' not in body
