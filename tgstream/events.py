"""Events tgstream notifies through the application registry.

:class:`StreamFinished` is the one place where a stream's end is reported:
subscribe to it for metrics, audit logs or tests (see
:class:`tgstream.testing.StreamRecorder`). It imports nothing from the rest
of tgstream, so any module may use :func:`transaction_outcome`.
"""
from __future__ import annotations

import enum
import warnings
from typing import Any


class _Text(str, enum.Enum):
    # Members are the strings themselves (``Outcome.COMPLETED ==
    # 'completed'``), and print as them in logs and f-strings.
    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return format(self.value, format_spec)


class Outcome(_Text):
    """How a stream ended (``StreamFinished.outcome``)."""

    COMPLETED = 'completed'
    ERROR = 'error'
    DISCONNECTED = 'disconnected'
    ABORTED = 'aborted'


class TransactionOutcome(_Text):
    """What became of a stream's transaction (``StreamFinished.transaction``)."""

    COMMITTED = 'committed'
    ABORTED = 'aborted'
    NOT_MANAGED = 'not managed'


class Recorded(_Text):
    """What :mod:`tgstream.transaction` and :mod:`tgstream.sessions` return
    when they finish a stream's transaction; :func:`transaction_outcome`
    maps it to a :class:`TransactionOutcome`."""

    NOT_MANAGED = 'not managed'
    #: the body was read before pyramid_tm decided: pyramid_tm finished it
    PYRAMID_TM = 'pyramid_tm'
    #: the stream committed or aborted the transaction itself
    ENDED_BY_STREAM = 'ended by the stream'
    #: the commit started (and, if this stays, raised)
    COMMITTING = 'committing'
    COMMITTED = 'committed'
    ABORTED = 'aborted'


#: The outcomes of a stream (``StreamFinished.outcome``).
OUTCOMES = tuple(outcome.value for outcome in Outcome)

#: The outcomes of its transaction (``StreamFinished.transaction``).
TRANSACTION_OUTCOMES = tuple(outcome.value for outcome in TransactionOutcome)

# What is recorded, mapped to what it means for the data: a commit that
# raised (COMMITTING) was aborted; anything tgstream did not finish itself
# is NOT_MANAGED.
_TRANSACTION: dict[str, TransactionOutcome] = {
    Recorded.COMMITTED: TransactionOutcome.COMMITTED,
    Recorded.ABORTED: TransactionOutcome.ABORTED,
    Recorded.COMMITTING: TransactionOutcome.ABORTED,
}


def transaction_outcome(recorded: str | None) -> TransactionOutcome:
    """``'committed'``, ``'aborted'`` or ``'not managed'`` for a stream's
    recorded transaction state (a :class:`Recorded`).

    ``'not managed'`` covers every case where tgstream did not finish a
    transaction for the stream: no pyramid_tm (and no
    ``tgstream.sqlalchemy.session``), a transaction owned by the caller
    (``tm.active`` set by a test fixture), a body read before pyramid_tm
    decided (pyramid_tm then finished it itself), or a stream that committed
    or aborted the transaction itself (TurboGears-style
    ``transaction.commit()``).
    """
    return _TRANSACTION.get(recorded or '', TransactionOutcome.NOT_MANAGED)


class StreamFinished:
    """Notified once per stream, after it ended and was cleaned up.

    Subscribe with ``config.add_subscriber(fn, tgstream.events.StreamFinished)``.
    It is notified by the thread that closed the stream (the server's worker
    thread), with the stream's request still current; its transaction is
    already finished, so a subscriber that writes to the database needs a
    session and transaction of its own.

    Every stream handed to the response is reported, an empty one too. An
    error raised before the first item makes a normal error response
    instead (exception views, pyramid_tm's abort, pyramid_retry): no event.

    Attributes:

    ``request``
        the request the stream belonged to;
    ``stream``
        the :class:`tgstream.stream.StreamIterator` (``stream.name`` names the view);
    ``outcome``
        ``'completed'`` (every item sent), ``'error'`` (an exception in the
        stream, its encoder or the final commit), ``'disconnected'`` (the
        server closed it before the end: the client went away) or
        ``'aborted'`` (closed before it was ever iterated: HEAD, 304, a
        response replaced on the way out);
    ``transaction``
        ``'committed'``, ``'aborted'`` or ``'not managed'`` (see
        :func:`transaction_outcome`);
    ``items``, ``bytes``, ``duration``
        items encoded, bytes handed to the server, seconds from the stream's
        creation (in the view) to its close;
    ``exception``
        the exception of an ``'error'`` outcome, else ``None``.

    Example::

        def count_streams(event):
            statsd.incr('streams.%s' % event.outcome)

        config.add_subscriber(count_streams, StreamFinished)
    """

    def __init__(
        self, request, stream: Any,
        transaction: str = TransactionOutcome.NOT_MANAGED,
    ):
        self.request = request
        self.stream = stream
        self.outcome: Outcome = stream.outcome
        self.transaction: TransactionOutcome = TransactionOutcome(transaction)
        self.items: int = stream.items_sent
        self.bytes: int = stream.bytes_sent
        self.duration: float = stream.duration
        self.exception: BaseException | None = stream.exception

    # Deprecated: one name per fact (CHANGES.rst, issue 24).
    @property
    def transaction_outcome(self) -> str:
        """Deprecated alias of :attr:`transaction`."""
        _deprecated('transaction_outcome', 'transaction')
        return self.transaction

    @property
    def items_sent(self) -> int:
        """Deprecated alias of :attr:`items`."""
        _deprecated('items_sent', 'items')
        return self.items

    @property
    def bytes_sent(self) -> int:
        """Deprecated alias of :attr:`bytes`."""
        _deprecated('bytes_sent', 'bytes')
        return self.bytes

    @property
    def path(self) -> str:
        """The request's path (``path_info``), for matching in tests and logs."""
        return getattr(self.request, 'path_info', '')

    def __repr__(self) -> str:
        return '<StreamFinished %s %s transaction=%s items=%d bytes=%d>' % (
            self.stream.name, self.outcome, self.transaction,
            self.items, self.bytes,
        )


def _deprecated(name: str, instead: str) -> None:
    warnings.warn(
        'StreamFinished.%s is deprecated and will be removed; use '
        'StreamFinished.%s' % (name, instead),
        DeprecationWarning, stacklevel=3,
    )
