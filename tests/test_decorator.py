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


def test_expose_filename_and_content_type_on_a_non_stream_view(app):
    response = app.get('/report')
    assert response.text == '{"a": 1}'
    assert response.content_type == 'text/x-json'
    assert response.headers['Content-Disposition'] == 'attachment; filename="report.json"'


def test_expose_translates_turbogears_keywords_for_streams(app):
    response = app.get('/csv')
    assert response.text.splitlines() == ['a\tb', '1\t2']
    assert response.headers['Content-Disposition'] == 'attachment; filename="r.csv"'
    assert response.content_type == 'text/csv'


def test_expose_settings_use_prefixed_options():
    settings = expose('csv', stream=True, content_type='text/csv', filename='a.csv',
                      columns=['a'], dialect='excel', stream_options={'bom': True},
                      route_name='r').settings
    assert settings == {
        'renderer': 'csv', 'stream': True, 'route_name': 'r',
        'stream_content_type': 'text/csv', 'stream_filename': 'a.csv',
        'stream_options': {'bom': True, 'columns': ['a'], 'dialect': 'excel'},
    }


def test_expose_shortcut_given_twice_is_an_error():
    with pytest.raises(ConfigurationError, match='columns given both'):
        expose('csv', stream=True, columns=['a'], stream_options={'columns': ['b']})
    with pytest.raises(ConfigurationError, match='filename or stream_filename, not both'):
        expose(stream=True, filename='a.csv', stream_filename='b.csv')


def test_view_config_prefixed_options(app):
    response = app.get('/vc_typed')
    assert response.text == 'typed'
    assert response.content_type == 'text/x-typed'
    assert response.headers['Content-Disposition'] == 'attachment; filename="typed.txt"'


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


@pytest.mark.parametrize('kwargs, old, new', [
    ({'stream_content_type': 'text/csv'}, 'stream_content_type', 'content_type'),
    ({'stream_filename': 'a.csv'}, 'stream_filename', 'filename'),
    ({'stream_options': {'columns': ['a']}}, "stream_options={'columns'", 'columns'),
    ({'stream_options': {'dialect': 'excel'}}, "stream_options={'dialect'", 'dialect'),
])
def test_second_spellings_are_deprecated_and_still_work(kwargs, old, new):
    with pytest.warns(DeprecationWarning, match=r'expose\(%s.*deprecated; use expose\(%s=' % (
            old.replace('{', r'\{'), new)) as warned:
        decorator = expose('csv', stream=True, **kwargs)
    assert warned[0].filename == __file__   # points at the caller
    assert decorator.settings == {'renderer': 'csv', 'stream': True, **kwargs}


def test_the_one_spellings_do_not_warn(recwarn):
    expose('csv', stream=True, content_type='text/csv', filename='a.csv', columns=['a'],
           dialect='excel', stream_options={'bom': True})
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
