"""Failures after the hand-over close the stream at once (tgstream.guard).

Every test runs with the cyclic garbage collector disabled: the stream must
be closed -- transaction aborted, finished callbacks and StreamFinished run
-- by tgstream, before the request's thread moves on, and freed by
reference counting.
"""
from __future__ import annotations

import gc
import weakref

import pytest
from pyramid.events import NewResponse
from sqlalchemy import select

import tgstream
from tests.conftest import build_app
from tests.dbapp import User, build_db_app, count_users, seed_users


@pytest.fixture
def no_gc():
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@pytest.fixture
def engine(any_engine):
    seed_users(any_engine)
    return any_engine


class Seen:
    def __init__(self):
        self.events = []
        self.finished = []
        self.streams = []


def make(engine, seen, extra=None):
    def writer(request):
        request.response.headers['X-Echo'] = request.params.get('echo', 'ok')
        request.add_finished_callback(lambda r: seen.finished.append(r.path))
        request.dbsession.add(User(id=100, name='written'))
        request.dbsession.flush()
        yield 'one\n'
        yield 'two\n'

    def setup(config):
        config.add_route('w', '/w')
        config.add_view(writer, route_name='w', stream=True)
        config.add_subscriber(
            lambda e: (seen.events.append(e), seen.streams.append(weakref.ref(e.stream))),
            tgstream.StreamFinished,
        )
        if extra is not None:
            extra(config)

    return build_db_app(engine, setup)


def call(app, path, start_response=None):
    environ = {
        'REQUEST_METHOD': 'GET', 'PATH_INFO': path.split('?')[0],
        'QUERY_STRING': path.partition('?')[2], 'SERVER_NAME': 'localhost',
        'SERVER_PORT': '80', 'SERVER_PROTOCOL': 'HTTP/1.1', 'wsgi.url_scheme': 'http',
        'wsgi.input': __import__('io').BytesIO(), 'wsgi.errors': __import__('sys').stderr,
    }
    started = []

    def default_start_response(status, headers, exc_info=None):
        started.append(status)
        return lambda data: None

    body = app(environ, start_response or default_start_response)
    try:
        return b''.join(body), environ
    finally:
        close = getattr(body, 'close', None)
        if close is not None:
            close()


def assert_closed_with_error(seen, engine, exc_type):
    assert len(seen.events) == 1, seen.events
    event = seen.events[0]
    assert event.outcome == 'error'
    assert isinstance(event.exception, exc_type)
    assert event.transaction == 'aborted'
    assert seen.finished == ['/w']
    assert count_users(engine) == 5


def test_start_response_rejecting_a_header_closes_the_stream(engine, no_gc):
    seen = Seen()
    app = make(engine, seen)

    def strict_start_response(status, headers, exc_info=None):
        for name, value in headers:
            if '\r' in value or '\n' in value:
                raise ValueError('header %s contains CR/LF' % name)
        return lambda data: None

    with pytest.raises(ValueError, match='CR/LF'):
        call(app, '/w?echo=a%0D%0AX-Evil:%201', strict_start_response)
    assert_closed_with_error(seen, engine, ValueError)


def test_a_new_response_subscriber_raising_closes_the_stream(engine, no_gc):
    seen = Seen()

    def extra(config):
        def subscriber(event):
            raise LookupError('subscriber failed')

        config.add_subscriber(subscriber, NewResponse)

    app = make(engine, seen, extra)
    with pytest.raises(LookupError):
        call(app, '/w')
    assert_closed_with_error(seen, engine, LookupError)


def raising_callback_tween(handler, registry):
    def tween(request):
        response = handler(request)

        def callback(request, response):
            raise KeyError('callback failed')

        request.add_response_callback(callback)
        return response

    return tween


def test_a_later_response_callback_raising_closes_the_stream(engine, no_gc):
    seen = Seen()

    def extra(config):
        config.add_tween('tests.test_handover_guard.raising_callback_tween')

    app = make(engine, seen, extra)
    with pytest.raises(KeyError):
        call(app, '/w')
    assert_closed_with_error(seen, engine, KeyError)


def test_a_sent_stream_commits_and_is_freed_without_the_gc(engine, no_gc):
    seen = Seen()
    app = make(engine, seen)
    body, environ = call(app, '/w')
    assert body == b'one\ntwo\n'
    assert [e.outcome for e in seen.events] == ['completed']
    assert seen.events[0].transaction == 'committed'
    assert 'tgstream.streams' not in environ
    with engine.connect() as conn:
        assert conn.scalar(select(User.name).where(User.id == 100)) == 'written'


@pytest.mark.parametrize('echo', ['fine', 'bad%0D%0AX-Evil:%201'])
def test_tgstream_leaves_no_reference_cycle(no_gc, echo):
    # (The cookiecutter's session info={'request': request} is a cycle of
    # the application's own; this app has no database.)
    streams = []

    def view(request):
        request.response.headers['X-Echo'] = request.params['echo']
        yield 'a'
        yield 'b'

    def setup(config):
        config.add_route('s', '/s')
        config.add_view(view, route_name='s', stream=True)
        config.add_subscriber(lambda e: streams.append((weakref.ref(e.stream), e.outcome)),
                              tgstream.StreamFinished)

    app = build_app(setup)

    def strict_start_response(status, headers, exc_info=None):
        if any('\r' in v or '\n' in v for _, v in headers):
            raise ValueError('CR/LF in a header')
        return lambda data: None

    try:
        call(app, '/s?echo=' + echo, strict_start_response)
    except ValueError:
        pass
    (ref, outcome), = streams
    assert outcome == ('completed' if echo == 'fine' else 'error')
    assert ref() is None, 'the stream is only freed by the cyclic gc'


@pytest.mark.parametrize('stream', [True, False])
@pytest.mark.parametrize('content_type', ['text/csv\r\nX-Evil: 1', 'text/plain\n', 'text', 'tëxt/csv'])
def test_header_values_are_checked_at_configuration_time(stream, content_type):
    from pyramid.exceptions import ConfigurationError

    def report(request):
        return iter(['x'])

    def setup(config):
        config.add_route('r', '/r')
        config.add_view(report, route_name='r', stream=stream, stream_content_type=content_type)

    with pytest.raises(ConfigurationError, match=r'report.*content_type'):
        build_app(setup)


def test_a_download_name_with_cr_lf_makes_a_safe_header(make_testapp):
    def report(request):
        yield 'x'

    def setup(config):
        config.add_route('r', '/r')
        config.add_view(report, route_name='r', stream=True,
                        stream_filename='a\r\nX-Evil: 1.csv')

    response = make_testapp(setup).get('/r')
    value = response.headers['Content-Disposition']
    assert '\r' not in value and '\n' not in value and 'X-Evil' not in response.headers
