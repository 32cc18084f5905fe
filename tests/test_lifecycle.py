"""``tgstream.lifecycle.hand_over``: the hand-over of a primed stream to
its request (deferred finished callbacks, the order of the close hooks, and
streams that never reach the server)."""
from __future__ import annotations

import logging

import pytest
from pyramid.response import Response

import tgstream
from tgstream.testing import open_stream, record_streams


def replacing_tween_factory(handler, registry):
    def tween(request):
        handler(request)
        return Response('replaced')  # the stream's response is dropped
    return tween


def failing_tween_factory(handler, registry):
    def tween(request):
        handler(request)
        raise LookupError('after the view')  # no response callbacks run
    return tween


def add(config, name, view, **options):
    config.add_route(name, '/' + name)
    config.add_view(view, route_name=name, stream=True, **options)


def test_close_hooks_run_in_order_after_the_stream(make_app):
    order = []

    def view(request):
        request.add_finished_callback(lambda r: order.append('finished callback'))
        yield 'a'
        order.append('last item')

    def setup(config):
        add(config, 'v', view)
        config.add_subscriber(lambda event: order.append('StreamFinished'),
                              tgstream.StreamFinished)

    app = make_app(setup)
    with open_stream(app, '/v') as response:
        assert response.read() == b'a'
    assert order == ['last item', 'finished callback', 'StreamFinished']


def test_a_failing_finished_callback_is_logged_and_the_others_run(make_app, caplog):
    caplog.set_level(logging.ERROR, logger='tgstream')
    ran = []

    def boom(request):
        raise RuntimeError('callback failed')

    def view(request):
        request.add_finished_callback(boom)
        request.add_finished_callback(lambda r: ran.append('second'))
        yield 'a'

    app = make_app(lambda c: add(c, 'v', view))
    with open_stream(app, '/v') as response:
        response.read()
    assert ran == ['second']
    assert 'finished callback' in caplog.text and 'callback failed' in caplog.text


def never_sent(events):
    """A stream view whose only item never reaches the server."""

    def view(request):
        try:
            yield 'never sent'
        except GeneratorExit:
            events.append('GeneratorExit')
            raise

    return view


def test_a_response_replaced_on_the_way_out_closes_the_stream(make_app):
    events = []
    view = never_sent(events)

    def setup(config):
        add(config, 'v', view)
        config.add_tween(
            'tests.test_lifecycle.replacing_tween_factory',
            over='tgstream.tween.stream_tween_factory',
        )

    app = make_app(setup)
    with record_streams(app) as streams:
        with open_stream(app, '/v') as response:
            assert response.read() == b'replaced'
        event = streams.assert_stream('/v', outcome='aborted', count=1)
    assert events == ['GeneratorExit']
    assert event.items == 1 and event.bytes == 0


def test_an_exception_escaping_the_tweens_closes_the_stream(make_app):
    events = []
    view = never_sent(events)

    def setup(config):
        add(config, 'v', view)
        config.add_tween('tests.test_lifecycle.failing_tween_factory')

    app = make_app(setup)
    with pytest.raises(LookupError):
        open_stream(app, '/v')
    assert events == ['GeneratorExit']
