"""The stream tween: detection of plain generator responses, placement."""
from __future__ import annotations

import os

import pytest
from pyramid.httpexceptions import HTTPNotFound, HTTPOk
from pyramid.interfaces import ITweens
from pyramid.response import FileResponse, Response
from pyramid.threadlocal import get_current_request

from tgstream.stream import StreamIterator
from tgstream.tween import is_streamable


def add(config, name, view):
    config.add_route(name, '/' + name)
    config.add_view(view, route_name=name)


def test_generator_response_gets_the_guarantees(make_testapp):
    order = []

    def view(request):
        request.add_finished_callback(lambda r: order.append('finished'))

        def body():
            order.append(get_current_request() is request)
            yield b'a'
            order.append('last')
            yield b'b'

        return Response(app_iter=body())

    response = make_testapp(lambda c: add(c, 'g', view)).get('/g')
    assert response.body == b'ab'
    assert order == [True, 'last', 'finished']


def test_error_before_first_item_reaches_exception_views(make_testapp):
    def view(request):
        def body():
            raise HTTPNotFound()
            yield b''

        return Response(app_iter=body())

    make_testapp(lambda c: add(c, 'g', view)).get('/g', status=404)


def test_lists_files_and_http_exceptions_are_left_alone(make_testapp, tmp_path):
    path = tmp_path / 'f.txt'
    path.write_bytes(b'file body')
    seen = {}

    def remember(name, response):
        seen[name] = response
        return response

    def setup(config):
        add(config, 'list', lambda r: remember('list', Response(app_iter=[b'x'])))
        add(config, 'file', lambda r: remember('file', FileResponse(str(path), request=r)))
        add(config, 'http', lambda r: remember('http', HTTPOk(app_iter=iter([b'ok']))))

    app = make_testapp(setup)
    assert app.get('/list').body == b'x'
    assert app.get('/file').body == b'file body'
    assert app.get('/http').body == b'ok'
    for response in seen.values():
        assert not isinstance(response.app_iter, StreamIterator)


def test_is_streamable():
    def gen():
        yield b''

    assert is_streamable(Response(app_iter=gen()), {})
    # other iterators only for a stream=True view's Response
    assert not is_streamable(Response(app_iter=iter([b'a'])), {})
    assert is_streamable(Response(app_iter=iter([b'a'])), {}, any_iterator=True)
    assert not is_streamable(Response(app_iter=map(bytes, [b'a'])), {})
    assert not is_streamable(Response(app_iter=[b'a']), {})
    assert not is_streamable(Response(app_iter=(b'a',)), {})
    assert not is_streamable(HTTPOk(app_iter=gen()), {})

    class Wrapper:
        def __init__(self, f, size=0):
            self.f = f

        def __iter__(self):
            return self

        def __next__(self):
            raise StopIteration

    assert not is_streamable(Response(app_iter=Wrapper(None)), {})
    assert not is_streamable(
        Response(app_iter=Wrapper(None)), {'wsgi.file_wrapper': Wrapper}, True
    )
    with open(os.devnull, 'rb') as f:
        assert not is_streamable(Response(app_iter=f), {}, any_iterator=True)


@pytest.mark.parametrize(
    'includes',
    [
        ('pyramid_tm', 'pyramid_retry', 'pyramid_debugtoolbar', 'tgstream'),
        ('tgstream', 'pyramid_debugtoolbar', 'pyramid_retry', 'pyramid_tm'),
    ],
)
def test_tween_sits_under_excview_and_pyramid_tm(make_app, includes):
    app = make_app(includes=includes)
    names = [name for name, _ in app.registry.getUtility(ITweens).implicit()]
    assert names.index('tgstream.tween.stream_tween_factory') > names.index(
        'pyramid.tweens.excview_tween_factory'
    )
    assert names.index('pyramid.tweens.excview_tween_factory') > names.index(
        'pyramid_tm.tm_tween_factory'
    )


def test_detect_generators_false_leaves_generator_responses_to_pyramid(make_testapp):
    order = []

    def view(request):
        request.add_finished_callback(lambda r: order.append('finished'))

        def body():
            order.append(get_current_request())
            yield b'a'

        return Response(app_iter=body())

    def setup(config):
        add(config, 'g', view)
        config.add_route('s', '/s')
        config.add_view(lambda request: iter(['s']), route_name='s', stream=True)

    app = make_testapp(setup, {'tgstream.detect_generators': 'false'})
    assert app.get('/g').body == b'a'
    assert order == ['finished', None]     # Pyramid's own behaviour: not a stream
    assert app.get('/s').body == b's'      # stream=True views still stream
    tweens = app.app.registry.queryUtility(ITweens)
    assert 'tgstream.tween.stream_tween_factory' in tweens.sorter.names  # listed, but
    # the factory returned the handler itself: no per-request call
    from tgstream.tween import stream_tween_factory

    def handler(request):
        return None

    registry = app.app.registry
    assert stream_tween_factory(handler, registry) is handler
