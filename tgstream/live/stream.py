"""The iterable :func:`tgstream.listen` returns."""
from __future__ import annotations

import random
import time
from typing import Any, Iterable, Iterator

from ..renderers.sse import ServerSentEvent, sse_idle
from .hub import Event, Hub, Reset, Subscription


def to_sse(item: Event | Reset) -> ServerSentEvent:
    """The SSE form of a hub item (the hub's ``encode``)."""
    if isinstance(item, Reset):
        return ServerSentEvent({'reason': item.reason}, event='reset')
    return ServerSentEvent(item.data, id=item.id)


def _prelude(backlog: Iterable, head_id: str | None, exclude: frozenset) -> Iterator:
    # The backlog (events, or a Reset that ends it), then -- when no event
    # carried an id -- an id-only event with the latest id: it sets the
    # EventSource's last event id, so the next reconnection is replayed.
    sent = False
    for item in backlog:
        if isinstance(item, Reset):
            yield to_sse(item)
            sent = False
            break
        if item.key is not None and item.key in exclude:
            continue
        sent = True
        yield to_sse(item)
    if head_id is not None and not sent:
        yield ServerSentEvent(id=head_id, comment='live')


class LiveStream:
    """Items of one live stream: its backlog, then committed events,
    ``reset``, and ``sse_idle`` while waiting. It ends -- after a ``retry:``
    field with jitter, so clients do not all reconnect at once -- when the
    hub stops or after ``max_lifetime`` seconds. ``close()`` frees its slot
    in the hub (tgstream calls it when the stream ends, fails, or its client
    leaves)."""

    #: the transaction policy it runs under unless the view names one: the
    #: view's transaction ends at view return; waiting holds nothing.
    tgstream_transaction = 'view'

    def __init__(self, hub: Hub, subscription: Subscription, backlog: Iterable,
                 after: int, head_id: str | None, keepalive: float, *,
                 exclude: frozenset = frozenset(), max_lifetime: float = 0.0,
                 retry: int = 2000, metrics: Any = None):
        self.hub = hub
        self.subscription = subscription
        # tgstream.otel's live metrics (None without OpenTelemetry)
        self._metrics = metrics
        if metrics is not None:
            for channel in subscription.channels:
                metrics.listener_opened(channel)
        self._prelude: Iterator | None = _prelude(backlog, head_id, exclude)
        # queued events at or before this position were in the backlog
        self._after = after
        # log rows the client already has (tgstream.live.current_id)
        self._exclude = exclude
        self._retry = retry
        self._deadline = time.monotonic() + max_lifetime if max_lifetime else None
        # wake every stream at least twice per keep-alive interval: one is
        # sent between keepalive and 1.5 x keepalive seconds of silence
        tick = min(max(keepalive / 2, 0.05), 5.0) if keepalive else 5.0
        if max_lifetime:
            tick = min(tick, max(max_lifetime / 4, 0.05))
        hub.tick_every(tick)
        self.closed = False
        self.started = False
        self._ending = False

    def __iter__(self) -> 'LiveStream':
        return self

    def __next__(self):
        if self.closed:
            raise StopIteration
        if self._ending:
            self.close()
            raise StopIteration
        if self._prelude is not None:
            for item in self._prelude:
                return item
            self._prelude = None
        if self.hub.stopped or (
            self._deadline is not None and time.monotonic() >= self._deadline
        ):
            return self._end()
        # The first item is primed inside the view: never wait there (the
        # first idle sends a keep-alive comment, and with it the headers).
        # Then wait until an event, or the hub's ticker, wakes the channels.
        while True:
            queued = self.subscription.get(None if self.started else 0)
            self.started = True
            if queued is None:
                if self.hub.stopped:
                    return self._end()
                return sse_idle
            position, message, key, event = queued
            if position is not None and position <= self._after:
                continue  # already sent from the backlog
            if key is not None and key in self._exclude:
                continue  # the client had it when its page was rendered
            if self._metrics is not None and event is not None and event.committed_at:
                self._metrics.delivered(event.channel, event.committed_at)
            return message

    def _end(self) -> ServerSentEvent:
        # a planned end: the client reconnects after retry ms (+ up to 100 %
        # jitter, so a deploy's reconnections spread out) with its last id
        self._ending = True
        return ServerSentEvent(retry=self._retry + random.randrange(self._retry + 1),
                               comment='end')

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub.unsubscribe(self.subscription)
            if self._metrics is not None:
                for channel in self.subscription.channels:
                    self._metrics.listener_closed(channel)

    def __repr__(self) -> str:
        return '<tgstream.LiveStream %s>' % ','.join(self.subscription.channels)
