"""Events tgstream notifies through the application registry."""
from __future__ import annotations

from typing import Any


class StreamFinished:
    """Notified once per stream, after it ended and was cleaned up.

    Subscribe with ``config.add_subscriber(fn, tgstream.events.StreamFinished)``.

    Attributes:

    ``request``
        the request the stream belonged to;
    ``outcome``
        ``'completed'`` (every item sent), ``'error'`` (an exception in the
        stream, its encoder or the final commit), ``'disconnected'`` (the
        server closed it before the end: the client went away) or
        ``'aborted'`` (closed before it was ever iterated: HEAD, 304, a
        response replaced on the way out);
    ``transaction``
        ``'committed'``, ``'aborted'`` or ``'not managed'``;
    ``items``, ``bytes``, ``duration``
        items and bytes produced, seconds from priming to close;
    ``exception``
        the exception of an ``'error'`` outcome, else ``None``.
    """

    def __init__(self, request, stream: Any):
        self.request = request
        self.stream = stream
        self.outcome: str = stream.outcome
        self.transaction: str = stream.transaction_outcome
        self.items: int = stream.items_sent
        self.bytes: int = stream.bytes_sent
        self.duration: float = stream.duration
        self.exception: BaseException | None = stream.exception

    def __repr__(self) -> str:
        return '<StreamFinished %s %s transaction=%s items=%d bytes=%d>' % (
            self.stream.name, self.outcome, self.transaction,
            self.items, self.bytes,
        )
