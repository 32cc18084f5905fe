"""The ``stream_view`` deriver and its options."""
from __future__ import annotations

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from tgstream.deriver import stream_view


def counting(request):
    yield 'one'


def configure(**options):
    with Configurator() as config:
        config.include('tgstream')
        config.add_route('r', '/r')
        config.add_view(counting, route_name='r', **options)
        return config.make_wsgi_app()


def test_add_view_stream_option(make_testapp):
    def setup(config):
        config.add_route('r', '/r')
        config.add_view(counting, route_name='r', stream=True)

    assert make_testapp(setup).get('/r').text == 'one'


@pytest.mark.parametrize(
    'options, message',
    [
        ({'stream': 1}, r'tests.test_deriver.counting.*stream=1'),
        ({'stream': True, 'stream_transaction': 'later'},
         r'tests.test_deriver.counting.*stream_transaction=.later.*stream.*view'),
        ({'stream': True, 'stream_content_type': ''}, r'counting.*stream_content_type'),
        ({'stream': True, 'stream_filename': 3}, r'counting.*stream_filename=3'),
        ({'stream': True, 'stream_options': ['a']}, r'counting.*stream_options'),
        ({'stream_options': {'columns': ['a']}}, r'counting.*need stream=True'),
        ({'stream': True, 'renderer': 'string'},
         r"tests.test_deriver.counting.*renderer 'string' cannot stream"),
    ],
)
def test_bad_options_are_configuration_errors(options, message):
    with pytest.raises(ConfigurationError, match=message):
        configure(**options)


def test_unknown_option_still_rejected_without_include():
    with pytest.raises(ConfigurationError, match='Unknown view options'):
        with Configurator() as config:
            config.add_route('r', '/r')
            config.add_view(counting, route_name='r', stream=True)


def test_deriver_returns_view_untouched_without_options():
    class Info:
        options = {}
        original_view = counting

    assert stream_view(counting, Info) is counting


def test_non_stream_content_type_shortcut(make_testapp):
    def setup(config):
        config.add_route('r', '/r')
        config.add_view(lambda r: {'a': 1}, route_name='r', renderer='json',
                        stream_content_type='application/vnd.api+json')

    response = make_testapp(setup).get('/r')
    assert response.content_type == 'application/vnd.api+json'
    assert response.json == {'a': 1}


def test_stream_view_returning_a_response_is_streamed(make_testapp):
    from pyramid.response import Response
    from pyramid.threadlocal import get_current_request

    def view(request):
        def gen():
            yield get_current_request().path_info.encode()

        return Response(app_iter=gen(), content_type='text/plain')

    def setup(config):
        config.add_route('r', '/r')
        config.add_view(view, route_name='r', stream=True)

    assert make_testapp(setup).get('/r').text == '/r'


def test_csv_columns_and_dialect_in_stream_options(make_testapp):
    def rows(request):
        yield {'b': 2, 'a': 1, 'c': 3}

    def setup(config):
        config.add_route('r', '/r')
        config.add_view(rows, route_name='r', stream=True, renderer='csv',
                        stream_options={'columns': ['a', 'b'], 'dialect': 'excel-tab'})

    assert make_testapp(setup).get('/r').text.splitlines() == ['a\tb', '1\t2']


@pytest.mark.parametrize('name', ['content_type', 'filename', 'columns', 'dialect'])
def test_generic_names_are_not_tgstream_view_options(name):
    # Pyramid refuses an option no deriver or predicate claims
    with pytest.raises(ConfigurationError, match='Unknown view options.*%s' % name):
        configure(stream=True, renderer='csv', **{name: 'x'})


def test_the_deriver_claims_only_prefixed_names():
    from tgstream.deriver import OPTIONS

    assert stream_view.options == OPTIONS
    assert all(option.startswith('stream') for option in OPTIONS)
    assert set(OPTIONS) == {
        'stream', 'stream_transaction', 'stream_options',
        'stream_content_type', 'stream_filename',
    }


@pytest.mark.parametrize(
    'options',
    [{}, {'stream': False}, {'renderer': 'json', 'route_name': 'r', 'attr': 'x'}],
)
def test_a_view_without_tgstream_options_is_returned_as_is(options):
    class Info:
        original_view = counting

    Info.options = options
    assert stream_view(counting, Info) is counting


class Report:
    """A view result a registered response adapter turns into a Response."""

    def __init__(self, lines):
        self.lines = lines


def report_response(report):
    from pyramid.response import Response

    def body():
        for line in report.lines:
            yield line.encode() + b'\n'

    return Response(app_iter=body(), content_type='text/x-report')


def test_a_registered_response_adapter_is_used_like_rendered_view(make_testapp):
    # Pyramid's rendered_view adapts a result with queryAdapterOrSelf(result,
    # IResponse); a stream view does the same, and streams the adapted body.
    seen = []

    def view(request):
        seen.append(request)
        return Report(['a', 'b'])

    def setup(config):
        config.add_response_adapter(report_response, Report)
        config.add_route('r', '/r')
        config.add_view(view, route_name='r', stream=True)

    app = make_testapp(setup)
    response = app.get('/r')
    assert response.body == b'a\nb\n'
    assert response.content_type == 'text/x-report'
    assert len(seen) == 1


def test_an_unadapted_object_is_still_refused(make_testapp):
    def setup(config):
        config.add_route('r', '/r')
        config.add_view(lambda request: Report([]), route_name='r', stream=True)

    with pytest.raises(Exception, match='Report'):
        make_testapp(setup).get('/r')


@pytest.mark.parametrize('renderer', ['csv', 'ndjson', 'sse'])
def test_stream_only_renderer_without_stream_says_so(renderer):
    """Not Pyramid's "No such renderer factory" at the first request: a
    configuration error naming the view and stream=True."""
    with pytest.raises(ConfigurationError) as info:
        configure(renderer=renderer)
    message = str(info.value)
    assert 'tests.test_deriver.counting' in message
    assert "renderer %r streams only with stream=True" % renderer in message


def test_a_pyramid_renderer_of_the_same_name_is_left_alone():
    def csv_factory(info):
        return lambda value, system: 'plain'

    with Configurator() as config:
        config.include('tgstream')
        config.add_renderer('csv', csv_factory)
        config.add_route('r', '/r')
        config.add_view(counting, route_name='r', renderer='csv')
        config.make_wsgi_app()  # no error: Pyramid renders it
