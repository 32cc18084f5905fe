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


def test_the_close_sequence_runs_in_its_documented_order(sqlite_engine):
    # end the source -> finish the transaction -> finished callbacks ->
    # StreamFinished -> release the request (tgstream.lifecycle.Lifecycle.close)
    from tests.dbapp import User, build_db_app, count_users, seed_users
    from tgstream.guard import STREAMS_KEY

    seed_users(sqlite_engine)  # five users

    order = []
    environs = []

    def view(request):
        environs.append(request.environ)
        request.add_finished_callback(lambda r: order.append(
            ('finished callback', count_users(sqlite_engine), STREAMS_KEY in r.environ)))
        try:
            request.dbsession.add(User(id=42, name='in the stream'))
            yield 'a'
        finally:
            order.append(('source ended', count_users(sqlite_engine)))

    def finished(event):
        order.append(('StreamFinished', event.transaction, STREAMS_KEY in event.request.environ))

    def setup(config):
        add(config, 'v', view)
        config.add_subscriber(finished, tgstream.StreamFinished)

    app = build_db_app(sqlite_engine, setup)
    with open_stream(app, '/v') as response:
        assert response.read() == b'a'
    assert order == [
        ('source ended', 5),              # the source ends, then the commit
        ('finished callback', 6, True),
        ('StreamFinished', 'committed', True),
    ]
    assert STREAMS_KEY not in environs[0]     # released last


def test_a_stream_closed_early_ends_its_source_before_the_abort(sqlite_engine):
    from tests.dbapp import User, build_db_app, count_users, seed_users

    seed_users(sqlite_engine)
    order = []

    def view(request):
        request.add_finished_callback(lambda r: order.append('finished callback'))
        request.dbsession.add(User(id=42, name='in the stream'))
        request.dbsession.flush()
        try:
            yield 'a'
            yield tgstream.flush
            yield 'b'
        finally:
            # still inside the transaction: the row is visible to the stream
            order.append(('source ended', request.dbsession.get(User, 42) is not None))

    def setup(config):
        add(config, 'v', view)
        config.add_subscriber(lambda e: order.append(('StreamFinished', e.transaction)),
                              tgstream.StreamFinished)

    app = build_db_app(sqlite_engine, setup)
    response = open_stream(app, '/v')
    response.next_chunk()
    response.close()
    assert order == [('source ended', True), 'finished callback', ('StreamFinished', 'aborted')]
    assert count_users(sqlite_engine) == 5


def observer_tween_factory(handler, registry):
    seen = registry['test.is_stream'] = {}

    def tween(request):
        response = handler(request)
        seen[request.path] = tgstream.is_stream(response)
        return response
    return tween


def test_is_stream(make_app):
    from pyramid.response import Response as PlainResponse

    def setup(config):
        add(config, 'v', lambda request: iter(['a']))
        config.add_route('g', '/g')
        config.add_view(lambda request: PlainResponse(app_iter=(x for x in [b'g'])), route_name='g')
        config.add_route('p', '/p')
        config.add_view(lambda request: PlainResponse('plain'), route_name='p')
        config.add_route('z', '/z')
        config.add_view(lambda request: iter(['z']), route_name='z', stream=True)
        config.add_tween('tests.test_lifecycle.observer_tween_factory',
                         over='pyramid.tweens.excview_tween_factory')

    app = make_app(setup, {'tgstream.compress': 'true'})
    for path in ('/v', '/g', '/p', '/z'):
        headers = {'Accept-Encoding': 'gzip'} if path == '/z' else {}
        with open_stream(app, path, headers=headers) as response:
            response.read()
    assert app.registry['test.is_stream'] == {'/v': True, '/g': True, '/p': False, '/z': True}
    assert response.headers['Content-Encoding'] == 'gzip'   # /z: compressed, still a stream
    assert not tgstream.is_stream(object())
