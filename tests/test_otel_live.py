"""tgstream.otel.live: the live streams' metrics hook."""
from __future__ import annotations

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
