"""Testing streamed responses: what WebTest cannot do.

WebTest reads a whole body before a test sees it, so it cannot show time to
first byte, truncation or a client that leaves early. This module offers:

:func:`open_stream`
    call an app in-process and read its body chunk by chunk; ``close()`` it
    early to simulate a client disconnect (the same ``close()`` a real
    server calls).
:func:`serve`
    serve an app on a real waitress server on 127.0.0.1 (a free port) for
    wire-level assertions, e.g. with ``httpx``.

Both need only what tgstream's ``testing`` extra installs (waitress, WebOb).
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Iterator

import webob


class StreamedResponse:
    """A response whose body has not been read yet (see :func:`open_stream`)."""

    def __init__(self, status: str, headerlist: list, app_iter):
        self.status = status
        self.status_code = int(status.split(' ', 1)[0])
        self.headers = webob.headers.ResponseHeaders(headerlist)
        self.app_iter = app_iter
        self._iterator = iter(app_iter)
        self.chunks: list[bytes] = []
        self.closed = False

    def next_chunk(self) -> bytes | None:
        """The next non-empty chunk, or ``None`` at the end of the body."""
        for chunk in self._iterator:
            if chunk:
                self.chunks.append(chunk)
                return chunk
        return None

    def read(self, chunks: int | None = None) -> bytes:
        """Read ``chunks`` more chunks (all remaining ones by default)."""
        out = []
        while chunks is None or len(out) < chunks:
            chunk = self.next_chunk()
            if chunk is None:
                break
            out.append(chunk)
        return b''.join(out)

    @property
    def body(self) -> bytes:
        """Everything read so far."""
        return b''.join(self.chunks)

    def close(self) -> None:
        """Close the body, as a server does when its client disconnects."""
        if not self.closed:
            self.closed = True
            close = getattr(self.app_iter, 'close', None)
            if close is not None:
                close()

    def __enter__(self) -> 'StreamedResponse':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_stream(app, path: str = '/', **request_args: Any) -> StreamedResponse:
    """Call ``app`` for ``path`` and return the response unread.

    ``request_args`` go to :meth:`webob.Request.blank` (``method``,
    ``headers``, ``POST``, ``environ``...). Use it as a context manager, or
    call ``close()``: leaving early is a simulated disconnect.

    Example::

        with open_stream(app, '/export') as response:
            first = response.next_chunk()
        # the stream was closed: its transaction aborted, callbacks ran
    """
    request = webob.Request.blank(path, **request_args)
    status, headers, app_iter = request.call_application(app)
    return StreamedResponse(status, headers, app_iter)


class LiveServer:
    """A running waitress server (see :func:`serve`)."""

    def __init__(self, server, thread: threading.Thread):
        self.server = server
        self.thread = thread
        self.host, self.port = server.socket.getsockname()[:2]
        self.url = 'http://%s:%d' % (self.host, self.port)

    def shutdown(self, timeout: float = 5.0) -> None:
        server = self.server
        server.was_shutdown = True
        while server._map:
            for channel in list(server._map.values()):
                channel.close()
        server.task_dispatcher.shutdown(timeout=timeout)
        self.thread.join(timeout)


@contextlib.contextmanager
def serve(app, **options: Any) -> Iterator[LiveServer]:
    """Serve ``app`` with waitress on 127.0.0.1 and a free port.

    ``options`` are waitress adjustments (``threads``,
    ``channel_request_lookahead``, ``outbuf_high_watermark``...). Yields a
    :class:`LiveServer`; its ``url`` has no trailing slash. The server stops
    when the block ends.

    Example::

        with serve(app) as server:
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
    _wait_for_port(live.host, live.port)
    try:
        yield live
    finally:
        live.shutdown()


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
