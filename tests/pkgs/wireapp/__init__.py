"""A small streaming app for servers in a subprocess (gunicorn):
``tests.pkgs.wireapp:make_app()``."""
import os
import time

from pyramid.config import Configurator

import tgstream


def count(request):
    """``n`` lines, ``pause`` s apart; with ``wait=<directory>``, after each
    line wait (10 s at most) until the client created ``<directory>/<line>``
    -- a handshake across processes -- and send ``late`` if it did not."""
    pause = float(request.params.get('pause', 0))
    wait = request.params.get('wait')
    for n in range(int(request.params.get('n', 5))):
        yield '%d\n' % n
        yield tgstream.flush
        if wait and not _appears(os.path.join(wait, str(n)), 10.0):
            yield 'late\n'
        time.sleep(pause)


def _appears(path, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def boom(request):
    yield 'partial\n'
    yield tgstream.flush
    raise RuntimeError('boom')


def make_app():
    # the server's record of a failed stream shortened (tgstream.serverlog)
    with Configurator(settings={'tgstream.shorten_server_log': 'true'}) as config:
        config.include('tgstream')
        for view in (count, boom):
            config.add_route(view.__name__, '/' + view.__name__)
            config.add_view(view, route_name=view.__name__, stream=True)
        return config.make_wsgi_app()
