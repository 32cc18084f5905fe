"""One view per stream renderer: JSON, NDJSON, CSV and server-sent events."""
from pyramid.config import Configurator

import tgstream
from tgstream import ServerSentEvent, expose

ROWS = [
    {'id': 1, 'name': 'ada', 'email': 'ada@example.com'},
    {'id': 2, 'name': 'grace', 'email': 'grace@example.com'},
    {'id': 3, 'name': '=HYPERLINK("http://x")', 'email': 'mallory@example.com'},
]


@expose('json', route_name='users_json', stream=True)
def users_json(request):
    yield from ROWS                        # one JSON array, written as it goes


@expose('ndjson', route_name='users_ndjson', stream=True)
def users_ndjson(request):
    yield from ROWS                        # one JSON document per line


@expose('csv', route_name='users_csv', stream=True, filename='users.csv',
        columns=['id', 'name', 'email'])
def users_csv(request):
    yield from ROWS                        # a header row, then one row per item


@expose('sse', route_name='ticks', stream=True)
def ticks(request):
    for n in range(1, 4):
        yield ServerSentEvent({'n': n}, event='tick', id=str(n))
    yield tgstream.flush
    yield ServerSentEvent('bye', event='end')


def main(global_config=None, **settings):
    with Configurator(settings=settings) as config:
        config.include('tgstream')
        for name, pattern in [('users_json', '/users.json'), ('users_ndjson', '/users.ndjson'),
                              ('users_csv', '/users.csv'), ('ticks', '/ticks')]:
            config.add_route(name, pattern)
        config.scan('examples.feeds')
        return config.make_wsgi_app()
