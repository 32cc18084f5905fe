"""Requirement: non-stream requests are recorded exactly as without tgstream,
in every include order -- tgstream's tweens never move OpenTelemetry's tween
relative to pyramid_tm (or any other tween).

A differential test: the same app built without tgstream and with tgstream
included at every position; the same requests; the spans (names, kinds,
parents, status, attributes, events) and metric points must be identical.
"""
from __future__ import annotations

import itertools

import pytest
import webtest
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.trace import StatusCode
from pyramid.interfaces import ITweens

from tests.dbapp import User, includeme_models, make_engine, seed_users
from tests.otel_support import build_traced_app, sdk, server_span

OTEL_TWEEN = 'opentelemetry.instrumentation.pyramid.trace_tween_factory'
TM_TWEEN = 'pyramid_tm.tm_tween_factory'
TOOLBAR_TWEEN = 'pyramid_debugtoolbar.toolbar_tween_factory'
GUARD = 'tgstream.toolbar.toolbar_guard_tween_factory'


def tween_names(app):
    return [name for name, _ in app.registry.getUtility(ITweens).implicit()]


def with_tgstream_everywhere(includes):
    """``includes`` with tgstream inserted at each position."""
    for position in range(len(includes) + 1):
        order = list(includes)
        order.insert(position, 'tgstream')
        yield order


ORDERS = [
    list(order)
    for extra in ([], ['pyramid_debugtoolbar'])
    for order in itertools.permutations(['pyramid_tm', 'otel'] + extra)
]


@pytest.mark.parametrize('includes', ORDERS, ids='-'.join)
def test_tgstream_moves_no_other_tween(includes):
    without = tween_names(build_traced_app(includes=includes))
    for order in with_tgstream_everywhere(includes):
        names = tween_names(build_traced_app(includes=order))
        others = [name for name in names if not name.startswith('tgstream.')]
        assert others == without, order
        if 'pyramid_debugtoolbar' in order:
            # the guard's own placement still holds
            assert names.index(TOOLBAR_TWEEN) < names.index(GUARD) < names.index(TM_TWEEN)


# -- the spans and metric points of non-stream requests ------------------------


@pytest.fixture
def engine(tmp_path):
    engine = make_engine('sqlite:///%s/tweens.sqlite' % tmp_path)
    seed_users(engine, 3)
    SQLAlchemyInstrumentor().instrument(engine=engine, skip_dep_check=True)
    yield engine
    SQLAlchemyInstrumentor().uninstrument()
    engine.dispose()


def db_app(engine, includes):
    def insert(request):
        request.dbsession.add(User(id=50, name='fresh'))
        return 'inserted'

    def duplicate(request):
        # flushed at commit: the unique violation is raised by pyramid_tm
        request.dbsession.add(User(id=51, name='user1'))
        return 'never'

    def read(request):
        return str(request.dbsession.query(User).count())

    def setup(config):
        for name, view in [('insert', insert), ('duplicate', duplicate), ('read', read)]:
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, renderer='string')

    def setup_all(config):
        for name in includes:
            if name == 'models':
                includeme_models(config, engine)
            elif name == 'otel':
                from opentelemetry.instrumentation.pyramid import PyramidInstrumentor

                PyramidInstrumentor.instrument_config(config)
            else:
                config.include(name)
        setup(config)

    return build_traced_app(setup_all, includes=(), how='none')


def record(otel, app, engine):
    """What OpenTelemetry records of three non-stream requests, without the
    values that differ between any two runs (ids, times, durations)."""
    otel.exporter.clear()
    metrics_before = snapshot_metrics(otel)
    client = webtest.TestApp(app)
    client.get('/read')
    client.get('/insert')
    with pytest.raises(Exception) as raised:
        client.get('/duplicate')
    with engine.begin() as conn:
        conn.execute(User.__table__.delete().where(User.id >= 50))
    spans = otel.spans()
    names = {span.context.span_id: span.name for span in spans}
    recorded_spans = [
        (
            span.name, span.kind, names.get(span.parent.span_id) if span.parent else None,
            span.status.status_code,
            tuple(sorted((k, v) for k, v in span.attributes.items() if k != 'db.name')),
            tuple(e.name for e in span.events),
        )
        for span in spans
        if not span.name.startswith('DELETE')
    ]
    metrics_after = snapshot_metrics(otel)
    changed = {
        key: metrics_after[key] - metrics_before.get(key, 0)
        for key in metrics_after
        if metrics_after[key] != metrics_before.get(key, 0)
    }
    return recorded_spans, changed, type(raised.value).__name__


def snapshot_metrics(otel):
    """``{(metric, attributes): count or value}`` of the HTTP server metrics."""
    found = {}
    for metric in ('http.server.duration', 'http.server.active_requests'):
        for attributes, point in otel.points(metric).items():
            found[(metric, attributes)] = getattr(point, 'count', None) or getattr(point, 'value', 0)
    return found


@pytest.mark.parametrize(
    'includes',
    [list(order) for order in itertools.permutations(['models', 'otel'])],
    ids='-'.join,
)
def test_non_stream_requests_are_recorded_as_without_tgstream(engine, includes):
    otel = sdk()
    expected = record(otel, db_app(engine, includes), engine)
    assert expected[1], 'no metric point recorded?'
    for order in with_tgstream_everywhere(includes):
        assert record(otel, db_app(engine, order), engine) == expected, order


def test_a_commit_that_fails_is_a_500_error_with_the_exception(engine):
    # OpenTelemetry's tween included before pyramid_tm: the commit runs
    # inside it, with tgstream included anywhere
    otel = sdk()
    for order in with_tgstream_everywhere(['otel', 'models']):
        otel.exporter.clear()
        with pytest.raises(Exception, match='UNIQUE'):
            webtest.TestApp(db_app(engine, order)).get('/duplicate')
        span = server_span(otel.spans(), '/duplicate')
        assert span.status.status_code == StatusCode.ERROR, order
        assert [e.attributes['exception.type'] for e in span.events if e.name == 'exception'] == [
            'sqlalchemy.exc.IntegrityError'
        ]
        [insert] = [s for s in otel.spans() if s.name.startswith('INSERT')]
        assert insert.parent.span_id == span.context.span_id, order
