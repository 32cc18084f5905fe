"""The hub: one per process, fanning committed events out to live streams.

Every backend ends in :meth:`Hub.publish`, called in commit order (the
memory backend after the committing transaction, the PostgreSQL listener as
notifications arrive). The hub keeps the last ``history`` events of each
channel so a reconnecting client can be replayed what it missed, or told to
``reset`` when that is no longer known.
"""
from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
from collections import deque
from typing import Any, NamedTuple

log = logging.getLogger('tgstream.live')


class Event(NamedTuple):
    """One committed notification: ``data`` is its JSON text."""

    channel: str
    id: str
    data: str


class Reset(NamedTuple):
    """The stream may have missed events: the client should reload its state."""

    reason: str


class _Ids:
    # Event ids unique across processes and restarts: a random token per
    # process (renewed in a forked child) and a counter.
    def __init__(self):
        self.renew()

    def renew(self) -> None:
        self.token = secrets.token_hex(5)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return '%s-%d' % (self.token, next(self.counter))


ids = _Ids()
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=ids.renew)


class Subscription:
    """One live stream's mailbox: a deque and an event (cooperative under
    gevent's monkey-patching, like every ``threading`` primitive; an event
    wakes a waiting greenlet for a fraction of a condition's cost)."""

    __slots__ = ('channel', 'items', 'ready', '__weakref__')

    def __init__(self, channel: str):
        self.channel = channel
        self.items: deque = deque()
        self.ready = threading.Event()

    def put(self, item: Any) -> None:
        self.items.append(item)  # (before set(): a woken reader finds it)
        self.ready.set()

    def get(self, timeout: float) -> Any:
        """The next item, or ``None`` after ``timeout`` seconds without one."""
        items = self.items
        if not items and timeout:
            self.ready.wait(timeout)
        # cleared before popping: an item put after this line sets it again
        self.ready.clear()
        return items.popleft() if items else None


class Hub:
    """Subscriptions and recent history of every channel of one process."""

    def __init__(self, history: int = 100):
        self.history_size = history
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._history: dict[str, deque[Event]] = {}
        #: the backend's listener, if it has one (PostgreSQL)
        self.listener: Any = None

    def subscribe(
        self, channel: str, last_event_id: str | None
    ) -> tuple[Subscription, list, str | None]:
        """Register a stream on ``channel``.

        Returns the subscription, the backlog to send first (the events after
        ``last_event_id``, or a :class:`Reset` when that id is not in the
        history), and the id of the channel's latest event (``None`` if none).
        Atomic with :meth:`publish`: nothing falls between backlog and queue.
        """
        subscription = Subscription(channel)
        with self._lock:
            history = self._history.get(channel, ())
            head = history[-1].id if history else None
            backlog: list = []
            if last_event_id is not None and last_event_id != head:
                known = [event.id for event in history]
                if last_event_id in known:
                    backlog = list(history)[known.index(last_event_id) + 1:]
                else:
                    backlog = [Reset('unknown Last-Event-ID %r' % (last_event_id,))]
            self._subscriptions.setdefault(channel, set()).add(subscription)
        return subscription, backlog, head

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscriptions = self._subscriptions.get(subscription.channel)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[subscription.channel]

    def publish(self, event: Event) -> None:
        """Deliver a committed event to every stream on its channel."""
        from .stream import to_sse

        message = to_sse(event)  # built once, shared by every stream
        with self._lock:
            if self.history_size:
                history = self._history.get(event.channel)
                if history is None:
                    history = self._history[event.channel] = deque(maxlen=self.history_size)
                history.append(event)
            for subscription in self._subscriptions.get(event.channel, ()):
                subscription.put(message)

    def reset_all(self, reason: str) -> None:
        """Events may have been lost (the listener reconnected): forget the
        history and tell every stream to reset."""
        from .stream import to_sse

        with self._lock:
            self._history.clear()
            for subscriptions in self._subscriptions.values():
                message = to_sse(Reset(reason))
                for subscription in subscriptions:
                    subscription.put(message)

    def stream_count(self) -> int:
        """Live streams subscribed in this process."""
        with self._lock:
            return sum(len(s) for s in self._subscriptions.values())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the backend's listener (if any) and wake every stream."""
        if self.listener is not None:
            self.listener.stop(timeout)
