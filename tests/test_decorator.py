"""``expose`` through ``config.scan()``: functions, methods, plain views."""
from __future__ import annotations

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from tgstream import expose


@pytest.fixture
def app(make_testapp):
    return make_testapp(lambda config: config.include('tests.pkgs.exposeapp'))


def test_expose_on_a_function_streams(app):
    response = app.get('/count')
    assert response.body == b'1\n2\n3\n'
    assert response.content_type == 'text/plain'


def test_expose_on_class_methods(app):
    response = app.get('/method?a=x')
    assert response.body == b'a,b\nx,2\n'
    assert response.content_type == 'text/csv'
    assert app.post('/method').body == b'posted'


def test_expose_without_stream_is_view_config(app):
    assert app.get('/plain').text == 'not a stream'
    typed = app.get('/typed')
    assert typed.text == 'typed'
    assert typed.content_type == 'text/x-custom'


def test_view_config_stream_option(app):
    assert app.get('/vc').text == 'view_config streams too'


def test_expose_keeps_the_function(app):
    from tests.pkgs.exposeapp import count

    assert count.__name__ == 'count'
    assert list(count(None)) == ['1\n', '2\n', '3\n']


def test_decorator_can_be_reused():
    decorator = expose(route_name='x', stream=True)
    first = decorator(lambda request: iter(()))
    second = decorator(lambda request: iter(()))
    assert callable(first) and callable(second)


def test_invalid_stream_value_names_the_view():
    with pytest.raises(ConfigurationError, match=r'bad_view.*stream=.yes.'):
        with Configurator() as config:
            config.include('tgstream')
            config.add_route('r', '/r')

            def bad_view(request):
                yield 'x'

            config.add_view(bad_view, route_name='r', stream='yes')
