"""tgstream.otel.metrics: stream metrics through OpenTelemetry's metrics API
(the real SDK's in-memory reader), with or without the Pyramid
instrumentation."""
from __future__ import annotations

import pytest
import webtest
from pyramid.request import Request

from tests.conftest import build_app
from tests.dbapp import User, includeme_models, make_engine, seed_users
from tests.otel_support import build_traced_app, sdk
from tgstream.otel import metrics as stream_metrics

ACTIVE = stream_metrics.ACTIVE_STREAMS
DURATION = stream_metrics.STREAM_DURATION
SIZE = stream_metrics.STREAM_BODY_SIZE


@pytest.fixture
def otel():
    return sdk()


def lines(request):
    for n in range(4):
        yield '%d\n' % n


def failing(request):
    yield 'x\n'
    raise ValueError('boom')


def add_views(config):
    config.add_route('lines', '/lines')
    config.add_view(lines, route_name='lines', stream=True)
    config.add_route('failing', '/failing')
    config.add_view(failing, route_name='failing', stream=True)
    config.add_route('plain', '/plain')
    config.add_view(lambda request: 'plain', route_name='plain', renderer='string')


@pytest.fixture(params=['plain', 'instrumented'])
def app(request):
    """tgstream with OpenTelemetry's API only, and with the instrumentation."""
    if request.param == 'plain':
        return build_app(add_views)
    return build_traced_app(add_views)


def test_open_streams_are_counted_until_they_end(otel, app):
    route = {'http.route': '/lines', 'http.request.method': 'GET'}
    before = otel.total(ACTIVE, **route)
    _, _, first = Request.blank('/lines').call_application(app)
    _, _, second = Request.blank('/lines').call_application(app)
    assert otel.total(ACTIVE, **route) == before + 2
    list(first)
    first.close()
    assert otel.total(ACTIVE, **route) == before + 1
    second.close()  # a departed client
    assert otel.total(ACTIVE, **route) == before
    webtest.TestApp(app).get('/plain')
    assert otel.total(ACTIVE, **route) == before


def test_duration_and_bytes_by_outcome(otel, app):
    completed = {'http.route': '/lines', 'tgstream.outcome': 'completed',
                 'tgstream.transaction': 'not managed'}
    before = otel.total(DURATION, **completed)
    body = webtest.TestApp(app).get('/lines').body
    assert otel.total(DURATION, **completed) == before + 1
    [size] = [p for a, p in otel.points(SIZE).items() if set(completed.items()) <= a]
    assert size.max == len(body) == 8
    errors = {'http.route': '/failing', 'tgstream.outcome': 'error'}
    before = otel.total(DURATION, **errors)
    with pytest.raises(ValueError):
        webtest.TestApp(app).get('/failing')
    assert otel.total(DURATION, **errors) == before + 1


def test_units_and_names_follow_the_conventions(otel, app):
    webtest.TestApp(app).get('/lines')
    data = otel.reader.get_metrics_data()
    units = {
        m.name: m.unit
        for r in data.resource_metrics for s in r.scope_metrics if s.scope.name == 'tgstream'
        for m in s.metrics
    }
    assert units[ACTIVE] == '{stream}'
    assert units[DURATION] == 's'
    assert units[SIZE] == 'By'


def test_transaction_outcome_is_an_attribute(otel, tmp_path):
    engine = make_engine('sqlite:///%s/m.sqlite' % tmp_path)
    seed_users(engine, 1)

    def writes(request):
        request.dbsession.add(User(id=9, name='nine'))
        yield 'ok\n'

    def setup(config):
        includeme_models(config, engine)
        config.add_route('writes', '/writes')
        config.add_view(writes, route_name='writes', stream=True)

    committed = {'http.route': '/writes', 'tgstream.transaction': 'committed'}
    before = otel.total(DURATION, **committed)
    webtest.TestApp(build_app(setup)).get('/writes')
    assert otel.total(DURATION, **committed) == before + 1
    engine.dispose()


def test_unknown_methods_are_other():
    request = Request.blank('/', method='BREW')
    assert stream_metrics.request_attributes(request) == {'http.request.method': '_OTHER'}


def test_the_prometheus_recipe_names():
    # what docs/observability.rst and docs/production.rst say Prometheus scrapes
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import generate_latest

    from tgstream.otel.live import LiveMetrics

    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        meter = provider.get_meter('tgstream')
        stream = stream_metrics.StreamMetrics(meter)
        stream.active.add(1, {'http.route': '/export', 'http.request.method': 'GET'})
        stream.duration.record(2.0, {'tgstream.outcome': 'disconnected'})
        stream.size.record(100, {'tgstream.outcome': 'disconnected'})
        live = LiveMetrics(meter)
        live.listener_opened('orders')
        live.delivered('orders', committed_at=1.0, now=1.01)
        text = generate_latest().decode()
    finally:
        provider.shutdown()  # unregisters its collector
    for line in (
        'tgstream_server_active_streams{http_request_method="GET",http_route="/export"',
        'tgstream_server_stream_duration_seconds_count{',
        'tgstream_outcome="disconnected"',
        'tgstream_server_stream_body_size_bytes_sum{',
        'tgstream_live_active_listeners{',
        'tgstream_live_channel="orders"',
        'tgstream_live_delivery_duration_seconds_bucket{',
    ):
        assert line in text, line
