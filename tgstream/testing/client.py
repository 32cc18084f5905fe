"""Read a streamed response in-process, chunk by chunk (:func:`open_stream`)."""
from __future__ import annotations

from typing import Any

import webob


class StreamedResponse:
    """A response whose body has not been read yet (see :func:`open_stream`).

    ``status``, ``status_code`` and ``headers`` are known at once; the body
    is read with :meth:`next_chunk` or :meth:`read`. An exception raised by
    the stream (a mid-stream error) propagates from them, as it reaches the
    server: the body read so far is then all a client would get, and it
    never ends with the closing bytes of a complete response.
    """

    def __init__(self, status: str, headerlist: list, app_iter):
        self.status = status
        self.status_code = int(status.split(' ', 1)[0])
        self.headers = webob.headers.ResponseHeaders(headerlist)
        self.app_iter = app_iter
        self._iterator = iter(app_iter)
        self.chunks: list[bytes] = []
        self.closed = False
        self.complete = False

    def next_chunk(self) -> bytes | None:
        """The next non-empty chunk, or ``None`` at the end of the body."""
        for chunk in self._iterator:
            if chunk:
                self.chunks.append(chunk)
                return chunk
        self.complete = True
        return None

    def read(self, chunks: int | None = None) -> bytes:
        """Read ``chunks`` more chunks (all remaining ones by default)."""
        out: list[bytes] = []
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
        """Close the body, as a server does when its client disconnects
        (or after the last chunk). Idempotent."""
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
    call ``close()``: leaving before the end is a simulated disconnect, with
    the same effect as a real server's ``close()`` (the stream's transaction
    is aborted, its finished callbacks run, ``StreamFinished`` reports
    ``'disconnected'``). ``complete`` is true once the whole body was read
    without an error.

    Example::

        with open_stream(app, '/export') as response:
            first = response.next_chunk()
        # the stream was closed: its transaction aborted, callbacks ran

    Caveat: an error raised *before* the first item is raised by
    ``open_stream`` itself when the app has no exception view for it, as
    WebTest does.
    """
    request = webob.Request.blank(path, **request_args)
    status, headers, app_iter = request.call_application(app)
    return StreamedResponse(status, headers, app_iter)
