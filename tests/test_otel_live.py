"""tgstream.otel.live: the live streams' metrics hook."""
from __future__ import annotations

import pytest

from tests.conftest import build_app
from tests.otel_support import sdk
from tgstream.otel import live_metrics
from tgstream.otel.live import ACTIVE_LISTENERS, DELIVERY_DURATION


def test_listeners_per_channel_and_delivery_latency():
    otel = sdk()
    app = build_app()
    hook = live_metrics(app.registry)
    assert hook is not None
    orders = {'tgstream.live.channel': 'orders'}
    before = otel.total(ACTIVE_LISTENERS, **orders)
    hook.listener_opened('orders')
    hook.listener_opened('orders')
    hook.listener_opened('news')
    assert otel.total(ACTIVE_LISTENERS, **orders) == before + 2
    hook.listener_closed('orders')
    assert otel.total(ACTIVE_LISTENERS, **orders) == before + 1
    count = otel.total(DELIVERY_DURATION, **orders)
    hook.delivered('orders', committed_at=100.0, now=100.25)
    hook.delivered('orders', committed_at=100.0, now=99.0)  # clocks of two hosts
    assert otel.total(DELIVERY_DURATION, **orders) == count + 2
    [point] = [p for a, p in otel.points(DELIVERY_DURATION).items() if ('tgstream.live.channel', 'orders') in a]
    assert point.max == 0.25 and point.min == 0.0


def test_no_hook_with_tgstream_otel_false():
    assert live_metrics(build_app(settings={'tgstream.otel': 'false'}).registry) is None
    assert live_metrics(None) is None


def test_a_listen_stream_counts_as_a_listener_until_it_closes():
    """tgstream.listen() calls the hook: one listener per channel while the
    stream is open, back when it closes (memory backend)."""
    from pyramid.request import Request

    import tgstream
    from tgstream.live import stop_hub

    otel = sdk()
    app = build_app()
    try:
        request = Request.blank('/')
        request.registry = app.registry
        attrs = {'tgstream.live.channel': 'orders'}
        before = otel.total(ACTIVE_LISTENERS, **attrs)
        stream = tgstream.listen(request, ['orders', 'news'])
        assert otel.total(ACTIVE_LISTENERS, **attrs) == before + 1
        assert otel.total(ACTIVE_LISTENERS, **{'tgstream.live.channel': 'news'}) >= 1
        stream.close()
        stream.close()  # once
        assert otel.total(ACTIVE_LISTENERS, **attrs) == before
    finally:
        stop_hub(app.registry)


@pytest.mark.parametrize('backend', ['sqlite', 'postgresql'])
def test_the_delivery_latency_from_commit_is_recorded(request, backend):
    """tgstream.listen() records tgstream.live.delivery.duration for each
    event it hands to its stream (memory backend on SQLite; the durable log
    on PostgreSQL, from the time the log sequenced the committed row)."""
    import time

    import webtest

    from tests.liveapp import live_app, pg_live_settings
    from tgstream.live import get_hub, stop_hub
    from tgstream.testing import open_stream

    otel = sdk()
    engine = request.getfixturevalue(backend + '_engine')
    settings = {} if backend == 'sqlite' else pg_live_settings(
        engine, request.getfixturevalue('pg_url'))
    app = live_app(engine, settings)
    try:
        hub = get_hub(app.registry)
        if hub.listener is not None:
            assert hub.listener.connected.wait(10), 'the listener did not connect'
        attrs = {'tgstream.live.channel': 'users'}
        before = otel.total(DELIVERY_DURATION, **attrs)
        with open_stream(app, '/feed') as feed:
            assert feed.next_chunk()  # the stream is open (a comment, and its head id)
            started = time.time()
            webtest.TestApp(app).get('/add', {'name': 'ann'})
            while b'data: ' not in (chunk := feed.next_chunk()):
                assert chunk.startswith(b':'), chunk  # keep-alive comments only
            waited = time.time() - started
        assert otel.total(DELIVERY_DURATION, **attrs) == before + 1
        [point] = [p for a, p in otel.points(DELIVERY_DURATION).items()
                   if ('tgstream.live.channel', 'users') in a]
        assert 0 <= point.max <= waited + 0.05
    finally:
        stop_hub(app.registry)
