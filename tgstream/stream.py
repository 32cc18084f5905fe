"""The PEP 3333 iterable that runs a view's stream inside its request.

:class:`StreamIterator` is what the server iterates. It is a class, not a
generator, because only a class can run its cleanup when it is closed before
its first ``next()`` (HEAD, 304, a client gone before the first byte).
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Callable, Iterable, NoReturn

from ._compat import client_disconnected_error
from .coalesce import FAST_PULL, FAST_RUN, Coalescer
from .coalesce import ClientGone as _ClientGone
from .connection import client_probe, cut
from .context import request_context
from .events import Outcome, Recorded, transaction_outcome
from .items import StreamEncodeError, flush
from .renderers.encoders import Encoder
from .serverlog import mark_logged

# (flush and StreamEncodeError: importable from here as before)
__all__ = ['FAST_PULL', 'FAST_RUN', 'StreamEncodeError', 'StreamIterator', 'flush']

log = logging.getLogger('tgstream')

_MISSING = object()


def _describe_error(exc: BaseException) -> str:
    # For the server log only (never the client): the exception, and for an
    # encoding failure the item's index and type and the encoder's reason.
    text = '%s: %s' % (type(exc).__name__, exc)
    cause = exc.__cause__
    if isinstance(exc, StreamEncodeError) and cause is not None:
        text += ' (%s: %s)' % (type(cause).__name__, cause)
    return text


class StreamIterator:
    """Iterate a view's items inside its request; clean up exactly once.

    - :meth:`prime` fetches and encodes the first item while the view is still
      running (inside the tween chain), so errors raised before the first
      item become normal error responses.
    - Every ``next()`` and :meth:`close` runs with the request pushed as
      Pyramid's current request.
    - Every item is written as soon as it is yielded (one write per item)
      until the view's iterable has delivered :data:`FAST_RUN` items in a
      row, each within :data:`FAST_PULL` seconds of the one before; only
      then are items joined into writes of up to ``chunk_size`` bytes (or
      ``flush_interval`` seconds). A slow pull ends the run. What can be
      held is the tail of a long fast run followed by a pause: less than
      ``chunk_size`` bytes, released by the next item, :data:`flush` or the
      end.
    - If the view's iterable (or an encoder, or the commit) fails while items
      are held, those items are written first and the error is raised from
      the following ``next()``.
    - When the items are exhausted, the ``before_end`` hooks run (the
      transaction commits) *before* the encoder's closing bytes are
      produced; an error there is raised from ``next()`` so the server cuts
      the response.
    - :meth:`close` closes the view's iterable, then runs the ``on_close``
      hooks; each step runs even if an earlier one raised.

    ``fast_pull`` and ``fast_run`` (class attributes, :data:`FAST_PULL` and
    :data:`FAST_RUN`) may be set per stream, e.g. in tests. The delivery
    rule and the encoding are :class:`tgstream.coalesce.Coalescer`'s (the
    stream's ``coalescer``); this class keeps the request context, the
    hooks, closing once and the outcome.

    It never defines ``__len__`` (waitress would take a one-item iterable's
    length as the Content-Length).
    """

    fast_pull: float = FAST_PULL
    fast_run: int = FAST_RUN

    def __init__(
        self,
        request,
        items: Iterable[Any],
        encoder: Encoder,
        *,
        name: str = '',
        chunk_size: int = 64 * 1024,
        flush_interval: float = 0.05,
    ):
        self.request = request
        self.name = name or getattr(request, 'path_info', '?')
        self.encoder = encoder
        self.source = items
        #: the delivery rule and the encoding (tgstream.coalesce); the
        #: client probe is the server's (tgstream.connection)
        self.coalescer = Coalescer(
            items, encoder, name=self.name,
            chunk_size=chunk_size, flush_interval=flush_interval,
            client_gone=client_probe(getattr(request, 'environ', None) or {}),
        )
        self._pending: bytes | None = None
        self._exhausted = False
        self._finished = False  # final bytes handed to the server
        self._closed = False
        self._lock = threading.Lock()
        self._request_ref: Any = None
        self._deferred_error: BaseException | None = None
        # an error met while items were held: raised after they are written
        self._stored_error: Exception | None = None
        self._context: Any = _MISSING
        #: hooks: ``on_start()`` before the first ``next()`` pulls an item,
        #: ``before_end()`` at exhaustion before the closing bytes,
        #: ``on_close(stream)`` when the stream is closed.
        self.on_start: list[Callable[[], None]] = []
        self.before_end: list[Callable[[], None]] = []
        self.on_close: list[Callable[[StreamIterator], None]] = []
        self._started = False
        #: facts for events and logs
        self.bytes_sent = 0
        self.started_at = time.monotonic()
        self.outcome: Outcome | None = None
        self.exception: BaseException | None = None
        self.transaction_outcome: str = Recorded.NOT_MANAGED
        self.ended_at: float | None = None

    @property
    def chunk_size(self) -> int:
        return self.coalescer.chunk_size

    @property
    def flush_interval(self) -> float:
        return self.coalescer.flush_interval

    @property
    def items_sent(self) -> int:
        """Items encoded so far (a :class:`~tgstream.items.Batch` counts its items)."""
        return self.coalescer.items_sent

    # -- priming (inside the view) -----------------------------------------

    def prime(self) -> None:
        """Fetch and encode the first item now, inside the request.

        On error the view's iterable is closed and the error propagates.
        """
        context = getattr(self.request, 'context', _MISSING)
        self._context = context
        try:
            first = self.coalescer.first()
        except BaseException:
            # The error becomes the request's error response; the stream is
            # never handed over, so it is closed here, once (a later garbage
            # collection must not close it again and pop request.context).
            self._closed = True
            self._close_source()
            raise
        if first is None:
            self._exhausted = True
        else:
            self._pending = first

    # -- the WSGI iterable -------------------------------------------------

    def __iter__(self) -> 'StreamIterator':
        return self

    def __next__(self) -> bytes:
        if self._deferred_error is not None:
            # the in-band error marker went out; now cut the response
            error, self._deferred_error = self._deferred_error, None
            raise error
        if self._finished or self._closed:
            raise StopIteration
        with request_context(self.request):
            self._restore_context()
            try:
                stored = self._stored_error
                if stored is not None:
                    # the items held before it went out with the last next()
                    self._stored_error = None
                    raise stored
                self.coalescer.check_client()
                if not self._started:
                    self._started = True
                    for hook in self.on_start:
                        hook()
                return self._next_chunk()
            except StopIteration:
                raise
            except _ClientGone:
                self._disconnected()
            except BaseException as exc:
                self._fail(exc)
                marker = self._error_marker(exc)
                if marker:
                    self._deferred_error = exc
                    return marker
                raise

    def _error_marker(self, exc: BaseException) -> bytes | None:
        # An encoder may announce a failure in-band (a fixed marker, never
        # the exception's text) before the server cuts the response.
        error = getattr(self.encoder, 'error', None)
        if error is None or not isinstance(exc, Exception):
            return None
        try:
            return error()
        except Exception:
            log.exception('stream %s: the encoder\'s error marker failed', self.name)
            return None

    def _next_chunk(self) -> bytes:
        primed = self._pending
        if primed is not None:
            self._pending = None
            if primed:
                return self._wrote(primed)
        if self._exhausted:
            return self._end(b'')
        buffered: list[bytes] = []
        try:
            exhausted = self.coalescer.collect(buffered, self.fast_pull, self.fast_run)
        except Exception as exc:
            self.coalescer.run = 0
            if not buffered:
                raise
            # Deliver what was yielded before the failure; fail next time.
            self._stored_error = exc
            return self._wrote(b''.join(buffered))
        if exhausted:
            self._exhausted = True
            return self._end(b''.join(buffered))
        return self._wrote(b''.join(buffered))

    def _end(self, data: bytes) -> bytes:
        # The items are exhausted: commit *before* the closing bytes exist,
        # so a failed commit can still cut the response -- and not at all
        # when the client is known to be gone.
        try:
            self.coalescer.check_client()
            for hook in self.before_end:
                hook()
        except Exception as exc:
            if not data:
                raise
            # the items yielded last go out; the failure follows
            self._stored_error = exc
            return self._wrote(data)
        data += self.encoder.end()
        self._finished = True
        self.outcome = Outcome.COMPLETED
        if not data:
            raise StopIteration
        return self._wrote(data)

    def _wrote(self, data: bytes) -> bytes:
        self.bytes_sent += len(data)
        self.coalescer.last_write = time.monotonic()
        return data

    def _disconnected(self) -> NoReturn:
        # The client left while the stream ran: close (abort) now, then tell
        # the server, which cuts the response quietly.
        self.outcome = Outcome.DISCONNECTED
        self.close()
        raise client_disconnected_error() from None

    def _close_with_error(self, exc: BaseException) -> tuple:
        # Close with outcome ``error``; the request (taken first: a closed
        # stream holds it weakly), its method and path, for the log line.
        request = self.request
        self.outcome = Outcome.ERROR
        self.exception = exc
        self.close()
        return request, getattr(request, 'method', '?'), getattr(request, 'path_qs', '?')

    def _fail(self, exc: BaseException) -> None:
        request, method, path = self._close_with_error(exc)
        # Logged after close(): the transaction's outcome is known by then.
        # The same facts as the StreamFinished event.
        log.error(
            'stream %s failed for %s %s: outcome=error transaction=%s '
            'items=%d bytes=%d duration=%.3fs; the response is cut: %s',
            self.name, method, path,
            transaction_outcome(self.transaction_outcome),
            self.items_sent,
            self.bytes_sent,
            self.duration,
            _describe_error(exc),
            exc_info=exc,
        )
        # the server logs it again when it cuts the response: keep that short
        mark_logged(exc)
        # where the server would end the response as if complete: reset the
        # connection, or warn (tgstream.connection)
        cut(getattr(request, 'environ', None) or {}, self.name)

    def abandon(self, exc: BaseException, where: str = '') -> None:
        """Close a stream that will never reach the server because of ``exc``.

        Called by the execution policy guard (:mod:`tgstream.guard`) when
        something failed after the hand-over (``start_response`` rejecting a
        header, a ``NewResponse`` subscriber, a later response callback):
        the outcome is ``error``, the transaction is aborted.
        """
        if self._closed:
            return
        _, method, path = self._close_with_error(exc)
        log.error(
            'stream %s for %s %s was never sent: %s failed %s; outcome=error '
            'transaction=%s',
            self.name, method, path, _describe_error(exc),
            where or 'after the hand-over',
            transaction_outcome(self.transaction_outcome),
        )

    def _restore_context(self) -> None:
        # Router.finish_request() pops request.context before the body is
        # iterated; give the stream the context its view saw.
        if self._context is not _MISSING and 'context' not in self.request.__dict__:
            self.request.context = self._context

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        """Close the view's iterable, then run the ``on_close`` hooks.

        Idempotent and safe on any thread (a stream dropped by the server is
        closed by the garbage collector).
        """
        stored = self._stored_error
        if stored is not None and not self._closed:
            # closed before the error held back behind the last items was
            # raised: it is still the stream's outcome (and is logged)
            self._stored_error = None
            if isinstance(stored, _ClientGone):
                self.outcome = Outcome.DISCONNECTED
            else:
                self._fail(stored)
                return
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.ended_at = time.monotonic()
        if self.outcome is None:
            self.outcome = Outcome.DISCONNECTED if self._started else Outcome.ABORTED
        with request_context(self.request):
            self._close_source()
            for hook in self.on_close:
                try:
                    hook(self)
                except Exception:
                    log.exception(
                        'stream %s: error while closing (%r)', self.name, hook
                    )
            self.request.__dict__.pop('context', None)
        # The hooks hold objects that hold the stream: drop them, so a
        # closed stream is freed by reference counting, not by the cyclic
        # garbage collector.
        self.on_start = []
        self.before_end = []
        self.on_close = []
        self._context = _MISSING
        # request -> response -> stream -> request: after the close the
        # stream only holds its request weakly.
        self._request_ref = weakref.ref(self.__dict__.pop('request'))

    @property
    def request(self):
        """The stream's request (held weakly once the stream is closed)."""
        request = self.__dict__.get('request')
        if request is not None:
            return request
        ref = self._request_ref
        return ref() if ref is not None else None

    @request.setter
    def request(self, request) -> None:
        self.__dict__['request'] = request

    def _close_source(self) -> None:
        # The view's iterable's close() -- or its iterator's, if only that
        # has one (an iterable class returning a generator).
        close = getattr(self.source, 'close', None)
        if close is None:
            close = getattr(self.coalescer.iterator, 'close', None)
        if close is None:
            return
        try:
            close()
        except Exception:
            log.exception('stream %s: the view iterable\'s close() raised', self.name)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def duration(self) -> float:
        """Seconds from the stream's creation to its close (or to now)."""
        return (self.ended_at or time.monotonic()) - self.started_at

    def __del__(self) -> None:
        # A server that drops the iterable without close() (PEP 3333 says it
        # must not) still gets the transaction aborted and the callbacks run.
        if not getattr(self, '_closed', True):
            try:
                self.close()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __repr__(self) -> str:
        return '<tgstream.StreamIterator %s>' % self.name
