"""Record the streams an app finished and assert their outcomes
(:func:`record_streams`, via :class:`tgstream.events.StreamFinished`)."""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, Iterable

from ..events import Outcome, StreamFinished, TransactionOutcome


def _registry_of(target: Any):
    # a Router (make_wsgi_app()), a Configurator, a request or a registry
    registry = getattr(target, 'registry', target)
    if not hasattr(registry, 'registerHandler'):
        raise TypeError(
            'record_streams() needs a Pyramid app (config.make_wsgi_app()), a '
            'Configurator or a registry, not %r; for an app wrapped in WSGI '
            'middleware pass the Pyramid app inside it' % (target,)
        )
    return registry


def describe(event: StreamFinished) -> str:
    """One line with the facts of ``event``, for assertion messages."""
    return '%s %s: outcome=%s transaction=%s items=%d bytes=%d%s' % (
        getattr(event.request, 'method', '?'), event.path, event.outcome,
        event.transaction, event.items, event.bytes,
        ' exception=%r' % (event.exception,) if event.exception is not None else '',
    )


class StreamRecorder:
    """The :class:`~tgstream.events.StreamFinished` events of one app.

    Thread-safe: streams end on the server's threads, often a little after
    the client saw the end of the response, so every assertion first
    *waits* (up to ``timeout`` seconds) for a matching stream to finish.

    Each ``assert_*`` method takes ``path`` (match ``request.path_info``;
    default: every stream) and ``count`` (wait for, and require, exactly
    that many matching streams; default: at least one), checks *every*
    matching stream and returns the last one. Call :meth:`clear` between
    phases of a test.
    """

    def __init__(self, registry):
        self.registry = registry
        self.events: list[StreamFinished] = []
        self._condition = threading.Condition()
        self._subscribed = False

    # -- subscription ------------------------------------------------------

    def start(self) -> 'StreamRecorder':
        if not self._subscribed:
            self.registry.registerHandler(self._record, (StreamFinished,))
            self._subscribed = True
        return self

    def stop(self) -> None:
        if self._subscribed:
            self.registry.unregisterHandler(self._record, (StreamFinished,))
            self._subscribed = False

    def __enter__(self) -> 'StreamRecorder':
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _record(self, event: StreamFinished) -> None:
        with self._condition:
            self.events.append(event)
            self._condition.notify_all()

    # -- queries -----------------------------------------------------------

    def clear(self) -> None:
        with self._condition:
            self.events.clear()

    def find(self, path: str | None = None) -> list[StreamFinished]:
        """The events recorded so far, of streams for ``path`` if given."""
        with self._condition:
            return [e for e in self.events if path is None or e.path == path]

    def outcomes(self, path: str | None = None) -> collections.Counter:
        """``Counter`` of ``(outcome, transaction)`` pairs so far."""
        return collections.Counter((e.outcome, e.transaction) for e in self.find(path))

    def wait(
        self, count: int = 1, path: str | None = None, timeout: float = 5.0
    ) -> list[StreamFinished]:
        """Wait until ``count`` streams (for ``path``) finished; return them.

        Raises ``AssertionError`` after ``timeout`` seconds, listing what
        was recorded.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                found = [e for e in self.events if path is None or e.path == path]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        '%d stream(s)%s finished within %ss, expected %d; recorded:\n%s'
                        % (len(found), ' for %s' % path if path else '', timeout,
                           count, self._listing())
                    )
                self._condition.wait(left)

    def _listing(self, events: Iterable[StreamFinished] | None = None) -> str:
        events = self.events if events is None else events
        return '\n'.join('  ' + describe(e) for e in events) or '  (none)'

    # -- assertions ----------------------------------------------------------

    def assert_stream(
        self,
        path: str | None = None,
        *,
        outcome: str | None = None,
        transaction: str | None = None,
        exception: type[BaseException] | None = None,
        count: int | None = None,
        timeout: float = 5.0,
    ) -> StreamFinished:
        """Every matching stream has this ``outcome``, ``transaction`` and
        (an instance of) ``exception``; the last one is returned."""
        checks: list[tuple[str, Callable[[StreamFinished], bool]]] = []
        if outcome is not None:
            checks.append(('outcome=%s' % outcome, lambda e: e.outcome == outcome))
        if transaction is not None:
            checks.append(('transaction=%s' % transaction,
                           lambda e: e.transaction == transaction))
        if exception is not None:
            checks.append(('exception %s' % exception.__name__,
                           lambda e: isinstance(e.exception, exception)))
        return self._expect(path, checks, count, timeout)

    def assert_completed(self, path: str | None = None, **kw: Any) -> StreamFinished:
        """Every item was sent (whatever became of the transaction)."""
        return self.assert_stream(path, outcome=Outcome.COMPLETED, **kw)

    def assert_committed(self, path: str | None = None, **kw: Any) -> StreamFinished:
        """Completed, and its transaction committed."""
        return self.assert_stream(
            path, outcome=Outcome.COMPLETED, transaction=TransactionOutcome.COMMITTED, **kw
        )

    def assert_aborted(self, path: str | None = None, **kw: Any) -> StreamFinished:
        """Its transaction was aborted (an error, a disconnect, a HEAD...)."""
        return self.assert_stream(path, transaction=TransactionOutcome.ABORTED, **kw)

    def assert_disconnected(
        self, path: str | None = None, *, count: int | None = None, timeout: float = 5.0
    ) -> StreamFinished:
        """The client left before the end, and nothing was committed."""
        return self._expect(path, [
            ('outcome=disconnected', lambda e: e.outcome == Outcome.DISCONNECTED),
            ('a transaction not committed',
             lambda e: e.transaction != TransactionOutcome.COMMITTED),
        ], count, timeout)

    def assert_error(
        self, path: str | None = None, exception: type[BaseException] = BaseException,
        **kw: Any,
    ) -> StreamFinished:
        """The stream raised (``exception``, if given) after its first item."""
        return self.assert_stream(path, outcome=Outcome.ERROR, exception=exception, **kw)

    def _expect(self, path, checks, count, timeout) -> StreamFinished:
        found = self.wait(count or 1, path, timeout)
        where = ' for %s' % path if path else ''
        if count is not None and len(found) != count:
            raise AssertionError('expected %d stream(s)%s, %d finished:\n%s'
                                 % (count, where, len(found), self._listing(found)))
        for name, check in checks:
            wrong = [e for e in found if not check(e)]
            if wrong:
                raise AssertionError('expected %s for every stream%s; not so for:\n%s'
                                     % (name, where, self._listing(wrong)))
        return found[-1]

    def __repr__(self) -> str:
        return '<tgstream.testing.StreamRecorder %d stream(s)>' % len(self.events)


def record_streams(app: Any) -> StreamRecorder:
    """Record the streams ``app`` finishes from now on.

    ``app`` is the Pyramid app (``config.make_wsgi_app()``), its
    Configurator or its registry. Use it as a context manager (recording
    stops at the end of the block) or call ``stop()``.

    Example::

        with record_streams(app) as streams:
            with open_stream(app, '/export') as response:
                response.next_chunk()
            streams.assert_disconnected('/export')
            streams.clear()
            webtest.TestApp(app).get('/export')
            streams.assert_committed('/export')
    """
    return StreamRecorder(_registry_of(app)).start()
