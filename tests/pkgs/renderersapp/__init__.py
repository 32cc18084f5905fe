"""Stream renderers used through ``view_config`` and ``expose`` (scanned)."""
from pyramid.view import view_config

from tgstream import expose


@view_config(route_name='view_config', renderer='ndjson', stream=True)
def with_view_config(request):
    yield 1
    yield 2


@expose('json', route_name='expose', stream=True)
def with_expose(request):
    for n in (1, 2):
        yield {'n': n}


@expose('csv', route_name='expose_csv', stream=True, stream_options={'columns': ['n']})
def with_expose_csv(request):
    yield {'n': 1, 'other': 'left out'}


def includeme(config):
    config.add_route('view_config', '/view_config')
    config.add_route('expose', '/expose')
    config.add_route('expose_csv', '/expose_csv')
    config.scan(__name__)
