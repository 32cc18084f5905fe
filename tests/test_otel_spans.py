"""tgstream.otel.spans: the Pyramid instrumentation's server span and request
metrics of a streamed response cover the whole stream.

The real SDK (in-memory exporter and metric reader), the real Pyramid and
SQLAlchemy instrumentations; the body is iterated by hand (as a server does)
so every assertion can be made *while* the stream is open.
"""
from __future__ import annotations

import threading
import time

import pytest
import webtest
from opentelemetry import trace
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _StabilityMode,
)
from opentelemetry.instrumentation.pyramid import callbacks
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.trace import StatusCode
from pyramid.request import Request
from sqlalchemy import select, text

from tests.dbapp import User, includeme_models, seed_users
from tests.otel_support import build_traced_app, sdk, server_span

ACTIVE = 'http.server.active_requests'
DURATION_OLD = 'http.server.duration'
DURATION_NEW = 'http.server.request.duration'
PAUSE = 0.15


@pytest.fixture
def otel():
    return sdk()


@pytest.fixture(params=['config', 'instrument'])
def how(request):
    """Both documented ways of instrumenting a Pyramid app."""
    return request.param


@pytest.fixture
def dup_semconv(monkeypatch):
    """Old and new HTTP semantic conventions at once (both histograms), as
    ``OTEL_SEMCONV_STABILITY_OPT_IN=http/dup`` sets them."""
    def initialize():
        _OpenTelemetrySemanticConventionStability._initialized = False
        _OpenTelemetrySemanticConventionStability._initialize()

    monkeypatch.setenv('OTEL_SEMCONV_STABILITY_OPT_IN', 'http/dup')
    initialize()
    yield
    monkeypatch.delenv('OTEL_SEMCONV_STABILITY_OPT_IN')
    initialize()
    callbacks._sem_conv_opt_in_mode = _StabilityMode.DEFAULT


def paused(request):
    for n in range(3):
        if n:
            time.sleep(PAUSE)
        yield '%d\n' % n


def failing(request):
    yield 'first\n'
    raise ValueError('mid-stream')


def endless(request):
    n = 0
    while n < 10_000:
        yield '%d\n' % n
        n += 1


def add_views(config):
    for name, view in [('paused', paused), ('failing', failing), ('endless', endless)]:
        config.add_route(name, '/' + name)
        config.add_view(view, route_name=name, stream=True)
    config.add_route('plain', '/plain')
    config.add_view(lambda request: 'plain', route_name='plain', renderer='string')


def open_stream(app, path, **kw):
    """Call the app as a server does: (status, headers, app_iter), not iterated."""
    return Request.blank(path, **kw).call_application(app)


def test_server_span_ends_after_the_stream_not_at_view_return(otel, how):
    app = build_traced_app(add_views, how=how)
    status, _, body = open_stream(app, '/paused')
    assert status == '200 OK'
    assert otel.spans('/paused') == []  # the view returned: still open
    chunks = []
    for chunk in body:
        chunks.append(chunk)
        assert otel.spans('/paused') == [], 'ended before the stream did'
    assert b''.join(chunks) == b'0\n1\n2\n'
    body.close()
    span = server_span(otel.spans(), '/paused')
    assert (span.end_time - span.start_time) / 1e9 >= 2 * PAUSE
    assert span.attributes['tgstream.outcome'] == 'completed'
    assert span.status.status_code == StatusCode.UNSET
    assert span.attributes['http.status_code'] == 200


def points_of(otel, metric, route=None):
    return [p for attrs, p in otel.points(metric).items()]


def test_duration_covers_the_stream_once_and_active_requests_counts_it(
    otel, how, dup_semconv
):
    app = build_traced_app(add_views, how=how)
    before_old = sum(p.count for p in points_of(otel, DURATION_OLD))
    before_new = sum(p.count for p in points_of(otel, DURATION_NEW))
    active = otel.total(ACTIVE)
    _, _, body = open_stream(app, '/paused')
    assert otel.total(ACTIVE) == active + 1
    assert sum(p.count for p in points_of(otel, DURATION_NEW)) == before_new
    list(body)
    assert otel.total(ACTIVE) == active + 1  # exhausted, not yet closed
    body.close()
    assert otel.total(ACTIVE) == active
    old = points_of(otel, DURATION_OLD)
    new = points_of(otel, DURATION_NEW)
    assert sum(p.count for p in old) == before_old + 1
    assert sum(p.count for p in new) == before_new + 1
    assert max(p.max for p in old) >= 2 * PAUSE * 1000  # milliseconds
    assert max(p.max for p in new) >= 2 * PAUSE  # seconds
    # the point carries the instrumentation's own attributes
    attributes = [dict(a) for a in otel.points(DURATION_NEW)]
    assert any(a.get('http.response.status_code') == 200 for a in attributes)


def test_a_mid_stream_failure_is_an_error_with_the_exception(otel, how):
    app = build_traced_app(add_views, how=how)
    _, _, body = open_stream(app, '/failing')
    assert next(body) == b'first\n'
    with pytest.raises(ValueError):
        next(body)
    body.close()
    span = server_span(otel.spans(), '/failing')
    assert span.status.status_code == StatusCode.ERROR
    assert 'mid-stream' in span.status.description
    [event] = [e for e in span.events if e.name == 'exception']
    assert event.attributes['exception.type'] == 'ValueError'
    assert event.attributes['exception.message'] == 'mid-stream'
    assert span.attributes['tgstream.outcome'] == 'error'
    assert span.attributes['error.type'] == 'ValueError'


def test_a_departed_client_ends_the_span_disconnected(otel, how):
    app = build_traced_app(add_views, how=how)
    active = otel.total(ACTIVE)
    _, _, body = open_stream(app, '/endless')
    next(body)
    next(body)
    body.close()  # what a server does when the client went away
    span = server_span(otel.spans(), '/endless')
    assert span.attributes['tgstream.outcome'] == 'disconnected'
    assert span.status.status_code == StatusCode.UNSET
    assert otel.total(ACTIVE) == active


def test_a_stream_never_iterated_is_aborted_and_ends(otel):
    app = build_traced_app(add_views)
    active = otel.total(ACTIVE)
    _, _, body = open_stream(app, '/paused')
    body.close()  # HEAD, 304: closed before the first next()
    span = server_span(otel.spans(), '/paused')
    assert span.attributes['tgstream.outcome'] == 'aborted'
    assert otel.total(ACTIVE) == active


def test_figures_on_the_span(otel):
    app = build_traced_app(add_views)
    body = webtest.TestApp(app).get('/paused').body
    span = server_span(otel.spans(), '/paused')
    assert span.attributes['tgstream.items'] == 3
    assert span.attributes['tgstream.bytes'] == len(body)
    ttfb = span.attributes['tgstream.time_to_first_byte']
    assert 0 <= ttfb < (span.end_time - span.start_time) / 1e9
    assert span.attributes['tgstream.transaction'] == 'not managed'


# -- transactions and SQL ------------------------------------------------------


@pytest.fixture
def engine(any_engine):
    """SQLite and PostgreSQL (psycopg), instrumented."""
    engine = any_engine
    seed_users(engine, 5)
    SQLAlchemyInstrumentor().instrument(engine=engine, skip_dep_check=True)
    yield engine
    SQLAlchemyInstrumentor().uninstrument()
    engine.dispose()


def db_app(engine, how='config', order=('tgstream', 'models')):
    def queries(request):
        # one query per item, run by the generator while it streams
        for n in range(1, 6):
            name = request.dbsession.execute(
                select(User.name).where(User.id == n)
            ).scalar_one()
            yield name + '\n'

    def writes(request):
        request.dbsession.add(User(id=100, name='new'))
        yield 'a\n'
        request.dbsession.flush()
        yield 'b\n'

    def breaks(request):
        request.dbsession.add(User(id=101, name='doomed'))
        yield 'a\n'
        raise RuntimeError('after the first item')

    def setup(config):
        for name, view in [('queries', queries), ('writes', writes), ('breaks', breaks)]:
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, stream=True)

    def setup_all(config):
        for name in order:
            if name == 'models':
                includeme_models(config, engine)
            else:
                config.include(name)
        setup(config)

    return build_traced_app(setup_all, includes=(), how=how)


def test_queries_of_the_generator_are_children_of_the_request_span(otel, engine, how):
    app = db_app(engine, how)
    _, _, body = open_stream(app, '/queries')
    for _chunk in body:
        # between steps nothing is left current on the server's thread
        assert trace.get_current_span() is trace.INVALID_SPAN
    body.close()
    spans = otel.spans()
    request_span = server_span(spans, '/queries')
    selects = [s for s in spans if s.name.startswith('SELECT')]
    assert len(selects) == 5
    for span in selects:
        assert span.context.trace_id == request_span.context.trace_id
        assert span.parent is not None and span.parent.span_id == request_span.context.span_id
        assert span.end_time <= request_span.end_time


def test_transaction_outcome_on_the_span(otel, engine):
    app = db_app(engine)
    webtest.TestApp(app).get('/writes')
    span = server_span(otel.spans(), '/writes')
    assert span.attributes['tgstream.transaction'] == 'committed'
    assert span.attributes['tgstream.outcome'] == 'completed'
    inserts = [s for s in otel.spans() if s.name.startswith('INSERT')]
    assert inserts and all(s.parent.span_id == span.context.span_id for s in inserts)
    otel.exporter.clear()
    with pytest.raises(RuntimeError):
        webtest.TestApp(app).get('/breaks')
    span = server_span(otel.spans(), '/breaks')
    assert span.attributes['tgstream.transaction'] == 'aborted'
    assert span.attributes['tgstream.outcome'] == 'error'
    assert span.status.status_code == StatusCode.ERROR


def test_interleaved_streams_keep_their_own_trace(otel, engine):
    # two streams advanced alternately on one thread, and two on two threads
    app = db_app(engine)
    _, _, first = open_stream(app, '/queries')
    _, _, second = open_stream(app, '/queries')
    for a, b in zip(first, second):
        assert a == b
    assert list(first) == list(second) == []
    first.close()
    second.close()

    def run():
        _, _, body = open_stream(app, '/queries')
        for _chunk in body:
            barrier.wait(5)
        body.close()

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    spans = otel.spans()
    requests = {s.context.span_id: s for s in spans if s.name == '/queries'}
    assert len(requests) == 4
    children: dict[int, int] = {}
    for span in spans:
        if span.name.startswith('SELECT'):
            parent = span.parent.span_id
            assert requests[parent].context.trace_id == span.context.trace_id
            children[parent] = children.get(parent, 0) + 1
    assert sorted(children.values()) == [5, 5, 5, 5]


def test_without_the_instrumentation_streams_are_untouched(otel):
    # OpenTelemetry installed, the app not instrumented: no span, no hook
    from tests.conftest import build_app

    app = build_app(add_views)
    assert webtest.TestApp(app).get('/paused').body == b'0\n1\n2\n'
    assert otel.spans() == []


def test_tgstream_otel_false_turns_it_off(otel):
    app = build_traced_app(add_views, settings={'tgstream.otel': 'false'})
    _, _, body = open_stream(app, '/paused')
    # the instrumentation's own behaviour: the span ended at view return
    assert len(otel.spans('/paused')) == 1
    assert 'tgstream.outcome' not in otel.spans('/paused')[0].attributes
    body.close()


def test_every_span_of_the_request_is_in_its_trace(otel, engine):
    app = db_app(engine)
    with engine.connect() as conn:
        conn.execute(text('select 1'))  # outside any request: roots
    outside = len(otel.spans())
    webtest.TestApp(app).get('/queries')
    request_span = server_span(otel.spans(), '/queries')
    inside = otel.spans()[outside:]
    assert len(inside) >= 6  # the request, its connect, five SELECTs
    assert {s.context.trace_id for s in inside} == {request_span.context.trace_id}
    assert [s for s in inside if s.parent is None] == [request_span]


def test_gevent_greenlets_keep_their_own_trace(otel, engine):
    # greenlets switching between the steps of their streams (gevent gives
    # each greenlet its own contextvars context)
    gevent = pytest.importorskip('gevent')
    app = db_app(engine)
    current: list = []

    def run():
        _, _, body = open_stream(app, '/queries')
        for _chunk in body:
            current.append(trace.get_current_span())
            gevent.sleep(0)  # let the other greenlet run a step
        body.close()

    greenlets = [gevent.spawn(run) for _ in range(3)]
    gevent.joinall(greenlets, timeout=10, raise_error=True)
    assert current and all(span is trace.INVALID_SPAN for span in current)
    spans = otel.spans()
    requests = {s.context.span_id: s for s in spans if s.name == '/queries'}
    assert len(requests) == 3
    parents = [s.parent.span_id for s in spans if s.name.startswith('SELECT')]
    assert sorted(parents.count(r) for r in requests) == [5, 5, 5]


def test_an_explicit_tween_list(otel):
    # pyramid.tweens set by hand: the instrumentation's tween is wrapped there
    tweens = '\n'.join([
        'opentelemetry.instrumentation.pyramid.trace_tween_factory',
        'pyramid.tweens.excview_tween_factory',
        'tgstream.tween.stream_tween_factory',
    ])
    app = build_traced_app(add_views, settings={'pyramid.tweens': tweens})
    _, _, body = open_stream(app, '/paused')
    assert otel.spans('/paused') == []
    list(body)
    body.close()
    assert server_span(otel.spans(), '/paused').attributes['tgstream.outcome'] == 'completed'


def test_a_retried_request_that_streams(otel, engine):
    # pyramid_retry: the first attempt fails before the first item, the
    # second streams; each attempt has its span, the second ends with it
    import transaction.interfaces

    attempts = []

    def flaky(request):
        attempts.append(1)
        if len(attempts) == 1:
            raise transaction.interfaces.TransientError('try again')
        return iter_lines()

    def iter_lines():
        yield 'a\n'
        yield 'b\n'

    def setup_all(config):
        includeme_models(config, engine)
        config.include('tgstream')
        config.add_route('flaky', '/flaky')
        config.add_view(flaky, route_name='flaky', stream=True)

    app = build_traced_app(setup_all, includes=(), settings={'retry.attempts': '2'})
    _, _, body = open_stream(app, '/flaky')
    assert len(attempts) == 2
    finished = otel.spans('/flaky')
    assert len(finished) == 1 and finished[0].status.status_code == StatusCode.ERROR
    assert list(body) == [b'a\n', b'b\n']
    body.close()
    spans = otel.spans('/flaky')
    assert len(spans) == 2
    assert spans[1].attributes['tgstream.outcome'] == 'completed'
    assert spans[1].attributes['tgstream.transaction'] == 'committed'
