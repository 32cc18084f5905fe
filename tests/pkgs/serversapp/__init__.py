"""The app of the server matrix (tests/live/test_servers_matrix.py), run by
every server in a subprocess: ``tests.pkgs.serversapp:make_app()``, or the
module-level ``application`` of ``tests/pkgs/serversapp/wsgi.py``.

SQLite file ``$TGSTREAM_SERVERS_DB``; every view that writes adds the user
named ``add=`` (unique), so a test learns whether its request committed.
Handshakes with the client go through files in ``$TGSTREAM_SERVERS_DIR``
(the client creates ``<dir>/<name>``): they work across processes and
users (Apache's children run as www-data).
"""
from __future__ import annotations

import os
import time

from pyramid.threadlocal import get_current_request

import tgstream
from tests.dbapp import User, build_db_app, make_engine


def _add(request) -> None:
    # add the user, and create ``<dir>/done-<name>`` when the request has
    # finished (tgstream runs finished callbacks after the stream's
    # transaction ended): the client then knows the outcome is in the database
    name = request.params.get('add')
    if name:
        request.dbsession.add(User(name=name))
        request.dbsession.flush()
        request.add_finished_callback(lambda request: _touch('done-' + name))


def _touch(name: str) -> None:
    path = os.path.join(os.environ['TGSTREAM_SERVERS_DIR'], name)
    with open(path, 'w'):
        pass


def _appears(name: str, timeout: float = 10.0) -> bool:
    path = os.path.join(os.environ['TGSTREAM_SERVERS_DIR'], name)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def count(request):
    """``n`` lines (``add=``: commit a user); with ``wait=<name>``, wait
    after the first line until the client created ``<name>``."""
    _add(request)
    for n in range(int(request.params.get('n', 3))):
        yield 'line %d\n' % n
        yield tgstream.flush
        if n == 0 and 'wait' in request.params:
            _appears(request.params['wait'])


def boom(request):
    """Two lines, then the view raises."""
    _add(request)
    yield 'line 0\n'
    yield 'line 1\n'
    yield tgstream.flush
    raise RuntimeError('boom')


def commit_fails(request):
    """Two lines; the commit at the end fails."""
    _add(request)

    def fail(*args):
        raise RuntimeError('the commit failed')

    request.tm.get().addBeforeCommitHook(fail)
    yield 'line 0\n'
    yield 'line 1\n'


def pause(request):
    """One line, then wait until the client created ``wait=<name>`` (it
    closed its connection first), then ``left`` more lines (0 or 1) and
    the end: a stream that did not notice the client commits."""
    _add(request)
    yield 'line 0\n'
    yield tgstream.flush
    _appears(request.params['wait'])
    for n in range(int(request.params.get('left', 0))):
        yield 'line %d\n' % (n + 1)


def who(request):
    """``n`` lines naming the current request's ``id=`` (each stream must
    see its own request), ``pause`` seconds apart."""
    delay = float(request.params.get('pause', 0.02))
    for n in range(int(request.params.get('n', 5))):
        current = get_current_request()
        yield '%s %d\n' % (current.params['id'] if current is not None else None, n)
        yield tgstream.flush
        time.sleep(delay)


def make_app():
    engine = make_engine('sqlite:///' + os.environ['TGSTREAM_SERVERS_DB'])

    def setup(config):
        for view in (count, boom, commit_fails, pause, who):
            config.add_route(view.__name__, '/' + view.__name__)
            config.add_view(view, route_name=view.__name__, stream=True)

    return build_db_app(engine, setup)
