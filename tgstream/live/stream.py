"""The iterable :func:`tgstream.listen` returns."""
from __future__ import annotations

from collections import deque

from ..renderers.sse import ServerSentEvent, sse_idle
from .hub import Event, Hub, Reset, Subscription


def to_sse(item: Event | Reset) -> ServerSentEvent:
    if isinstance(item, Reset):
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
        # wake every stream at least twice per keep-alive interval: one is
        # sent between keepalive and 1.5 x keepalive seconds of silence
        hub.tick_every(min(max(keepalive / 2, 0.05), 5.0) if keepalive else 5.0)
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
        # Then wait until an event, or the hub's ticker, wakes the channel.
        item = self.subscription.get(None if self.started else 0)
        self.started = True
        if item is None and self.hub.stopped:
            raise StopIteration  # the hub was stopped: end the stream
        return sse_idle if item is None else item

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub.unsubscribe(self.subscription)

    def __repr__(self) -> str:
        return '<tgstream.LiveStream %r>' % self.subscription.channel
