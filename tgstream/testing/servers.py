"""Real servers on 127.0.0.1 for wire-level tests: waitress in-process
(:func:`serve`), gunicorn gthread in a subprocess (:func:`serve_gunicorn`).

Why not WebTest's ``webtest.http.StopableWSGIServer`` (it also runs waitress
in a thread): its ``create()`` turns ``expose_tracebacks`` on, which the
tests that a failed stream never leaks its exception's text must not have;
its wrapper answers every path containing ``__application__`` itself and
serves any file named by ``?__file__=`` for paths containing ``__file__``,
so the app under test does not see every request; ``get_free_port()`` picks
a port and closes it before the server binds it (a race with other servers
on a shared machine; :func:`serve` binds port 0 and keeps the socket); and
its ``shutdown()`` sets the process-wide ``waitress`` logger to FATAL, which
hides the log records later tests read. :func:`serve` is its ``create()`` /
``shutdown()`` pair without those effects.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit


class _Server:
    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash."""
        return 'http://%s:%d' % (self.host, self.port)

    def disconnect_after(
        self, path: str, until: bytes, timeout: float = 10.0, headers: dict | None = None
    ) -> bytes:
        """GET ``path``, read until ``until`` arrived, then drop the connection.

        See :func:`disconnect_after`.
        """
        return disconnect_after(self.url + path, until, timeout=timeout, headers=headers)


def disconnect_after(
    url: str, until: bytes, timeout: float = 10.0, headers: dict | None = None
) -> bytes:
    """GET ``url`` on a raw socket, read until ``until`` arrived, then reset
    the connection (``SO_LINGER`` 0: the server's next send fails at once, as
    with a client that crashed or a browser tab that was closed).

    Returns the raw bytes received (status line, headers, chunk framing).
    Raises ``AssertionError`` if the response ended, or ``timeout`` passed,
    before ``until`` arrived.
    """
    parts = urlsplit(url)
    target = (parts.path or '/') + ('?' + parts.query if parts.query else '')
    lines = ['GET %s HTTP/1.1' % target, 'Host: %s' % parts.netloc]
    lines += ['%s: %s' % item for item in (headers or {}).items()]
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    received = b''
    try:
        sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1'))
        deadline = time.monotonic() + timeout
        while until not in received:
            if time.monotonic() > deadline:
                raise AssertionError('%r did not arrive within %ss from %s; got %r'
                                     % (until, timeout, url, received[-200:]))
            data = sock.recv(65536)
            if not data:
                raise AssertionError('the response to %s ended before %r; got %r'
                                     % (url, until, received[-200:]))
            received += data
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.close()
    return received


class LiveServer(_Server):
    """A running waitress server (see :func:`serve`)."""

    def __init__(self, server, thread: threading.Thread):
        self.server = server
        self.thread = thread
        self.host, self.port = server.socket.getsockname()[:2]

    def shutdown(self, timeout: float = 5.0) -> None:
        server = self.server
        server.was_shutdown = True
        while server._map:
            for channel in list(server._map.values()):
                channel.close()
        server.task_dispatcher.shutdown(timeout=timeout)
        self.thread.join(timeout)


@contextlib.contextmanager
def serve(app, ready_timeout: float = 5.0, **options: Any) -> Iterator[LiveServer]:
    """Serve ``app`` with waitress on 127.0.0.1 and a free port.

    ``options`` are waitress adjustments (``threads``,
    ``channel_request_lookahead``, ``outbuf_high_watermark``...). Yields a
    :class:`LiveServer`; its ``url`` has no trailing slash. The server stops
    when the block ends (streams still running are left to finish on their
    threads).

    Example::

        with serve(app, channel_request_lookahead=1) as server:
            with httpx.stream('GET', server.url + '/export') as response:
                first = next(response.iter_raw())
    """
    from waitress.server import create_server

    options.setdefault('host', '127.0.0.1')
    options.setdefault('port', 0)
    options.setdefault('threads', 4)
    server = create_server(app, **options)
    server.was_shutdown = False

    def run():
        try:
            server.run()
        except (OSError, ValueError):  # the map closed under the loop
            if not server.was_shutdown:  # pragma: no cover
                raise

    thread = threading.Thread(target=run, name='tgstream-test-server', daemon=True)
    thread.start()
    live = LiveServer(server, thread)
    try:
        _wait_for_port(live.host, live.port, ready_timeout)
        yield live
    finally:
        live.shutdown()


class GunicornServer(_Server):
    """A gunicorn master process (see :func:`serve_gunicorn`)."""

    def __init__(self, process: subprocess.Popen, output: list[str]):
        self.process = process
        #: gunicorn's log lines so far (its error log goes to stderr)
        self.output = output
        self.host = '127.0.0.1'
        self.port = 0

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


_LISTENING = re.compile(r'Listening at: http://127\.0\.0\.1:(\d+)')


@contextlib.contextmanager
def serve_gunicorn(
    app: str,
    *,
    threads: int = 8,
    workers: int = 1,
    timeout: int = 30,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    cwd: str | None = None,
    ready_timeout: float = 30.0,
    ready_path: str = '/',
) -> Iterator[GunicornServer]:
    """Run ``gunicorn`` with gthread workers on 127.0.0.1 and a free port.

    ``app`` is gunicorn's ``module:variable`` or ``module:factory()``,
    imported in the subprocess (``cwd``, default the current directory, is
    on its ``sys.path``); pass its configuration through ``env``. gthread,
    not sync: a sync worker is killed when one response outlives
    ``--timeout``. ``args`` are extra command-line options. Waits at most
    ``ready_timeout`` seconds until ``ready_path`` gets an HTTP response (any
    status: the app is loaded), and stops the server (SIGTERM, then SIGKILL)
    when the block ends.

    Example::

        with serve_gunicorn('myapp.wsgi:application', threads=8) as server:
            assert httpx.get(server.url + '/export').status_code == 200
    """
    command = [
        sys.executable, '-m', 'gunicorn',
        '--bind', '127.0.0.1:0',
        '--worker-class', 'gthread',
        '--workers', str(workers),
        '--threads', str(threads),
        '--timeout', str(timeout),
        '--graceful-timeout', '5',
        '--chdir', cwd or os.getcwd(),
        *_private_flags(),
        *args,
        app,
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    output: list[str] = []
    server = GunicornServer(process, output)
    ready = threading.Event()

    def collect():
        # Read gunicorn's log continuously: a full pipe would block it.
        booted = 0
        for line in process.stderr or ():
            output.append(line.rstrip('\n'))
            match = _LISTENING.search(line)
            if match:
                server.port = int(match.group(1))
            if 'Booting worker' in line:
                booted += 1
            if server.port and booted >= workers:
                ready.set()
        ready.set()  # the process ended: let the waiter see it

    reader = threading.Thread(target=collect, name='tgstream-gunicorn-log', daemon=True)
    reader.start()
    try:
        if not ready.wait(ready_timeout) or process.poll() is not None or not server.port:
            raise RuntimeError(
                'gunicorn did not start within %ss: %s\n%s'
                % (ready_timeout, ' '.join(command), '\n'.join(output[-30:]))
            )
        if not _wait_for_http(server, ready_path, ready_timeout):
            raise RuntimeError(
                'gunicorn did not start within %ss (no response to %s): %s\n%s'
                % (ready_timeout, ready_path, ' '.join(command), '\n'.join(output[-30:]))
            )
        yield server
    finally:
        server.stop()
        reader.join(5)


def _private_flags() -> list[str]:
    # gunicorn >= 24 opens a control socket in the home directory by
    # default; a test server must not share one with anything else.
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:  # pragma: no cover - let gunicorn report itself
        return []
    names = {setting.name for setting in KNOWN_SETTINGS}
    return ['--no-control-socket'] if 'control_socket_disable' in names else []


def _wait_for_http(server: GunicornServer, path: str, timeout: float) -> bool:
    # The workers load the app after "Booting worker": only a response
    # shows that it loaded (a worker that fails to boot ends the master).
    import http.client

    deadline = time.monotonic() + timeout
    while server.process.poll() is None and time.monotonic() < deadline:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=2)
        try:
            connection.request('GET', path)
            connection.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
        finally:
            connection.close()
    return False


def _wait_for_port(host: str, port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
