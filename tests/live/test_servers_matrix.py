"""The server matrix: the same app (tests/pkgs/serversapp) on every server
Pyramid is deployed with, a raw-socket client, and for each server:
progressive delivery, complete => committed, a failed stream and a failed
commit reach the client cut (or the server is one that cannot, and tgstream
logs its warning), a client that resets or closes normally (FIN) during a
pause commits nothing (where the server lets tgstream see the connection),
the request context under concurrency, HEAD, keep-alive.

What each server shows is :data:`SERVERS`' facts; the table in
docs/production.rst is rendered from them (:func:`render_table`, checked by
``test_the_docs_table_is_the_matrix``). Servers that are not installed skip,
unless ``TGSTREAM_REQUIRE_SERVERS=1`` (CI), where they fail.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass

import pytest

from tests.live import servers_client as http
from tgstream.testing.servers import (
    mod_wsgi_express,
    nginx_binary,
    serve,
    serve_cheroot,
    serve_gunicorn,
    serve_mod_wsgi,
    serve_nginx,
    serve_uwsgi,
    serve_werkzeug,
)

pytestmark = pytest.mark.live

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP = 'tests.pkgs.serversapp:make_app()'
MODULE = 'tests.pkgs.serversapp.wsgi:application'
SCRIPT = str(ROOT / 'tests' / 'pkgs' / 'serversapp' / 'wsgi.py')
# mod_wsgi runs in Apache's children (www-data): a Python they can read
MODWSGI_PYTHON = os.environ.get('TGSTREAM_MODWSGI_PYTHON', str(ROOT / '.venv' / 'modwsgi' / 'bin' / 'python'))
REQUIRED = os.environ.get('TGSTREAM_REQUIRE_SERVERS') == '1'


@dataclass(frozen=True)
class Facts:
    """What a server shows (asserted by the tests below)."""

    #: as the docs table names it
    label: str
    #: a failed stream (or commit) reaches the client cut: ``'chunks'`` (no
    #: last chunk), ``'reset'`` (tgstream resets the connection),
    #: ``'proxy'`` (tgstream resets the proxy's connection to the worker,
    #: and the proxy then leaves out the last chunk) or ``'no'`` (the
    #: response looks complete: tgstream logs its warning)
    cut: str
    #: a client that closed normally (FIN) during a pause commits nothing
    notices_fin: bool
    #: a client that reset its connection during a pause, with two writes
    #: left, commits nothing (False: not guaranteed)
    notices_rst: bool
    #: a second request on the same connection is answered
    keep_alive: bool
    #: the recommended settings (docs)
    settings: str
    #: a request after a HEAD on the same connection gets an intact response
    head_then_request: bool = True


SERVERS: dict[str, Facts] = {
    'waitress': Facts('waitress', 'chunks', True, True, False,
                      '``channel_request_lookahead = 1`` (tgstream then sees a departed client)'),
    'gunicorn-sync': Facts('gunicorn sync', 'chunks', True, True, True,
                           'a ``--timeout`` longer than the longest stream'),
    'gunicorn-gthread': Facts('gunicorn gthread', 'chunks', True, True, True,
                              '``--threads`` >= concurrent streams per worker'),
    'gunicorn-gevent': Facts('gunicorn gevent', 'chunks', True, True, True,
                             'for many long streams (live feeds)'),
    'uwsgi-http-socket': Facts('uWSGI ``--http-socket``', 'reset', True, True, False,
                               '``--http-socket`` (or ``--socket`` behind nginx ``uwsgi_pass``); '
                               '``--enable-threads`` or ``--threads``'),
    'uwsgi-nginx': Facts('uWSGI ``--socket`` behind nginx ``uwsgi_pass``', 'proxy', True, True, True,
                         '``uwsgi_buffering off``; nginx closes the worker\'s connection when the client leaves'),
    'uwsgi-http': Facts('uWSGI ``--http`` router', 'proxy', False, False, True,
                        'prefer ``--http-socket``: the router hides a departed client, and breaks '
                        'keep-alive after a HEAD', head_then_request=False),
    'mod_wsgi': Facts('mod_wsgi-express (daemon mode)', 'no', False, False, True,
                      'put a proxy that cuts in front, or use another server for exports'),
    'mod_wsgi-embedded': Facts('mod_wsgi-express ``--embedded-mode``', 'chunks', False, True, True,
                               'Apache cuts a failed stream itself; a departed client is not seen'),
    'cheroot': Facts('cheroot', 'chunks', True, True, True,
                     '``server.gateway = tgstream.connection.CherootGateway``'),
    'werkzeug': Facts('werkzeug ``run_simple()`` defaults', 'reset', True, True, False,
                      'development only; ``threaded=True`` answers HTTP/1.1'),
    'werkzeug-threaded': Facts('werkzeug ``threaded=True``', 'chunks', True, True, False,
                               'development only'),
}


def _missing(name: str) -> str | None:
    # why a server cannot run here, or None
    if name.startswith('uwsgi') and not os.access(os.path.join(os.path.dirname(sys.executable), 'uwsgi'), os.X_OK):
        return 'uwsgi is not installed in this environment'
    if name == 'uwsgi-nginx' and nginx_binary() is None:
        return 'nginx is not installed (Debian: apt-get install nginx)'
    if name.startswith('mod_wsgi') and mod_wsgi_express(MODWSGI_PYTHON) is None:
        return 'no mod_wsgi-express next to %s (TGSTREAM_MODWSGI_PYTHON)' % MODWSGI_PYTHON
    modules = {'cheroot': 'cheroot', 'werkzeug': 'werkzeug', 'gunicorn-gevent': 'gevent'}
    module = modules.get(name.split('-threaded')[0])
    if module:
        try:
            __import__(module)
        except ImportError:
            return '%s is not installed' % module
    return None


@contextlib.contextmanager
def _start(name: str, env: dict):
    common = {'env': env, 'ready_path': '/count'}
    if name == 'waitress':
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            from tests.pkgs.serversapp import make_app

            with serve(make_app(), channel_request_lookahead=1, threads=8) as server:
                yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    elif name.startswith('gunicorn'):
        with serve_gunicorn(APP, worker_class=name.split('-')[1], cwd=str(ROOT), **common) as server:
            yield server
    elif name == 'uwsgi-nginx':
        with serve_uwsgi(MODULE, mode='socket', cwd=str(ROOT), env=env) as upstream:
            location = ('include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:%d; '
                        'uwsgi_buffering off;' % upstream.port)
            with serve_nginx(location) as server:
                server.output = upstream.output  # the app's log is uWSGI's
                yield server
    elif name.startswith('uwsgi'):
        with serve_uwsgi(MODULE, mode=name.split('-', 1)[1], cwd=str(ROOT), **common) as server:
            yield server
    elif name.startswith('mod_wsgi'):
        args = ['--embedded-mode'] if name.endswith('embedded') else []
        with serve_mod_wsgi(SCRIPT, python=MODWSGI_PYTHON, args=args, **common) as server:
            yield server
    elif name == 'cheroot':
        with serve_cheroot(APP, cwd=str(ROOT), **common) as server:
            yield server
    else:
        with serve_werkzeug(APP, threaded=name.endswith('threaded'), cwd=str(ROOT), **common) as server:
            yield server


class Matrix:
    """One running server and the files its app shares with the client."""

    def __init__(self, name: str, server, directory: str):
        self.name = name
        self.facts = SERVERS[name]
        self.server = server
        self.directory = directory
        self.db = os.path.join(directory, 'db.sqlite')

    def unique(self) -> str:
        return 'u' + uuid.uuid4().hex[:12]

    def touch(self, name: str) -> None:
        with open(os.path.join(self.directory, name), 'w'):
            pass

    def finished(self, name: str, timeout: float = 15.0) -> None:
        """Wait until the request that added ``name`` has finished."""
        path = os.path.join(self.directory, 'done-' + name)
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            assert time.monotonic() < deadline, '%s: the request adding %s never finished' % (self.name, name)
            time.sleep(0.005)

    def committed(self, name: str) -> bool:
        self.finished(name)
        with contextlib.closing(sqlite3.connect(self.db, timeout=10)) as db:
            return db.execute('select count(*) from users where name = ?', (name,)).fetchone()[0] == 1

    def output(self) -> str:
        return '\n'.join(getattr(self.server, 'output', []))


@pytest.fixture(scope='module', params=list(SERVERS))
def matrix(request):
    name = request.param
    why = _missing(name)
    if why:
        if REQUIRED:
            pytest.fail('%s: %s (TGSTREAM_REQUIRE_SERVERS=1)' % (name, why))
        pytest.skip(why)
    directory = tempfile.mkdtemp(prefix='tgstream-matrix-')
    os.chmod(directory, 0o777)  # Apache's children (www-data) write here too
    from tests.dbapp import Base, make_engine

    engine = make_engine('sqlite:///' + os.path.join(directory, 'db.sqlite'))
    Base.metadata.create_all(engine)
    engine.dispose()
    os.chmod(os.path.join(directory, 'db.sqlite'), 0o666)
    env = {'TGSTREAM_SERVERS_DB': os.path.join(directory, 'db.sqlite'), 'TGSTREAM_SERVERS_DIR': directory}
    try:
        with _start(name, env) as server:
            yield Matrix(name, server, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_progressive_delivery(matrix):
    # the view waits (in the server) until the client has its first line
    name = matrix.unique()
    with http.connect(matrix.server) as sock:
        http.send(sock, '/count?n=3&wait=%s' % name)
        first = http.receive(sock, until=b'line 0\n')
        assert first.status == 200 and first.ending == 'open'
        matrix.touch(name)
    # (the rest of the body on another request: the reader above stopped)
    response = http.exchange(matrix.server, '/count?n=3&wait=%s' % name)
    assert response.body == b'line 0\nline 1\nline 2\n', matrix.name


def test_a_complete_stream_commits(matrix):
    name = matrix.unique()
    response = http.exchange(matrix.server, '/count?n=3&add=%s' % name)
    assert (response.status, response.ending, response.body) == (200, 'complete', b'line 0\nline 1\nline 2\n')
    assert matrix.committed(name)


@pytest.mark.parametrize('path', ['/boom', '/commit_fails'])
def test_a_failed_stream_is_cut(matrix, path):
    name = matrix.unique()
    response = http.exchange(matrix.server, '%s?add=%s' % (path, name))
    assert response.status == 200
    assert response.body == b'line 0\nline 1\n'
    assert not matrix.committed(name)
    cut = matrix.facts.cut
    if cut == 'no':
        # the server ends it as complete; tgstream says so in its log
        assert response.ending == 'complete', response
        deadline = time.monotonic() + 10
        while 'which ends the response as if it were complete' not in matrix.output():
            assert time.monotonic() < deadline, matrix.output()[-2000:]
            time.sleep(0.02)
    elif cut == 'reset':
        assert response.ending == 'reset', (matrix.name, response)
    elif cut == 'proxy':
        assert (response.framing, response.ending) == ('chunked', 'cut'), (matrix.name, response)
    else:
        assert response.framing == 'chunked' and response.client_can_tell, (matrix.name, response)


#: how long a FIN or RST is given to cross the loopback, a proxy and the
#: server's event loop before the view goes on (a margin on a loaded machine:
#: the server has no event a client could wait for)
MARGIN = 0.25


@pytest.mark.parametrize('left', [0, 1])
def test_a_client_that_closes_normally_during_a_pause_commits_nothing(matrix, left):
    name = matrix.unique()
    sock = http.connect(matrix.server)
    http.send(sock, '/pause?add=%s&wait=%s&left=%d' % (name, name, left))
    assert http.receive(sock, until=b'line 0\n').ending == 'open'
    http.close_with_fin(sock)
    time.sleep(MARGIN)  # the FIN crosses the loopback (and any proxy) first
    matrix.touch(name)
    assert matrix.committed(name) is not matrix.facts.notices_fin, matrix.name


def test_a_client_that_resets_during_a_pause_commits_nothing(matrix):
    # (two writes left: the second fails on a server that writes to the client)
    name = matrix.unique()
    sock = http.connect(matrix.server)
    http.send(sock, '/pause?add=%s&wait=%s&left=2' % (name, name))
    assert http.receive(sock, until=b'line 0\n').ending == 'open'
    http.close_with_rst(sock)
    time.sleep(MARGIN)  # the RST reaches the server's loop (waitress') first
    matrix.touch(name)
    committed = matrix.committed(name)
    if matrix.facts.notices_rst:
        assert not committed, matrix.name
    # else: a race between the proxy passing the reset on and the worker's
    # last writes (measured both ways behind the uWSGI router): not guaranteed


def test_each_stream_sees_its_own_request(matrix):
    results: dict[str, bytes] = {}

    def read(ident):
        results[ident] = http.exchange(matrix.server, '/who?n=4&pause=0.02&id=%s' % ident).body

    threads = [threading.Thread(target=read, args=(ident,)) for ident in ('a', 'b', 'c')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for ident in ('a', 'b', 'c'):
        assert results[ident] == b''.join(b'%s %d\n' % (ident.encode(), n) for n in range(4)), matrix.name


def test_head_answers_headers_only(matrix):
    # and, on a connection kept alive, the next response is intact (the uWSGI
    # router with --http-auto-chunked writes a last chunk after a HEAD)
    with http.connect(matrix.server) as sock:
        http.send(sock, '/count?n=2', method='HEAD')
        head = http.receive(sock, method='HEAD')
        assert head.status == 200
        assert head.headers.get('content-type', '').startswith('text/plain')
        if not head.keeps_alive:
            return
        http.send(sock, '/count?n=2')
        if not matrix.facts.head_then_request:
            with pytest.raises(http.NotHTTP, match=re.escape(repr(b'0\r\n\r\n')[:-1])):
                http.receive(sock, leftover=head.leftover)
            return
        response = http.receive(sock, leftover=head.leftover)
    assert (response.status, response.ending, response.body) == (200, 'complete', b'line 0\nline 1\n'), matrix.name


def test_keep_alive(matrix):
    with http.connect(matrix.server) as sock:
        http.send(sock, '/count?n=2')
        first = http.receive(sock)
        assert first.ending == 'complete'
        if not first.keeps_alive:
            assert not matrix.facts.keep_alive, (matrix.name, first)
            return
        http.send(sock, '/count?n=1')
        second = http.receive(sock)
    assert matrix.facts.keep_alive, matrix.name
    assert (second.ending, second.body) == ('complete', b'line 0\n')


# -- the docs table -----------------------------------------------------------

_CUT = {
    'chunks': 'cut (no last chunk)',
    'reset': 'cut (tgstream resets the connection)',
    'proxy': 'cut (tgstream resets the proxy\'s connection)',
    'no': '**looks complete**: tgstream logs a WARNING',
}


def render_table() -> str:
    """The guarantees table of docs/production.rst, from :data:`SERVERS`."""
    rows = [('server', 'failed stream or commit', 'client FIN during a pause',
             'client RST during a pause', 'keep-alive', 'notes, recommended settings')]
    for facts in SERVERS.values():
        rows.append((
            facts.label,
            _CUT[facts.cut],
            'aborted, nothing committed' if facts.notices_fin else '**not seen**: commits',
            'aborted' if facts.notices_rst else '**not guaranteed**',
            ('yes' if facts.head_then_request else '**broken after a HEAD**') if facts.keep_alive else 'no',
            facts.settings,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = '  '.join('=' * width for width in widths)
    lines = [rule, '  '.join(cell.ljust(width) for cell, width in zip(rows[0], widths)).rstrip(), rule]
    for row in rows[1:]:
        lines.append('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    lines.append(rule)
    return '\n'.join(lines)


def test_the_docs_table_is_the_matrix():
    text = (ROOT / 'docs' / 'production.rst').read_text()
    assert render_table() in text, 'docs/production.rst: paste this table\n\n' + render_table()


if __name__ == '__main__':  # print the table for docs/production.rst
    print(render_table())
