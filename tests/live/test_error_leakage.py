"""A failed stream never sends its exception's text to the client.

Only the server log has the message and the traceback. Checked in process
(WebTest, ``tgstream.testing.open_stream``) and on the wire (waitress), for
raw streams, ``Response(app_iter=generator)`` and every stream renderer that
is registered, for errors raised by the stream and errors raised while
encoding an item, before and after the first byte.

Two configurations that *do* show the message are pinned here so the README's
warning stays true: waitress's ``expose_tracebacks`` and pyramid_debugtoolbar
(development only), both for errors before the first byte.
"""
from __future__ import annotations

import functools
import logging

import httpx
import pytest
import webtest
from pyramid.httpexceptions import HTTPForbidden
from pyramid.response import Response

import tgstream
from tests.conftest import build_app
from tgstream.renderers import IStreamRendererFactory
from tgstream.testing import open_stream, serve

from .conftest import read_timed

pytestmark = pytest.mark.live

SECRETS = ('hunter2-7f3a', 'ssn-078-05-1120')
MESSAGE = 'db password %s for %s' % SECRETS
#: nothing of the error may reach the client: its text, its type, a traceback
FORBIDDEN = SECRETS + ('Traceback', 'RuntimeError', 'test_error_leakage')

RENDERERS = ('json', 'ndjson', 'csv', 'sse')
#: one good item per renderer (None: a raw stream), all carrying GOOD
GOOD = 'good-item'
GOOD_ITEMS = {
    None: GOOD + '\n',
    'json': {'name': GOOD},
    'ndjson': {'name': GOOD},
    'csv': [GOOD, 1],
    'sse': GOOD,
}


class Poison:
    """An item whose every conversion fails with the secret message."""

    def _fail(self, *args):
        raise RuntimeError(MESSAGE)

    __str__ = __repr__ = __json__ = __iter__ = __bytes__ = _fail


@functools.lru_cache(maxsize=None)
def available_renderers() -> frozenset:
    registry = build_app().registry
    return frozenset(
        name for name in RENDERERS
        if registry.queryUtility(IStreamRendererFactory, name=name) is not None
    )


def need(renderer):
    if renderer is not None and renderer not in available_renderers():
        pytest.skip('stream renderer %r is not registered (tgstream/renderers/ '
                    'does not provide it yet)' % renderer)


def assert_no_leak(body: bytes) -> None:
    for part in FORBIDDEN:
        assert part.encode() not in body, part


def setup_views(config) -> None:
    for renderer in (None,) + RENDERERS:
        if renderer is not None and renderer not in available_renderers():
            continue
        good = GOOD_ITEMS[renderer]
        prefix = '/%s' % (renderer or 'raw')

        def raises_midway(request, good=good):
            yield good
            yield tgstream.flush
            raise RuntimeError(MESSAGE)

        def bad_item_midway(request, good=good, renderer=renderer):
            yield good
            yield tgstream.flush
            yield [Poison()] if renderer == 'csv' else Poison()

        def raises_before(request):
            raise RuntimeError(MESSAGE)
            yield  # pragma: no cover

        for suffix, view in (('/mid', raises_midway), ('/bad-item', bad_item_midway),
                             ('/before', raises_before)):
            config.add_route(prefix + suffix, prefix + suffix)
            config.add_view(view, route_name=prefix + suffix, stream=True,
                            **({'renderer': renderer} if renderer else {}))

    def plain_response(request):
        def body():
            yield GOOD.encode()
            raise RuntimeError(MESSAGE)

        return Response(app_iter=body(), content_type='text/plain')

    def http_error_midway(request):
        yield GOOD
        yield tgstream.flush
        raise HTTPForbidden(MESSAGE)

    def http_error_before(request):
        raise HTTPForbidden('visible detail')
        yield  # pragma: no cover

    config.add_route('plain', '/plain/mid')
    config.add_view(plain_response, route_name='plain')
    config.add_route('http-mid', '/http/mid')
    config.add_view(http_error_midway, route_name='http-mid', stream=True)
    config.add_route('http-before', '/http/before')
    config.add_view(http_error_before, route_name='http-before', stream=True)


MIDWAY = [
    pytest.param(renderer, failure, id='%s-%s' % (renderer or 'raw', failure))
    for renderer in (None,) + RENDERERS
    for failure in ('mid', 'bad-item')
]


@pytest.fixture(scope='module')
def app():
    return build_app(setup_views)


@pytest.fixture(scope='module')
def server(app):
    with serve(app) as live:
        yield live.url


@pytest.fixture
def server_log(caplog):
    caplog.set_level(logging.ERROR)
    return caplog


def chain_text(error: BaseException | None) -> str:
    """The messages of ``error`` and of its causes."""
    texts = []
    while error is not None:
        texts.append(str(error))
        error = error.__cause__ or error.__context__
    return '\n'.join(texts)


def expected_message(path: str) -> str:
    # a raw stream's bad item is a TypeError that never calls str() on it
    return '' if path == '/raw/bad-item' else MESSAGE


def logged(caplog, path: str) -> bool:
    """Did the server log the failure of ``path`` with its traceback?"""
    return any(
        record.exc_info and path in record.getMessage()
        and expected_message(path) in chain_text(record.exc_info[1])
        for record in caplog.records
    )


# -- after the first byte: the response is cut -------------------------------

@pytest.mark.parametrize('renderer, failure', MIDWAY)
def test_midway_error_cuts_the_wire_response(server, server_log, renderer, failure):
    need(renderer)
    path = '/%s/%s' % (renderer or 'raw', failure)
    response, chunks, complete = read_timed(server + path)
    body = b''.join(chunk for _, chunk in chunks)
    assert response.status_code == 200
    assert not complete  # no terminating chunk: the client knows it failed
    assert GOOD.encode() in body
    assert_no_leak(body)
    assert logged(server_log, path)


@pytest.mark.parametrize('renderer, failure', MIDWAY)
def test_midway_error_reaches_the_server_not_the_body(app, renderer, failure):
    need(renderer)
    path = '/%s/%s' % (renderer or 'raw', failure)
    with open_stream(app, path) as response:
        with pytest.raises(Exception) as raised:
            response.read()
        assert_no_leak(response.body)
        assert GOOD.encode() in response.body
    # the exception goes to the WSGI server, which cuts the response
    error = raised.value
    assert expected_message(path) in chain_text(error)
    # WebTest, like a server, gets the exception instead of a body
    with pytest.raises(Exception) as raised_in_webtest:
        webtest.TestApp(app).get(path)
    assert type(raised_in_webtest.value) is type(error)


@pytest.mark.parametrize('path', ['/plain/mid', '/http/mid'])
def test_plain_response_and_http_exception_midway(server, path):
    response, chunks, complete = read_timed(server + path)
    body = b''.join(chunk for _, chunk in chunks)
    assert (response.status_code, complete, body) == (200, False, GOOD.encode())
    assert_no_leak(body)


# -- before the first byte: Pyramid's error handling -------------------------

@pytest.mark.parametrize('renderer', (None,) + RENDERERS)
def test_error_before_first_item_is_a_generic_500(server, server_log, app, renderer):
    need(renderer)
    path = '/%s/before' % (renderer or 'raw')
    response = httpx.get(server + path)
    assert response.status_code == 500
    assert 'generated by waitress' in response.text  # the server's own page
    assert_no_leak(response.content)
    assert logged(server_log, path)
    # Pyramid has no exception view for it: the exception itself is raised
    # to the server (WebTest sees it), never rendered into a body
    with pytest.raises(RuntimeError, match='hunter2'):
        webtest.TestApp(app).get(path)


def test_app_exception_view_is_used_before_first_item():
    def setup(config):
        setup_views(config)
        config.add_exception_view(
            lambda exc, request: Response('Something went wrong.', status=500),
            context=Exception,
        )

    response = webtest.TestApp(build_app(setup)).get('/raw/before', status=500)
    assert response.text == 'Something went wrong.'


def test_http_exception_detail_is_sent_by_design(server):
    # Pyramid renders HTTP exceptions (client-facing by design) with their
    # detail: do not put secrets in an HTTPException's message.
    response = httpx.get(server + '/http/before')
    assert response.status_code == 403
    assert 'visible detail' in response.text


# -- configurations that leak (documented in the README) ---------------------

def test_waitress_expose_tracebacks_leaks_before_the_first_byte(app, server_log):
    with serve(app, expose_tracebacks=True) as live:
        before = httpx.get(live.url + '/raw/before')
        _, chunks, complete = read_timed(live.url + '/raw/mid')
    assert before.status_code == 500 and 'hunter2' in before.text
    # after the first byte even expose_tracebacks cannot add anything
    assert not complete
    assert_no_leak(b''.join(chunk for _, chunk in chunks))


def test_debugtoolbar_shows_the_traceback_before_the_first_byte():
    app = build_app(setup_views, includes=('pyramid_debugtoolbar', 'tgstream'))
    with serve(app) as live:
        before = httpx.get(live.url + '/raw/before')
        _, chunks, complete = read_timed(live.url + '/raw/mid')
    # development only: the toolbar answers allowed hosts (127.0.0.1 here)
    assert before.status_code == 500 and 'hunter2' in before.text
    assert not complete
    assert_no_leak(b''.join(chunk for _, chunk in chunks))


# -- in-band error markers (NDJSON, SSE) -------------------------------------

MARKER_RENDERERS = ('ndjson', 'sse')


def marker_app(renderer):
    def setup(config):
        for name, message in (('one', MESSAGE), ('other', 'another failure')):
            def failing(request, message=message):
                yield GOOD_ITEMS[renderer]
                yield tgstream.flush
                raise RuntimeError(message)

            config.add_route(name, '/' + name)
            config.add_view(failing, route_name=name, stream=True, renderer=renderer,
                            stream_options={'error_marker': True})

    return build_app(setup)


@pytest.mark.parametrize('renderer', MARKER_RENDERERS)
def test_in_band_marker_is_fixed_and_the_response_still_cut(live, renderer):
    need(renderer)
    url = live(marker_app(renderer))
    tails = []
    for name in ('one', 'other'):
        response, chunks, complete = read_timed(url + '/' + name)
        body = b''.join(chunk for _, chunk in chunks)
        assert response.status_code == 200 and not complete
        assert_no_leak(body)
        assert GOOD.encode() in body
        tails.append(body[body.index(GOOD.encode()):])
    # the same marker whatever the exception said
    assert tails[0] == tails[1]
    marker = tails[0].split(b'\n', 1)[1].lstrip(b'\n')
    assert marker in (b'{"error":"stream failed"}\n',
                      b'event: error\ndata: stream failed\n\n')


@pytest.mark.parametrize('renderer', MARKER_RENDERERS)
def test_in_band_marker_is_the_encoders_documented_error(renderer):
    need(renderer)
    with open_stream(marker_app(renderer), '/one') as response:
        with pytest.raises(RuntimeError, match='hunter2'):
            response.read()
        encoder = response.app_iter.encoder
        assert response.body.endswith(encoder.error())
        assert_no_leak(encoder.error())
