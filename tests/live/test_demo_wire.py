"""The demo as ``pserve development.ini`` starts it, on a real server.

``development.ini`` is copied into a temporary directory (its database is
``%(here)s/tgstream-demo.sqlite``, so the copy gets a fresh one) with only
the port and ``demo.pause`` changed. One test runs ``pserve`` in a
subprocess -- the README's command, toolbar included; the other loads the
same ini with ``pyramid.paster.get_app`` and serves it in-process.
"""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pyramid.paster import get_app

from tgstream.testing import serve

from .conftest import read_timed

pytestmark = pytest.mark.live

CHECKOUT = Path(__file__).resolve().parents[2]
PAUSE = 0.3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def copy_ini(tmp_path: Path, port: int, **settings: str) -> Path:
    """development.ini in ``tmp_path``, listening on ``port``, with
    ``settings`` (``demo_pause='0.3'`` for ``demo.pause``) replaced."""
    text = (CHECKOUT / 'development.ini').read_text()
    text, n = re.subn(r'(?m)^listen = .*$', 'listen = 127.0.0.1:%d' % port, text)
    assert n == 1
    for key, value in settings.items():
        key = key.replace('_', '.', 1)
        text, n = re.subn(r'(?m)^%s = .*$' % re.escape(key), '%s = %s' % (key, value), text)
        assert n == 1, key
    ini = tmp_path / 'development.ini'
    ini.write_text(text)
    return ini


class Pserve:
    """``pserve <ini>`` in a subprocess; its log goes to a file."""

    def __init__(self, ini: Path, port: int):
        self.url = 'http://127.0.0.1:%d' % port
        self.log_path = ini.with_suffix('.log')
        self.log_file = self.log_path.open('wb')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'pyramid.scripts.pserve', str(ini)],
            cwd=ini.parent, stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        self.wait_until_serving(port)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors='replace')

    def wait_until_serving(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail('pserve exited with %s:\n%s' % (self.process.returncode, self.log))
            try:
                socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail('pserve did not listen within %ss:\n%s' % (timeout, self.log))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log_file.close()


@pytest.mark.slow
def test_pserve_development_ini_seeds_once_and_streams(tmp_path):
    port = free_port()
    ini = copy_ini(tmp_path, port, demo_pause=str(PAUSE))
    server = Pserve(ini, port)
    try:
        assert 'seeded 100000 users' in server.log

        response, chunks, complete = read_timed(server.url + '/tg/stream_list')
        assert response.status_code == 200 and complete
        assert json.loads(b''.join(c for _, c in chunks)) == list(range(1, 11))
        # nine pauses of PAUSE s: the first number is there long before the last
        assert chunks[-1][0] - chunks[0][0] > 5 * PAUSE
        assert len(chunks) >= 5

        with httpx.Client(timeout=30) as client:
            index = client.get(server.url + '/')
            assert index.status_code == 200 and '/users/import' in index.text
            export = client.get(server.url + '/users.ndjson')
            assert export.status_code == 200
            assert len(export.content.splitlines()) == 100_000
    finally:
        server.stop()

    again = Pserve(ini, port)
    try:
        assert 'already has users: not seeding' in again.log
        assert 'seeded 100000' not in again.log
        with httpx.Client(timeout=30) as client:
            assert len(client.get(again.url + '/users.json').json()) == 100_000
    finally:
        again.stop()


def test_get_app_of_development_ini_streams_events_and_imports(tmp_path):
    ini = copy_ini(tmp_path, free_port(), demo_pause=str(PAUSE), demo_seed_users='300')
    app = get_app(str(ini), 'main')
    try:
        with serve(app) as server:
            # server-sent events arrive one by one
            response, chunks, complete = read_timed(server.url + '/events?count=4')
            assert response.headers['content-type'].startswith('text/event-stream')
            assert complete
            body = b''.join(c for _, c in chunks).decode()
            assert body.count('event: tick') == 4 and 'event: end' in body
            first_tick = next(t for t, c in chunks if b'event: tick' in c)
            assert chunks[-1][0] - first_tick > 2 * PAUSE

            # a real multipart upload; progress streams; rows are committed
            rows = ''.join('wire%d,wire%d@example.com\n' % (n, n) for n in range(1200))
            with httpx.Client(timeout=30) as client:
                result = client.post(server.url + '/users/import',
                                     files={'file': ('u.csv', 'name,email\n' + rows)})
                assert result.status_code == 200
                lines = [json.loads(line) for line in result.text.splitlines()]
                assert lines[-1] == {'status': 'written', 'rows': 1200, 'written': 1200,
                                     'committed': 'when this response ends'}
                assert len(client.get(server.url + '/users.json').json()) == 1500

                bad = client.post(server.url + '/users/import',
                                  files={'file': ('u.csv', b'name,email\n\xff,x@y\n')})
                assert bad.status_code == 400 and 'not UTF-8' in bad.text
                assert len(client.get(server.url + '/users.json').json()) == 1500
    finally:
        app.registry['dbengine'].dispose()
