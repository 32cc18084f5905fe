"""A tiny app whose views are registered by config.scan() through expose."""
from pyramid.view import view_config, view_defaults

from tgstream import expose


def includeme(config):
    for name in ('count', 'method', 'json_like', 'plain', 'typed', 'vc',
                 'report', 'csv', 'vc_typed'):
        config.add_route(name, '/' + name)
    config.scan('.')


@expose(route_name='count', stream=True, content_type='text/plain')
def count(request):
    for n in range(1, 4):
        yield '%s\n' % n


@expose(route_name='plain', renderer='string')
def plain(request):
    return 'not a stream'


@expose('string', route_name='typed', content_type='text/x-custom')
def typed(request):
    return 'typed'


@expose('json', route_name='report', filename='report.json', content_type='text/x-json')
def report(request):
    return {'a': 1}


@expose('csv', route_name='csv', stream=True, filename='r.csv',
        columns=['a', 'b'], dialect='excel-tab')
def csv_rows(request):
    yield {'b': 2, 'a': 1}


@view_config(route_name='vc_typed', stream=True, stream_content_type='text/x-typed',
             stream_filename='typed.txt')
def vc_typed(request):
    yield 'typed'


@view_config(route_name='vc', stream=True)
def with_view_config(request):
    yield 'view_config '
    yield 'streams too'


@view_defaults(route_name='method')
class Controller:
    def __init__(self, request):
        self.request = request

    @expose(stream=True, content_type='text/csv', request_method='GET')
    def stream(self):
        yield 'a,b\n'
        yield '%s,2\n' % self.request.params.get('a', '1')

    @expose(stream=True, request_method='POST')
    def post(self):
        yield 'posted'
