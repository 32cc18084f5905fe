"""The seed documents' database-free examples work with tgstream."""
from __future__ import annotations

import json

import pytest

from tgstream.testing import open_stream


@pytest.fixture
def app(make_app):
    return make_app(lambda config: config.include('tests.pkgs.seedsapp'))


@pytest.fixture
def testapp(app):
    import webtest

    return webtest.TestApp(app)


def test_cherrypy_streaming_handler_may_raise_not_found(testapp):
    testapp.get('/thing', status=404)
    response = testapp.get('/thing?user=alice')
    assert response.text == 'Hello, world'
    assert response.content_type == 'text/plain'


def test_cherrypy_howto_slow_page(app):
    with open_stream(app, '/howto') as response:
        assert response.next_chunk() == b'First line. Sleeping 2 seconds ...\n'
        rest = response.read()
    assert rest.endswith(b'Third and last line')


def test_turbogears_stream_list(testapp):
    response = testapp.get('/stream_list')
    assert response.content_type == 'application/json'
    assert json.loads(response.text) == list(range(1, 11))


def test_turbogears_request_current_obj(testapp):
    response = testapp.get('/stream')
    assert response.content_type == 'text/css'
    assert response.text.splitlines() == ['/stream/%d' % n for n in range(1, 11)]


def test_flask_large_csv(app):
    with open_stream(app, '/large.csv') as response:
        assert response.headers['Content-Type'].startswith('text/csv')
        assert response.next_chunk() == b'0,name 0,\n'
        body = response.body + response.read()
    assert body.count(b'\n') == 1000


def test_flask_stream_with_context(testapp):
    assert testapp.get('/hello?name=Pyramid').text == 'Hello Pyramid!'
