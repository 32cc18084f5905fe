"""tgstream next to add-ons that use generic view option names.

Pyramid hands a view option to every deriver and predicate of that name:
tgstream's options are prefixed, so cornice's ``content_type`` predicate and
an app's own ``content_type`` predicate work exactly as without tgstream.
Each app is built with and without ``config.include('tgstream')`` and the
two must answer every request identically (status, headers, body).
"""
from __future__ import annotations

import json

import pytest
from pyramid.config import Configurator

from tests.compare import exchange

JSON = {'content_type': 'application/json'}


def build(setup, with_tgstream: bool):
    with Configurator() as config:
        if with_tgstream:
            config.include('tgstream')
        setup(config)
        return config.make_wsgi_app()


def both(setup):
    return build(setup, False), build(setup, True)


# -- cornice -----------------------------------------------------------------

def cornice_setup(config):
    from cornice import Service

    items = Service(name='items', path='/items', description='items')
    stored = []

    @items.get()
    def list_items(request):
        return {'items': stored}

    @items.post(content_type='application/json')
    def add_item(request):
        stored.append(request.json_body)
        request.response.status = 201
        return {'added': request.json_body}

    config.include('cornice')
    config.add_cornice_service(items)


CORNICE_REQUESTS = {
    'get': ('GET', '/items', {}),
    'post json': ('POST', '/items', dict(body=json.dumps({'n': 1}).encode(), **JSON)),
    'post json with charset': (
        'POST', '/items',
        {'body': b'{"n": 2}', 'content_type': 'application/json; charset=utf-8'},
    ),
    'post text/plain (415)': ('POST', '/items', {'body': b'n=1', 'content_type': 'text/plain'}),
    'post form (415)': (
        'POST', '/items',
        {'body': b'n=1', 'content_type': 'application/x-www-form-urlencoded'},
    ),
    'put (405)': ('PUT', '/items', dict(body=b'{}', **JSON)),
    'unknown path (404)': ('GET', '/nothing', {}),
}


def test_cornice_app_starts_with_tgstream():
    # tgstream used to claim ``content_type``: cornice's predicate then failed
    # at startup ("content_type='' is not a media type")
    app = build(cornice_setup, True)
    status, _, body = exchange(app, 'POST', '/items', body=b'{"n": 1}', **JSON)
    assert status == '201 Created'
    assert json.loads(body) == {'added': {'n': 1}}


def test_cornice_unsupported_media_type_is_415():
    app = build(cornice_setup, True)
    status, headers, body = exchange(app, 'POST', '/items', body=b'x', content_type='text/plain')
    assert status.startswith('415')
    assert 'application/json' in body.decode()


def test_cornice_service_is_identical_with_and_without_tgstream():
    without, with_ = both(cornice_setup)
    for name, (method, path, args) in CORNICE_REQUESTS.items():
        expected = exchange(without, method, path, **args)
        assert exchange(with_, method, path, **args) == expected, name
    # the GET after the POSTs sees what each app stored
    assert json.loads(exchange(with_, 'GET', '/items')[2]) == {'items': [{'n': 1}, {'n': 2}]}


# -- an app's own ``content_type`` view predicate ------------------------------

class ContentTypePredicate:
    """Matches the request's media type: one (a string) or any of a tuple."""

    def __init__(self, value, config):
        self.values = (value,) if isinstance(value, str) else tuple(value)

    def text(self):
        return 'content_type = %s' % (self.values,)

    phash = text

    def __call__(self, context, request):
        return request.content_type in self.values


def predicate_setup(config):
    config.add_view_predicate('content_type', ContentTypePredicate)
    config.add_route('upload', '/upload')

    def as_json(request):
        return {'kind': 'json', 'body': request.json_body}

    def as_csv(request):
        return 'csv: %s' % request.text

    def fallback(request):
        request.response.status = 415
        return 'unsupported %s' % request.content_type

    config.add_view(as_json, route_name='upload', renderer='json',
                    content_type=('application/json', 'application/vnd.api+json'))
    config.add_view(as_csv, route_name='upload', renderer='string', content_type='text/csv')
    config.add_view(fallback, route_name='upload', renderer='string')


PREDICATE_REQUESTS = {
    'tuple value, first': ('POST', '/upload', dict(body=b'[1]', **JSON)),
    'tuple value, second': (
        'POST', '/upload', {'body': b'[2]', 'content_type': 'application/vnd.api+json'}),
    'string value': ('POST', '/upload', {'body': b'a,b', 'content_type': 'text/csv'}),
    'no match': ('POST', '/upload', {'body': b'x', 'content_type': 'text/plain'}),
    'no body': ('GET', '/upload', {}),
}


def test_custom_content_type_predicate_starts_with_tgstream():
    app = build(predicate_setup, True)  # a tuple value used to be refused
    assert exchange(app, 'POST', '/upload', body=b'[1]', **JSON)[0] == '200 OK'


def test_string_predicate_value_does_not_become_the_response_type():
    # tgstream used to set the *response* type to the predicate's value
    app = build(predicate_setup, True)
    status, headers, body = exchange(
        app, 'POST', '/upload', body=b'a,b', content_type='text/csv')
    assert body == b'csv: a,b'
    assert dict(headers)['Content-Type'] == 'text/plain; charset=UTF-8'


@pytest.mark.parametrize('name', sorted(PREDICATE_REQUESTS))
def test_custom_predicate_app_is_identical_with_and_without_tgstream(name):
    without, with_ = both(predicate_setup)
    method, path, args = PREDICATE_REQUESTS[name]
    assert exchange(with_, method, path, **args) == exchange(without, method, path, **args)


def test_stream_view_next_to_the_predicate_uses_prefixed_options():
    def setup(config):
        predicate_setup(config)
        config.add_route('export', '/export')

        def export(request):
            yield 'a,b\n'

        config.add_view(export, route_name='export', stream=True, content_type='text/csv',
                        stream_content_type='text/csv', stream_filename='export.csv')

    app = build(setup, True)
    status, headers, body = exchange(app, 'GET', '/export', content_type='text/csv')
    assert (status, body) == ('200 OK', b'a,b\n')
    assert dict(headers)['Content-Type'] == 'text/csv; charset=UTF-8'
    assert dict(headers)['Content-Disposition'] == 'attachment; filename="export.csv"'
    # the predicate still selects: another request type finds no view
    assert exchange(app, 'GET', '/export', content_type='text/plain')[0].startswith('404')
