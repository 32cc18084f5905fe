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

from .. import _compat


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
        channels = _compat.waitress_channels(server)
        while channels:
            for channel in list(channels.values()):
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


class ServerProcess(_Server):
    """A server running in a subprocess (see :func:`serve_gunicorn`,
    :func:`serve_uwsgi`, :func:`serve_mod_wsgi`, :func:`serve_cheroot`,
    :func:`serve_werkzeug`)."""

    def __init__(self, process: subprocess.Popen, output: list[str], name: str = ''):
        self.process = process
        #: the server's log lines so far (its stderr, and stdout if it logs there)
        self.output = output
        #: what it is, e.g. ``'uwsgi --http-socket'``
        self.name = name
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

    def __repr__(self) -> str:
        return '<%s %s on %s>' % (type(self).__name__, self.name, self.url)


class GunicornServer(ServerProcess):
    """A gunicorn master process (see :func:`serve_gunicorn`)."""

    #: the worker class (``--worker-class``)
    worker_class = 'gthread'

    def __init__(self, process: subprocess.Popen, output: list[str], name: str = 'gunicorn'):
        super().__init__(process, output, name)


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
    worker_class: str = 'gthread',
) -> Iterator[GunicornServer]:
    """Run ``gunicorn`` with gthread workers on 127.0.0.1 and a free port.

    ``app`` is gunicorn's ``module:variable`` or ``module:factory()``,
    imported in the subprocess (``cwd``, default the current directory, is
    on its ``sys.path``); pass its configuration through ``env``. gthread,
    not sync: a sync worker is killed when one response outlives
    ``--timeout`` (``worker_class`` picks another: ``'sync'``,
    ``'gevent'``...). ``args`` are extra command-line options. Waits at most
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
        '--worker-class', worker_class,
        '--workers', str(workers),
        '--threads', str(threads),
        '--timeout', str(timeout),
        '--graceful-timeout', '5',
        '--chdir', cwd or os.getcwd(),
        *_private_flags(),
        *args,
        app,
    ]
    server = GunicornServer(_start(command, env), [])
    server.worker_class = worker_class
    with _running(server, command, ready_timeout, ready_path, booted=('Booting worker', workers)):
        yield server


def _start(command: Sequence[str], env: dict[str, str] | None, cwd: str | None = None,
           **options: Any) -> subprocess.Popen:
    return subprocess.Popen(
        list(command),
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **options,
    )


@contextlib.contextmanager
def _running(
    server: ServerProcess,
    command: Sequence[str],
    ready_timeout: float,
    ready_path: str | None,
    booted: tuple[str, int] = ('', 0),
) -> Iterator[None]:
    # Collect the server's output, learn its port (from a "Listening at"
    # line unless it was given), wait until ``booted[1]`` lines containing
    # ``booted[0]`` were printed and ``ready_path`` answers; stop it at the end.
    process = server.process
    output = server.output
    ready = threading.Event()
    marker, expected = booted

    def collect():
        # Read the log continuously: a full pipe would block the server.
        seen = 0
        for line in process.stdout or ():
            output.append(line.rstrip('\n'))
            match = _LISTENING.search(line)
            if match and not server.port:
                server.port = int(match.group(1))
            if marker and marker in line:
                seen += 1
            if server.port and seen >= expected:
                ready.set()
        ready.set()  # the process ended: let the waiter see it

    if server.port and not expected:
        ready.set()
    reader = threading.Thread(target=collect, name='tgstream-server-log', daemon=True)
    reader.start()
    name = server.name or command[0]
    try:
        if not ready.wait(ready_timeout) or process.poll() is not None or not server.port:
            raise RuntimeError(
                '%s did not start within %ss: %s\n%s'
                % (name, ready_timeout, ' '.join(command), '\n'.join(output[-30:]))
            )
        if ready_path is not None and not _wait_for_http(server, ready_path, ready_timeout):
            raise RuntimeError(
                '%s did not start within %ss (no response to %s): %s\n%s'
                % (name, ready_timeout, ready_path, ' '.join(command), '\n'.join(output[-30:]))
            )
        yield
    finally:
        server.stop()
        reader.join(5)


def _free_port() -> int:
    # For servers that cannot bind port 0 and say which port they got
    # (uWSGI, Apache): a port free a moment ago (a race with other servers,
    # hence the retries in _retry_port).
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _on_a_free_port(start, attempts: int = 3) -> Iterator[ServerProcess]:
    # ``start(port)`` -> a context manager yielding the server; a start
    # that fails (the port was taken meanwhile) is retried on another port.
    for attempt in range(attempts):
        manager = start(_free_port())
        try:
            server = manager.__enter__()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            continue
        break
    try:
        yield server
    except BaseException:
        if not manager.__exit__(*sys.exc_info()):
            raise
    else:
        manager.__exit__(None, None, None)


@contextlib.contextmanager
def serve_uwsgi(
    app: str,
    *,
    mode: str = 'http-socket',
    threads: int = 4,
    processes: int = 1,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    cwd: str | None = None,
    ready_timeout: float = 30.0,
    ready_path: str = '/',
) -> Iterator[ServerProcess]:
    """Run uWSGI (the ``uwsgi`` of this Python's environment) on 127.0.0.1
    and a free port.

    ``app`` is ``module:callable`` (uWSGI's ``--module``; a factory must be
    called in the module). ``mode`` is ``'http-socket'`` (the workers speak
    HTTP themselves), ``'http'`` (uWSGI's HTTP router in front of them,
    with ``--http-keepalive`` and ``--http-auto-chunked``) or ``'socket'``
    (the uwsgi protocol, for nginx's ``uwsgi_pass``: see
    :func:`serve_nginx`; ready once uWSGI says the app is). ``cwd`` (default
    the current directory) is on the app's ``sys.path``; ``env`` is set for
    it. Otherwise like :func:`serve_gunicorn`.
    """
    if mode not in ('http-socket', 'http', 'socket'):
        raise ValueError("serve_uwsgi: mode must be 'http-socket', 'http' or 'socket', not %r"
                         % (mode,))
    uwsgi = os.path.join(os.path.dirname(sys.executable), 'uwsgi')
    directory = cwd or os.getcwd()
    router = ['--http-keepalive', '--http-auto-chunked'] if mode == 'http' else []

    def start(port: int):
        command = [
            uwsgi, '--%s' % mode, '127.0.0.1:%d' % port, *router,
            '--master', '--die-on-term', '--need-app', '--strict',
            '--processes', str(processes), '--threads', str(threads),
            '--home', sys.prefix, '--chdir', directory, '--pythonpath', directory,
            '--module', app, *args,
        ]
        server = ServerProcess(_start(command, env), [], 'uwsgi --%s' % mode)
        server.port = port
        if mode == 'socket':  # no HTTP to ask: uWSGI's own line
            running = _running(server, command, ready_timeout, None, booted=('WSGI app 0', 1))
        else:
            running = _running(server, command, ready_timeout, ready_path)
        return _yielding(server, running)

    with _on_a_free_port(start) as server:
        yield server


@contextlib.contextmanager
def _yielding(server: ServerProcess, running) -> Iterator[ServerProcess]:
    with running:
        yield server


_NGINX_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid %(prefix)s/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(prefix)s/body;
    proxy_temp_path %(prefix)s/proxy;
    fastcgi_temp_path %(prefix)s/fastcgi;
    uwsgi_temp_path %(prefix)s/uwsgi;
    scgi_temp_path %(prefix)s/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            %(location)s
        }
    }
}
"""


def nginx_binary() -> str | None:
    """The ``nginx`` on the PATH (or Debian's /usr/sbin/nginx), or ``None``."""
    import shutil

    found = shutil.which('nginx')
    if found is None and os.access('/usr/sbin/nginx', os.X_OK):
        found = '/usr/sbin/nginx'
    return found


@contextlib.contextmanager
def serve_nginx(location: str, *, ready_timeout: float = 10.0) -> Iterator[ServerProcess]:
    """Run nginx on 127.0.0.1 and a free port, with one ``location /`` made
    of the directives ``location``, e.g. ``'include /etc/nginx/uwsgi_params;
    uwsgi_pass 127.0.0.1:%d; uwsgi_buffering off;' % upstream.port``. Its error log is
    the server's ``output``; its prefix is a temporary directory.
    """
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError('serve_nginx: nginx is not installed (Debian: apt-get install nginx)')
    import tempfile

    with tempfile.TemporaryDirectory(prefix='tgstream-nginx-') as prefix:
        def start(port: int):
            path = os.path.join(prefix, 'nginx-%d.conf' % port)
            with open(path, 'w') as f:
                f.write(_NGINX_CONFIG % {'prefix': prefix, 'port': port, 'location': location})
            command = [binary, '-p', prefix, '-c', path, '-e', 'stderr']
            server = ServerProcess(_start(command, None), [], 'nginx')
            server.port = port
            return _yielding(server, _running(server, command, ready_timeout, '/'))

        with _on_a_free_port(start) as server:
            yield server


def mod_wsgi_express(python: str | None = None) -> str | None:
    """The ``mod_wsgi-express`` next to ``python`` (default: this Python),
    or ``None``."""
    path = os.path.join(os.path.dirname(python or sys.executable), 'mod_wsgi-express')
    return path if os.access(path, os.X_OK) else None


@contextlib.contextmanager
def serve_mod_wsgi(
    script: str,
    *,
    python: str | None = None,
    threads: int = 4,
    processes: int = 1,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    ready_timeout: float = 60.0,
    ready_path: str = '/',
) -> Iterator[ServerProcess]:
    """Run Apache with mod_wsgi (``mod_wsgi-express start-server``, daemon
    mode) on 127.0.0.1 and a free port, serving the WSGI ``script`` (a file
    defining ``application``).

    ``python`` is the interpreter of the environment mod_wsgi is installed
    in (default: this one). Apache's children run as another user
    (www-data when started as root): that Python, ``script`` and what it
    imports must be readable by them. ``env`` is passed to the application
    as its process environment. The server root is a temporary directory.
    """
    express = mod_wsgi_express(python)
    if express is None:
        raise RuntimeError('serve_mod_wsgi: no mod_wsgi-express next to %s'
                           % (python or sys.executable))
    import tempfile

    root = tempfile.mkdtemp(prefix='tgstream-mod_wsgi-')
    os.chmod(root, 0o755)
    # Apache refuses to serve as root: its children run as www-data
    user = ['--user', 'www-data', '--group', 'www-data'] if os.geteuid() == 0 else []

    def start(port: int):
        command = [
            express, 'start-server', script,
            '--host', '127.0.0.1', '--port', str(port),
            '--server-root', os.path.join(root, str(port)),
            '--processes', str(processes), '--threads', str(threads),
            '--log-to-terminal', '--startup-log', '--locale', 'C.UTF-8',
            *user, *args,
        ]
        server = ServerProcess(_start(command, env), [], 'mod_wsgi-express')
        server.port = port
        return _yielding(server, _running(server, command, ready_timeout, ready_path))

    try:
        with _on_a_free_port(start) as server:
            yield server
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def serve_cheroot(
    app: str,
    *,
    threads: int = 8,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    ready_timeout: float = 30.0,
    ready_path: str = '/',
) -> Iterator[ServerProcess]:
    """Run cheroot's WSGI server in a subprocess on 127.0.0.1 and a free
    port, with :class:`tgstream.connection.CherootGateway` (which puts the
    connection's socket in the environ). ``app`` as for
    :func:`serve_gunicorn`."""
    with _serve_runner('cheroot', app, str(threads), env, cwd, ready_timeout, ready_path) as s:
        yield s


@contextlib.contextmanager
def serve_werkzeug(
    app: str,
    *,
    threaded: bool = False,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    ready_timeout: float = 30.0,
    ready_path: str = '/',
) -> Iterator[ServerProcess]:
    """Run werkzeug's development server (``make_server``, what
    ``run_simple()`` runs) in a subprocess on 127.0.0.1 and a free port.

    ``threaded=False`` is ``run_simple()``'s default: one request at a
    time, answered in HTTP/1.0. ``app`` as for :func:`serve_gunicorn`.
    """
    with _serve_runner('werkzeug', app, str(int(threaded)), env, cwd,
                       ready_timeout, ready_path) as server:
        yield server


@contextlib.contextmanager
def _serve_runner(kind, app, option, env, cwd, ready_timeout, ready_path):
    command = [sys.executable, '-m', 'tgstream.testing.servers', kind, app, option]
    server = ServerProcess(_start(command, env, cwd=cwd or os.getcwd()), [], kind)
    if kind == 'werkzeug':
        server.name = 'werkzeug threaded' if option == '1' else 'werkzeug'
    with _running(server, command, ready_timeout, ready_path):
        yield server


def _load(spec: str) -> Any:
    # gunicorn's syntax: ``module:variable`` or ``module:factory()``
    import importlib

    module, _, name = spec.partition(':')
    call = name.endswith('()')
    target = getattr(importlib.import_module(module), name[:-2] if call else name)
    return target() if call else target


def _main(argv: Sequence[str]) -> None:
    # ``python -m tgstream.testing.servers cheroot|werkzeug app option``:
    # bind 127.0.0.1:0, print gunicorn's "Listening at" line, serve.
    kind, spec, option = argv
    sys.path.insert(0, os.getcwd())
    app = _load(spec)
    if kind == 'cheroot':
        from cheroot import wsgi

        from tgstream.connection import CherootGateway

        server = wsgi.Server(('127.0.0.1', 0), app, numthreads=int(option))
        server.gateway = CherootGateway
        server.prepare()
        port = server.bind_addr[1]
        serve_forever = server.serve
    else:
        from werkzeug.serving import make_server

        wserver = make_server('127.0.0.1', 0, app, threaded=option == '1')
        port = wserver.server_port
        serve_forever = wserver.serve_forever
    print('Listening at: http://127.0.0.1:%d' % port, flush=True)
    import signal

    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    serve_forever()


def _private_flags() -> list[str]:
    # gunicorn >= 24 opens a control socket in the home directory by
    # default; a test server must not share one with anything else.
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:  # pragma: no cover - let gunicorn report itself
        return []
    names = {setting.name for setting in KNOWN_SETTINGS}
    return ['--no-control-socket'] if 'control_socket_disable' in names else []


def _wait_for_http(server: ServerProcess, path: str, timeout: float) -> bool:
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


if __name__ == '__main__':
    _main(sys.argv[1:])
