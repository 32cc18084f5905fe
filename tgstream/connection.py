"""The client's connection, as each WSGI server hands it to the application.

Two guarantees depend on it. A stream that fails (or whose commit fails)
must reach the client *cut*; most servers show that by leaving out the
terminating chunk, but some end the response as if it were complete
(uWSGI's ``--http-socket`` sends no framing at all, werkzeug's default
server answers HTTP/1.0, any server answering an HTTP/1.0 request closes a
body without length). Where the server hands the application its
connection, :meth:`Connection.abort` makes the cut visible: ``SO_LINGER``
0, so that the server's own close of the failed response sends an RST,
which HTTP clients report as a failed transfer (curl exit 56, httpx
``ReadError``). And a client that closes normally (a FIN, as a browser
closing a tab does) while a stream pauses is not seen by the server until
two writes later; :meth:`Connection.client_gone` peeks at the socket
(``recv(1, MSG_PEEK | MSG_DONTWAIT) == b''``) so that the stream aborts
before its commit.

The handles, each server's own:

========================  ==============================================
gunicorn (every worker)   ``environ['gunicorn.socket']``
werkzeug's dev server     ``environ['werkzeug.socket']``
uWSGI                     ``uwsgi.connection_fd()`` (the ``uwsgi`` module
                          inside the worker)
cheroot                   ``environ['cheroot.socket']``, put there by
                          :class:`tgstream.connection.CherootGateway`
                          (cheroot's environ has no socket of its own)
waitress                  none; ``environ['waitress.client_disconnected']``
                          (with ``channel_request_lookahead`` > 0)
mod_wsgi                  none (daemon mode: the application talks to
                          Apache over a UNIX socket; embedded mode: the
                          connection is Apache's, not exposed; Apache cuts
                          a failed response there itself)
========================  ==============================================

Behind a proxy (the uWSGI ``--http`` router, nginx) the handle is the
proxy's connection to the application: reset, the uWSGI router leaves out
the last chunk it writes otherwise; but a client that left the proxy stays
unseen. mod_wsgi gives no handle: in daemon mode :func:`cut` logs a
warning.
"""
from __future__ import annotations

import _socket
import fcntl
import logging
import os
import socket
import struct
import sys
import time
from typing import Any, Callable

log = logging.getLogger('tgstream')

__all__ = [
    'Connection',
    'client_probe',
    'close_delimited',
    'connection_of',
    'cut',
    'uncuttable_server',
]

#: :meth:`Connection.client_gone_after_pause` peeks only if the last
#: question was at least this many seconds ago. (Between items, the stream's
#: delivery loop asks only after a slow pull -- see ``after_pause`` --
#: so the items of a fast run pay nothing; this bounds the questions asked
#: once per write and before the commit.)
PROBE_PAUSE = 0.002

_LINGER_RST = struct.pack('ii', 1, 0)
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
_ENVIRON_KEY = 'tgstream.connection'
_NONE = object()


class Connection:
    """The socket a server reads a request from and writes its response to.

    ``server`` names the server it came from (``'gunicorn'``,
    ``'werkzeug'``, ``'uwsgi'``, ``'cheroot'``); ``fileno`` is the
    server's file descriptor. Each call works on a duplicate of it, closed
    before the call returns: the socket stays the server's (a duplicate
    left open would keep the connection open after the server closed it),
    its blocking mode is untouched, and a gevent socket's or a socket with
    a timeout's waiting is bypassed. Use it only while the server is
    serving the request (inside the response's iteration).
    """

    def __init__(self, server: str, fileno: int):
        self.server = server
        self.fileno = fileno
        self._asked = 0.0
        self._ends: tuple = ()
        sock = self._socket()  # remember which connection this is
        try:
            self._ends = (sock.getsockname(), sock.getpeername())
        finally:
            sock.close()

    def _socket(self) -> socket.socket:
        # A plain socket object on a duplicate (never gevent's class, whatever
        # was patched); family and type given so nothing is queried.
        # With socket.setdefaulttimeout(), creating the object makes the
        # descriptor non-blocking -- and the file status flags are shared
        # with the server's descriptor: give it back its own afterwards.
        flags = fcntl.fcntl(self.fileno, fcntl.F_GETFL) if _socket.getdefaulttimeout() is not None else None
        dup = os.dup(self.fileno)
        try:
            sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, dup)
        except BaseException:
            os.close(dup)
            raise
        if flags is not None:
            sock.settimeout(None)  # recv() must not wait
            fcntl.fcntl(self.fileno, fcntl.F_SETFL, flags)
        if self._ends:
            # A descriptor the server closed may now be another connection's
            # (a stream closed late, by the garbage collector): never touch it.
            try:
                same = (sock.getsockname(), sock.getpeername()) == self._ends
            except OSError:
                same = False
            if not same:
                sock.close()
                raise OSError('the connection was closed')
        return sock  # type: ignore[return-value]

    def client_gone(self) -> bool:
        """True if the client closed its side (FIN) or reset the connection.

        Data the client sent (a pipelined request) means it is still there.
        """
        try:
            sock = self._socket()
        except OSError:  # the descriptor is gone
            return True
        try:
            return sock.recv(1, _PEEK) == b''
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # ECONNRESET, ENOTCONN...: gone
            return True
        finally:
            sock.close()

    def client_gone_after_pause(self) -> bool:
        """:meth:`client_gone`, asked only if the last question was at
        least :data:`PROBE_PAUSE` seconds ago (a stream calls this between
        items and before its commit)."""
        now = time.monotonic()
        asked, self._asked = self._asked, now
        if now - asked < PROBE_PAUSE:
            return False
        return self.client_gone()

    #: tells the stream's delivery loop to ask only after slow pulls
    #: (tgstream.coalesce): a peek is a system call
    client_gone_after_pause.after_pause = True  # type: ignore[attr-defined]

    def abort(self, now: bool = False) -> bool:
        """Make the server's close of this connection an RST (``SO_LINGER``
        on, 0 s): the client then sees a failed transfer, not the end of a
        body. Returns False if that could not be done.

        With ``now``, reset it at once (Linux: ``connect()`` to
        ``AF_UNSPEC``, which dissolves a TCP connection with an RST): for a
        close-delimited response on a server that sends its FIN before it
        closes (werkzeug, gunicorn after a failure), where a client would
        read that FIN as the end of the body.
        """
        try:
            sock = self._socket()
        except OSError:
            return False
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            if now:
                _reset_now(sock.fileno())
        except OSError:
            return False
        finally:
            sock.close()
        return True

    def __repr__(self) -> str:
        return '<tgstream.Connection %s fd=%d>' % (self.server, self.fileno)


def _reset_now(fileno: int) -> None:
    # connect(2): TCP sockets "may dissolve the association by connecting to
    # an address with the sa_family member of sockaddr set to AF_UNSPEC";
    # Linux then sends an RST. Elsewhere the SO_LINGER close has to do.
    if not sys.platform.startswith('linux'):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    address = ctypes.create_string_buffer(struct.pack('=H14x', socket.AF_UNSPEC), 16)
    if libc.connect(fileno, address, 16) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _uwsgi_fd(environ: dict) -> int | None:
    if 'uwsgi.version' not in environ:
        return None
    try:
        import uwsgi  # the module exists only inside a uWSGI worker
    except ImportError:  # pragma: no cover - an environ copied out of uWSGI
        return None
    return uwsgi.connection_fd()


def _find(environ: dict) -> tuple[str, int] | None:
    for key, server in (
        ('gunicorn.socket', 'gunicorn'),
        ('werkzeug.socket', 'werkzeug'),
        ('cheroot.socket', 'cheroot'),
    ):
        sock = environ.get(key)
        if sock is not None:
            return server, sock.fileno()
    fd = _uwsgi_fd(environ)
    if fd is not None and fd >= 0:
        return 'uwsgi', fd
    return None


def connection_of(environ: dict) -> Connection | None:
    """The client's :class:`Connection` for this request, or ``None`` where
    the server gives no handle (waitress, mod_wsgi, WebTest...).

    Found once per request (kept in ``environ['tgstream.connection']``).
    """
    found: Any = environ.get(_ENVIRON_KEY, _NONE)
    if found is not _NONE:
        return found
    connection = None
    try:
        where = _find(environ)
        if where is not None:
            connection = Connection(*where)
    except (OSError, ValueError, AttributeError):  # a closed or odd socket
        connection = None
    environ[_ENVIRON_KEY] = connection
    return connection


def client_probe(environ: dict) -> Callable[[], bool] | None:
    """What a stream asks, between items and before its commit, to learn
    that its client left: waitress' ``client_disconnected`` where it offers
    one, else the connection's :meth:`Connection.client_gone_after_pause`;
    ``None`` where the server gives neither."""
    probe = environ.get('waitress.client_disconnected')
    if callable(probe):
        return probe
    connection = connection_of(environ)
    if connection is not None:
        return connection.client_gone_after_pause
    return None


def uncuttable_server(environ: dict) -> str | None:
    """The name of the server if it ends a failed chunked response as if it
    were complete and the application has no way to stop it; else ``None``.

    That is mod_wsgi in daemon mode: the Apache child proxying the daemon's
    response writes the last chunk when the daemon's response ends, whatever
    happened (mod_wsgi issue #42). In embedded mode Apache leaves it out.
    """
    if 'mod_wsgi.version' in environ and environ.get('mod_wsgi.process_group'):
        return 'mod_wsgi (daemon mode)'
    return None


def _uwsgi_option(name: str) -> bool:
    try:
        import uwsgi
    except ImportError:  # pragma: no cover - an environ copied out of uWSGI
        return False
    options = getattr(uwsgi, 'opt', {}) or {}
    return name in options or name.encode() in options


def close_delimited(environ: dict) -> bool:
    """True if the response ends when the connection closes (no
    Content-Length, no chunks), so a cut looks like an end.

    That is what the server answers, not only what the client asked:
    any server answering an HTTP/1.0 request, werkzeug's server when it is
    neither threaded nor forking (it answers HTTP/1.0 to everyone), and
    uWSGI's ``--http-socket`` (HTTP/1.1 without framing).
    """
    if environ.get('SERVER_PROTOCOL', 'HTTP/1.1').upper() == 'HTTP/1.0':
        return True
    if environ.get('ACTUAL_SERVER_PROTOCOL', 'HTTP/1.1').upper() == 'HTTP/1.0':
        return True  # cheroot says what it speaks
    if 'werkzeug.socket' in environ:
        return not (environ.get('wsgi.multithread') or environ.get('wsgi.multiprocess'))
    if 'uwsgi.version' in environ:
        return _uwsgi_option('http-socket')
    return False


_warned: set[str] = set()


def cut(environ: dict, name: str) -> None:
    """Make the failure of stream ``name`` visible to its client, or say
    why it cannot be (called once, when the stream fails).

    Where the server hands over the connection, it is reset when the server
    closes it. Where it does not and the response would look complete, a
    WARNING names the server (once per server and process) or the
    close-delimited response.
    """
    connection = connection_of(environ)
    if connection is not None and connection.abort(now=close_delimited(environ)):
        return
    server = uncuttable_server(environ)
    if server is not None:
        if server not in _warned:
            _warned.add(server)
            log.warning(
                'stream %s failed on %s, which ends the response as if it were '
                'complete: the client cannot tell it was cut (see "Failed streams '
                'on each server" in tgstream\'s production docs)',
                name, server,
            )
        return
    if close_delimited(environ):
        log.warning(
            'stream %s failed on a close-delimited %s response: the client '
            'cannot tell it was cut (use HTTP/1.1; behind nginx, '
            'proxy_http_version 1.1)',
            name, environ.get('SERVER_PROTOCOL'),
        )


def _cheroot_gateway() -> Any:
    from cheroot.wsgi import Gateway_10

    class CherootGateway(Gateway_10):
        """cheroot's WSGI 1.0 gateway, adding ``environ['cheroot.socket']``
        (the connection's socket) for tgstream's abort and FIN probe."""

        def get_environ(self):
            environ = super().get_environ()
            environ['cheroot.socket'] = self.req.conn.socket
            return environ

    return CherootGateway


def __getattr__(name: str) -> Any:
    # CherootGateway is built on first use: cheroot is not a dependency.
    if name == 'CherootGateway':
        gateway = _cheroot_gateway()
        globals()[name] = gateway
        return gateway
    raise AttributeError(name)
