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
from typing import TYPE_CHECKING, Any, Callable, Iterable, NoReturn

from ._compat import client_disconnected_error
from .coalesce import FAST_PULL, FAST_RUN, Coalescer
from .coalesce import ClientGone as _ClientGone
from .connection import client_probe, cut
from .context import request_context
from .events import Outcome, TransactionOutcome
from .items import StreamEncodeError, flush
from .renderers.encoders import Encoder
from .serverlog import mark_logged

if TYPE_CHECKING:
    from .lifecycle import Lifecycle

# (flush and StreamEncodeError: importable from here too)
__all__ = ['FAST_PULL', 'FAST_RUN', 'StreamEncodeError', 'StreamIterator', 'flush', 'is_stream']

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
    """Iterate a view's items inside its request; close exactly once.

    - :meth:`prime` fetches and encodes the first item while the view is still
      running (inside the tween chain), so errors raised before the first
      item become normal error responses.
    - Every ``next()`` and :meth:`close` runs with the request pushed as
      Pyramid's current request.
    - Which items go into one write is :class:`tgstream.coalesce.Coalescer`'s
      rule (write through until a long run of fast pulls, then coalesce up to
      ``chunk_size`` bytes or ``flush_interval`` seconds).
    - If the view's iterable (or an encoder, or the commit) fails while items
      are held, those items are written first and the error is raised from
      the following ``next()``.
    - When the items are exhausted, the lifecycle's ``end()`` runs (the
      transaction commits) *before* the encoder's closing bytes are
      produced; an error there is raised from ``next()`` so the server cuts
      the response.
    - :meth:`close` decides the outcome once, under a lock, then runs the
      close sequence of its :class:`tgstream.lifecycle.Lifecycle` (which
      starts by closing the view's iterable).

    ``fast_pull`` and ``fast_run`` (class attributes, :data:`FAST_PULL` and
    :data:`FAST_RUN`) may be set per stream or per class, e.g. in tests;
    ``clock`` (``time.monotonic``) per class, before the stream is built
    (its coalescer takes it then). It never defines ``__len__``
    (waitress would take a one-item iterable's length as the
    Content-Length). Use :func:`tgstream.is_stream` to ask whether a
    response's body is one.
    """

    fast_pull: float = FAST_PULL
    fast_run: int = FAST_RUN
    #: the one clock of a stream and its coalescer (seconds, monotonic)
    clock: Callable[[], float] = staticmethod(time.monotonic)

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
            clock=self.clock,
        )
        #: what runs at the start, the end and the close (tgstream.lifecycle);
        #: ``None`` for a stream that was never handed over
        self.lifecycle: Lifecycle | None = None
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
        self._started = False
        #: facts for events and logs
        self.bytes_sent = 0
        self.started_at = self.clock()
        self.outcome: Outcome | None = None
        self.exception: BaseException | None = None
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
            self.close_source()
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
                    if self.lifecycle is not None:
                        self.lifecycle.start()
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
            if self.lifecycle is not None:
                self.lifecycle.end()
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
        self.coalescer.written()
        return data

    def _disconnected(self) -> NoReturn:
        # The client left while the stream ran: close (abort) now, then tell
        # the server, which cuts the response quietly.
        self._close(Outcome.DISCONNECTED)
        raise client_disconnected_error() from None

    def _fail(self, exc: BaseException) -> None:
        self._close(Outcome.ERROR, exc)

    def _log_failure(self, request, exc: BaseException, transaction: str) -> None:
        # Logged after the close: the transaction's outcome is known by then.
        # The same facts as the StreamFinished event.
        log.error(
            'stream %s failed for %s %s: outcome=error transaction=%s '
            'items=%d bytes=%d duration=%.3fs; the response is cut: %s',
            self.name, getattr(request, 'method', '?'), getattr(request, 'path_qs', '?'),
            transaction,
            self.items_sent,
            self.bytes_sent,
            self.duration,
            _describe_error(exc),
            exc_info=exc,
        )
        # the server logs it again when it cuts the response: keep that short
        # (tgstream.serverlog, if the application opted in)
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
        request = self.request
        transaction = self._close(Outcome.ERROR, exc, log_failure=False)
        if transaction is None:
            return
        log.error(
            'stream %s for %s %s was never sent: %s failed %s; outcome=error '
            'transaction=%s',
            self.name, getattr(request, 'method', '?'), getattr(request, 'path_qs', '?'),
            _describe_error(exc), where or 'after the hand-over', transaction,
        )

    def _restore_context(self) -> None:
        # Router.finish_request() pops request.context before the body is
        # iterated; give the stream the context its view saw.
        if self._context is not _MISSING and 'context' not in self.request.__dict__:
            self.request.context = self._context

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        """End the stream: decide its outcome, then run its close sequence.

        Idempotent and safe on any thread (a stream dropped by the server is
        closed by the garbage collector): concurrent calls close it once.
        """
        self._close()

    def _close(
        self, outcome: Outcome | None = None, exc: BaseException | None = None,
        log_failure: bool = True,
    ) -> TransactionOutcome | None:
        # Close once: the outcome is decided under the lock, by the first
        # caller only; the close sequence runs outside it. Returns the
        # transaction's outcome, or None if the stream was already closed.
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            stored, self._stored_error = self._stored_error, None
            if outcome is None and stored is not None:
                # closed before the error held back behind the last items
                # was raised: it is still the stream's outcome (and logged)
                if isinstance(stored, _ClientGone):
                    outcome = Outcome.DISCONNECTED
                else:
                    outcome, exc = Outcome.ERROR, stored
            if outcome is not None:
                self.outcome = outcome
            elif self.outcome is None:
                self.outcome = Outcome.DISCONNECTED if self._started else Outcome.ABORTED
            if exc is not None:
                self.exception = exc
        self.ended_at = self.clock()
        request = self.request
        lifecycle = self.lifecycle
        with request_context(request):
            if lifecycle is None:
                self.close_source()
                transaction = TransactionOutcome.NOT_MANAGED
            else:
                transaction = lifecycle.close(self)
            request.__dict__.pop('context', None)
        # request -> response -> stream -> request, and the lifecycle's
        # objects hold the stream: after the close the stream holds its
        # request weakly and nothing else, so it is freed by reference
        # counting, not by the cyclic garbage collector.
        self.lifecycle = None
        self._context = _MISSING
        self._request_ref = weakref.ref(self.__dict__.pop('request'))
        if log_failure and exc is not None and self.outcome is Outcome.ERROR:
            self._log_failure(request, exc, transaction)
        return transaction

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

    def close_source(self) -> None:
        """Close the view's iterable (step 1 of the close sequence).

        Its ``close()`` -- or its iterator's, if only that has one (an
        iterable class returning a generator). An error there is logged.
        """
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
        return (self.ended_at or self.clock()) - self.started_at

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


def is_stream(response: Any) -> bool:
    """Is ``response``'s body a tgstream stream?

    True for the response of a ``stream=True`` view and for a
    ``Response(app_iter=<generator>)`` the stream tween took over (also when
    ``tgstream.compress`` gzips it), once the view has returned -- e.g. in a
    tween over tgstream's, or a response callback. Use it to leave streams
    alone (a compression or caching tween must not read their body).

    Example::

        def my_tween(request):
            response = handler(request)
            if not tgstream.is_stream(response):
                add_etag(response)
            return response
    """
    body = getattr(response, 'app_iter', None)
    return isinstance(body, StreamIterator) or isinstance(
        getattr(body, 'stream', None), StreamIterator
    )
