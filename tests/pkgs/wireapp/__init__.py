"""A small streaming app for servers in a subprocess (gunicorn):
``tests.pkgs.wireapp:make_app()``."""
import time

from pyramid.config import Configurator

import tgstream


def count(request):
    pause = float(request.params.get('pause', 0))
    for n in range(int(request.params.get('n', 5))):
        yield '%d\n' % n
        yield tgstream.flush
        time.sleep(pause)


def boom(request):
    yield 'partial\n'
    yield tgstream.flush
    raise RuntimeError('boom')


def make_app():
    with Configurator() as config:
        config.include('tgstream')
        for view in (count, boom):
            config.add_route(view.__name__, '/' + view.__name__)
            config.add_view(view, route_name=view.__name__, stream=True)
        return config.make_wsgi_app()
