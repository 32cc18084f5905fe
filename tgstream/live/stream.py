"""The iterable :func:`tgstream.listen` returns."""
from __future__ import annotations

import time
from collections import deque

from ..sse import ServerSentEvent, idle
from .hub import Event, Hub, Reset, Subscription


def to_sse(item: Event | Reset) -> ServerSentEvent:
    if item.__class__ is Reset:
        return ServerSentEvent({'reason': item.reason}, event='reset')
    return ServerSentEvent(item.data, id=item.id)


class LiveStream:
    """Items of one live stream: events, ``reset``, and ``sse_idle`` while
    waiting. ``close()`` frees its slot in the hub (tgstream calls it when
    the stream ends, fails, or its client leaves)."""

    #: the transaction policy it runs under unless the view names one: the
    #: view's transaction ends at view return; waiting holds nothing.
    tgstream_transaction = 'view'

    def __init__(self, hub: Hub, subscription: Subscription, backlog: list,
                 head: str | None, keepalive: float):
        self.hub = hub
        self.subscription = subscription
        self.backlog = deque(to_sse(item) for item in backlog)
        if head is not None and (not backlog or backlog[-1].__class__ is Reset):
            # a fresh (or reset) client learns the latest id -- an id-only
            # event sets the EventSource's last event id -- so its next
            # reconnection can be replayed
            self.backlog.append(ServerSentEvent(id=head, comment='live'))
        self.keepalive = keepalive
        #: when the encoder last wrote (an event, or a keep-alive comment)
        self.last_output = time.monotonic()
        self.closed = False
        self.started = False

    def __iter__(self) -> 'LiveStream':
        return self

    def __next__(self):
        if self.closed:
            raise StopIteration
        if self.backlog:
            return self.backlog.popleft()
        # The first item is primed inside the view: never wait there (the
        # first idle sends a keep-alive comment, and with it the headers).
        # Then wake only when a keep-alive is due (one wake-up per interval
        # per idle stream; the margin covers the encoder's own clock).
        keepalive = self.keepalive
        if not self.started:
            wait = 0.0
        elif keepalive:
            wait = max(self.last_output + keepalive - time.monotonic(), 0.0) + 0.05
        else:
            wait = 5.0
        self.started = True
        item = self.subscription.get(wait)
        now = time.monotonic()
        if item is None:
            if keepalive and now - self.last_output >= keepalive:
                self.last_output = now  # the encoder sends a keep-alive
            return idle
        self.last_output = now
        return item

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub.unsubscribe(self.subscription)

    def __repr__(self) -> str:
        return '<tgstream.LiveStream %r>' % self.subscription.channel
