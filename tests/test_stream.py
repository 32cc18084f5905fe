"""Stream guarantees through real Pyramid apps (WebTest and open_stream)."""
from __future__ import annotations

import gc
import threading

import pytest
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound
from pyramid.response import Response
from pyramid.threadlocal import get_current_registry, get_current_request, manager

import tgstream
from tgstream.stream import StreamIterator, flush
from tgstream.testing import open_stream


def add(config, name, view, **options):
    config.add_route(name, '/' + name)
    config.add_view(view, route_name=name, stream=True, **options)


def test_items_are_sent_in_order_with_default_content_type(make_testapp):
    def view(request):
        yield 'a'
        yield b'b'
        yield 'é'

    app = make_testapp(lambda c: add(c, 'v', view))
    response = app.get('/v')
    assert response.body == 'abé'.encode()
    assert response.content_type == 'text/plain'
    assert response.charset.lower() == 'utf-8'


def test_str_items_use_the_response_charset(make_testapp):
    def view(request):
        request.response.charset = 'latin-1'
        yield 'é'

    app = make_testapp(lambda c: add(c, 'v', view))
    assert app.get('/v').body == 'é'.encode('latin-1')


def test_view_may_return_any_iterable(make_testapp):
    app = make_testapp(lambda c: add(c, 'v', lambda request: ['x', 'y']))
    assert app.get('/v').body == b'xy'


def test_content_type_option_and_response_type(make_testapp):
    def typed(request):
        request.response.content_type = 'text/csv'
        yield 'a,b\n'

    def setup(config):
        add(config, 'opt', lambda r: iter(['{}']), stream_content_type='application/json')
        add(config, 'resp', typed)

    app = make_testapp(setup)
    assert app.get('/opt').content_type == 'application/json'
    assert app.get('/resp').content_type == 'text/csv'


@pytest.mark.parametrize('exc, status', [(HTTPNotFound, 404), (HTTPForbidden, 403)])
def test_http_errors_before_first_item_are_normal_responses(make_testapp, exc, status):
    closed = []

    def view(request):
        try:
            raise exc()
            yield 'never'
        finally:
            closed.append(True)

    app = make_testapp(lambda c: add(c, 'v', view))
    response = app.get('/v', status=status)
    assert response.status_int == status
    assert closed == [True]


def test_exception_view_renders_error_raised_before_first_item(make_testapp):
    class Invalid(Exception):
        pass

    def view(request):
        if 'name' not in request.params:
            raise Invalid('name is required')
        yield request.params['name']

    def invalid(exc, request):
        request.response.status = 400
        return Response('invalid: %s' % exc, status=400)

    def setup(config):
        add(config, 'v', view)
        config.add_exception_view(invalid, context=Invalid)

    app = make_testapp(setup)
    assert app.get('/v', status=400).text == 'invalid: name is required'
    assert app.get('/v?name=ok').text == 'ok'


def test_status_and_headers_set_before_first_item_are_sent(make_testapp):
    def view(request):
        request.response.status = 201
        request.response.headers['X-Stream'] = 'yes'
        request.response.set_cookie('seen', '1')
        yield 'created'

    app = make_testapp(lambda c: add(c, 'v', view))
    response = app.get('/v', status=201)
    assert response.headers['X-Stream'] == 'yes'
    assert 'seen=1' in response.headers['Set-Cookie']


def test_request_context_inside_the_stream(make_testapp):
    seen = []

    def view(request):
        for _ in range(3):
            seen.append(
                (
                    get_current_request() is request,
                    get_current_registry() is request.registry,
                    tgstream.request._current_obj() is request,
                    tgstream.request.path_info,
                    request.context is not None,
                )
            )
            yield 'x'
            yield flush

    app = make_testapp(lambda c: add(c, 'v', view))
    app.get('/v')
    assert seen == [(True, True, True, '/v', True)] * 3
    assert get_current_request() is None


def test_finished_callbacks_run_after_the_last_item(make_testapp):
    order = []

    def view(request):
        request.add_finished_callback(lambda r: order.append('finished'))
        for n in range(3):
            order.append(n)
            yield str(n)
        request.add_finished_callback(lambda r: order.append('added late'))

    app = make_testapp(lambda c: add(c, 'v', view))
    app.get('/v')
    assert order == [0, 1, 2, 'finished', 'added late']


def test_early_close_sends_generator_exit_and_runs_callbacks(make_app):
    events = []

    def view(request):
        request.add_finished_callback(lambda r: events.append('finished'))
        try:
            for n in range(100):
                yield '%d\n' % n
                yield flush
        except GeneratorExit:
            events.append('GeneratorExit')
            raise

    app = make_app(lambda c: add(c, 'v', view))
    response = open_stream(app, '/v')
    assert response.next_chunk() == b'0\n'
    assert events == []
    response.close()
    assert events == ['GeneratorExit', 'finished']
    assert manager.stack == []


def test_head_request_closes_the_primed_stream(make_testapp):
    events = []

    def view(request):
        request.add_finished_callback(lambda r: events.append('finished'))
        try:
            yield 'body'
            events.append('second item')
        except GeneratorExit:
            events.append('GeneratorExit')

    app = make_testapp(lambda c: add(c, 'v', view))
    assert app.head('/v').body == b''
    assert events == ['GeneratorExit', 'finished']


def test_stream_is_closed_exactly_once(make_app):
    closes = []

    class Items:
        def __iter__(self):
            yield 'a'
            yield 'b'

        def close(self):
            closes.append(1)

    app = make_app(lambda c: add(c, 'v', lambda request: Items()))
    response = open_stream(app, '/v')
    assert response.read() == b'ab'
    response.close()
    response.app_iter.close()
    assert closes == [1]


def test_error_after_first_item_is_logged_and_raised(make_app, tgstream_log):
    events = []

    def view(request):
        request.add_finished_callback(lambda r: events.append('finished'))
        yield 'first'
        yield flush
        raise ValueError('boom')

    app = make_app(lambda c: add(c, 'v', view))
    response = open_stream(app, '/v?x=1')
    assert response.next_chunk() == b'first'
    with pytest.raises(ValueError, match='boom'):
        response.next_chunk()
    assert events == ['finished']
    (record,) = tgstream_log.records
    assert 'GET /v?x=1' in record.getMessage()
    assert record.exc_info[0] is ValueError
    response.close()


def test_non_text_item_is_a_clear_error(make_app, tgstream_log):
    def view(request):
        yield 'ok'
        yield flush
        yield 42

    app = make_app(lambda c: add(c, 'v', view))
    response = open_stream(app, '/v')
    response.next_chunk()
    with pytest.raises(tgstream.StreamEncodeError, match=r'item 1 \(builtins.int\)'):
        response.next_chunk()
    response.close()
    # the log line itself names the request, the item and the reason
    (record,) = tgstream_log.records
    message = record.getMessage()
    assert 'GET /v' in message and 'outcome=error' in message
    assert 'item 1 (builtins.int)' in message
    assert 'must yield str or bytes' in message


def test_non_iterable_result_is_an_error_before_headers(make_testapp):
    def setup(config):
        add(config, 'v', lambda request: None)

    app = make_testapp(setup)
    with pytest.raises(TypeError, match=r'returned None.*generator function'):
        app.get('/v')


def test_empty_stream(make_testapp):
    def view(request):
        return
        yield

    app = make_testapp(lambda c: add(c, 'v', view))
    assert app.get('/v').body == b''


def test_stream_whose_priming_raised_is_closed_once_and_keeps_the_context():
    # The error goes to the exception view, which still needs request.context;
    # a garbage collection of the stream later must not close it again.
    from pyramid.testing import DummyRequest

    from tgstream.renderers.encoders import RawEncoder

    closes = []

    class Items:
        def __iter__(self):
            return self

        def __next__(self):
            raise ValueError('before the first item')

        def close(self):
            closes.append(1)

    request = DummyRequest()
    request.context = context = object()
    stream = StreamIterator(request, Items(), RawEncoder())
    with pytest.raises(ValueError):
        stream.prime()
    assert stream.closed and closes == [1]
    del stream
    gc.collect()
    assert closes == [1]
    assert request.context is context


# -- coalescing --------------------------------------------------------------


def _stream(items, **kw):
    from pyramid.testing import DummyRequest

    from tgstream.renderers.encoders import RawEncoder

    request = DummyRequest()
    stream = StreamIterator(request, items, RawEncoder(), **kw)
    stream.prime()
    return stream


def test_short_runs_are_written_item_by_item_long_fast_runs_coalesced():
    # fewer than fast_run items: one write each, whatever the timing
    stream = _stream(iter(['a'] * 10), chunk_size=4, flush_interval=60)
    assert list(stream) == [b'a'] * 10
    stream.close()
    # every pull fast: 16 writes through, then writes of chunk_size bytes
    stream = _stream(iter(['a'] * 40), chunk_size=4, flush_interval=60)
    stream.fast_pull = 60.0
    assert list(stream) == [b'a'] * 16 + [b'aaaa'] * 6
    stream.close()


def test_flush_marker_forces_a_write():
    stream = _stream(iter(['a', 'b', flush, 'c', flush, flush, 'd']), flush_interval=60)
    stream.fast_run = 0  # coalesce from the start
    stream.fast_pull = 60.0
    assert list(stream) == [b'a', b'b', b'c', b'd']
    stream.close()


def test_items_arriving_after_the_flush_interval_are_written_at_once():
    # flush_interval=0: every item arrives "late" relative to the last write
    stream = _stream(iter(['0', '1', '2', '3']), flush_interval=0)
    stream.fast_run = 0  # even while coalescing
    stream.fast_pull = 60.0
    assert list(stream) == [b'0', b'1', b'2', b'3']
    stream.close()


def test_coalescing_keeps_output_byte_identical():
    items = ['%d,' % n for n in range(5000)]
    stream = _stream(iter(items), chunk_size=1000, flush_interval=60)
    stream.fast_pull = 60.0
    chunks = list(stream)
    assert b''.join(chunks) == ''.join(items).encode()
    assert max(len(c) for c in chunks) < 1000 + 10
    stream.close()


def test_len_is_never_reported():
    stream = _stream(iter(['a']))
    with pytest.raises(TypeError):
        len(stream)
    stream.close()


# -- close from the garbage collector on another thread -----------------------


def test_dropped_stream_is_closed_by_gc_on_another_thread(make_app):
    events = []

    def view(request):
        request.add_finished_callback(
            lambda r: events.append(('finished', get_current_request() is r))
        )
        try:
            yield 'a'
            yield flush
            yield 'b'
        except GeneratorExit:
            events.append(('GeneratorExit', get_current_request() is request))

    app = make_app(lambda c: add(c, 'v', view))
    holder = {'response': open_stream(app, '/v')}
    holder['response'].next_chunk()
    stacks = []

    def drop():
        del holder['response']
        gc.collect()
        stacks.append(list(manager.stack))

    thread = threading.Thread(target=drop)
    thread.start()
    thread.join(10)
    # The collector may finalise the view's generator before the stream (they
    # are garbage together), so only the stream's own cleanup is sure to run
    # with the request pushed; nothing is left on the collecting thread.
    assert [name for name, _ in events] == ['GeneratorExit', 'finished']
    assert events[1] == ('finished', True)
    assert stacks == [[]]


def test_encoder_error_marker_is_sent_then_the_response_is_cut(make_app, tgstream_log):
    from tgstream.renderers.encoders import RawEncoder

    class Marked(RawEncoder):
        def error(self):
            return b'\n{"error": "stream failed"}\n'

    def factory(info):
        class Renderer:
            content_type = 'application/x-ndjson'

            def __call__(self, value, request):
                return value, Marked()

        return Renderer()

    def view(request):
        yield '{"n": 1}'
        yield flush
        raise ValueError('secret')

    def setup(config):
        config.add_stream_renderer('marked', factory)
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', stream=True, renderer='marked')

    response = open_stream(make_app(setup), '/v')
    assert response.next_chunk() == b'{"n": 1}'
    assert response.next_chunk() == b'\n{"error": "stream failed"}\n'
    with pytest.raises(ValueError):
        response.next_chunk()
    assert b'secret' not in response.body
    response.close()

