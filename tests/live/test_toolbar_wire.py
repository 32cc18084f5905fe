"""pyramid_debugtoolbar and streams on the wire (waitress on 127.0.0.1).

The toolbar monitors these requests: the client is 127.0.0.1 (its default
``debugtoolbar.hosts``) and waitress sets ``wsgi.multiprocess = False``.
"""
from __future__ import annotations

import json
import os

import httpx
import pytest

from tests.dbapp import build_db_app
from tests.handshake import Handshake
from tests.test_toolbar import (
    GUARD,
    INCLUDE_ORDERS,
    MARKUP,
    TOOLBAR_TWEEN,
    db_stream_views,
    records,
    seed,
    stored_notes,
    toolbar_app,
    tween_names,
)

from .conftest import read_timed

pytestmark = pytest.mark.live

def progressive():
    """A handshake for the views of ``toolbar_app``: before each item, the
    view waits until the client has everything it sent so far (a buffered
    body never arrives: the waits time out and ``late`` lists them)."""
    handshake = Handshake()
    handshake.pause = lambda sent: handshake.wait_for(sent.encode())
    return handshake


def assert_progressive(handshake, chunks):
    assert handshake.late == [], handshake.late
    assert len(chunks) >= 5


@pytest.mark.parametrize('order', INCLUDE_ORDERS)
def test_html_stream_streams_without_toolbar_markup(live, order):
    handshake = progressive()
    app = toolbar_app(order, pause=handshake.pause)
    url = live(app)
    response, chunks, complete = handshake.read(url + '/html')
    assert complete and response.status_code == 200
    assert response.headers['content-type'] == 'text/html; charset=UTF-8'
    assert 'content-length' not in response.headers
    assert_progressive(handshake, chunks)
    body = b''.join(c for _, c in chunks)
    assert body.startswith(b'<html><body><p>item 0</p>')
    assert body.endswith(b'<p>item 4</p></body></html>')
    assert MARKUP not in body
    # the toolbar did monitor it, and the same app's pages get the toolbar
    assert len(records(app, '/html')) == 1
    assert MARKUP in httpx.get(url + '/page').content


def test_json_stream_streams_untouched(live):
    handshake = progressive()
    url = live(toolbar_app(pause=handshake.pause))
    response, chunks, complete = handshake.read(url + '/json')
    assert complete and response.headers['content-type'].startswith('application/json')
    assert_progressive(handshake, chunks)
    assert json.loads(b''.join(c for _, c in chunks)) == [{'n': n} for n in range(5)]


def test_toolbar_pages_work_and_list_the_stream(live):
    app = toolbar_app()
    url = live(app)
    assert httpx.get(url + '/html').status_code == 200
    (record,) = records(app, '/html')
    with httpx.Client(base_url=url) as client:
        main = client.get('/_debug_toolbar/')
        assert main.status_code == 200 and MARKUP not in main.content
        page = client.get('/_debug_toolbar/%s' % record.request.pdtb_id)
        assert page.status_code == 200 and b'/html' in page.content
        static = client.get('/_debug_toolbar/static/toolbar/toolbar_button.css')
        assert static.status_code == 200


def test_error_after_first_item_is_truncated_not_a_500_page(live, tgstream_log):
    url = live(toolbar_app())
    response, chunks, complete = read_timed(url + '/boom')
    assert response.status_code == 200
    assert not complete  # cut: no terminating chunk
    body = b''.join(c for _, c in chunks)
    assert body == b'<html><body><p>partial</p>'
    assert b'secret' not in body and MARKUP not in body


def test_redirect_stream_with_intercept_redirects_is_not_rewritten(live):
    url = live(toolbar_app(settings={'debugtoolbar.intercept_redirects': 'true'}))
    response = httpx.get(url + '/moved')
    assert response.status_code == 302
    assert response.headers['location'] == url + '/page'
    assert response.content == b'<html><body>moved</body></html>'


def test_db_html_stream_under_toolbar_and_pyramid_tm(live, any_engine):
    seed(any_engine)
    app = build_db_app(
        any_engine, db_stream_views, includes=('pyramid_debugtoolbar', 'tgstream')
    )
    response, chunks, complete = read_timed(live(app) + '/notes')
    assert complete and response.status_code == 200
    body = b''.join(c for _, c in chunks)
    assert body == b'<html><body><p>2 users</p><p>ann</p><p>bob</p></body></html>'
    assert MARKUP not in body
    assert stored_notes(any_engine) == ['written while streaming']


def test_development_ini_enables_the_toolbar_and_demo_streams_still_stream(live, tmp_path):
    from pyramid.paster import get_appsettings

    from tgstream.demo import main

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    settings = get_appsettings(os.path.join(root, 'development.ini'), 'main')
    assert settings['pyramid.includes'].split() == ['pyramid_debugtoolbar']
    # the ini's own settings, on a scratch database
    settings['sqlalchemy.url'] = 'sqlite:///%s' % (tmp_path / 'demo.sqlite')
    settings['demo.seed_users'] = '3'
    app = main(settings.global_conf, **settings)
    names = tween_names(app)
    assert names.index(TOOLBAR_TWEEN) < names.index(GUARD)
    url = live(app)
    response, chunks, complete = read_timed(url + '/flask/large_page.html?limit=3')
    assert complete and response.status_code == 200
    assert response.headers['content-type'].startswith('text/html')
    assert 'content-length' not in response.headers
    assert MARKUP not in b''.join(c for _, c in chunks)
    assert MARKUP in httpx.get(url + '/').content  # the demo's pages get it
    assert httpx.get(url + '/_debug_toolbar/').status_code == 200
