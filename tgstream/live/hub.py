"""The hub: one per process, fanning committed events out to live streams.

Every backend ends in :meth:`Hub.publish`, called in commit order (the
memory backend after the committing transaction, the PostgreSQL listener as
notifications arrive). The hub keeps the last ``history`` events of each
channel so a reconnecting client can be replayed what it missed, or told to
``reset`` when that is no longer known.

Streams wait on one shared signal per channel, without a timer; a ticker
thread (a greenlet under gevent) wakes every channel twice per keep-alive
interval, so idle streams send their keep-alives and notice departed
clients. Waking is cheap: a publish costs one ``set()`` per channel, not
per stream.
"""
from __future__ import annotations

import itertools
import os
import secrets
import threading
from collections import deque
from typing import Any, NamedTuple


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


class _Channel:
    # The streams of one channel and their shared wake-up signal: a publish
    # appends to every mailbox, then sets one event that wakes them all (far
    # cheaper under gevent than one event per stream).
    __slots__ = ('subscriptions', 'signal')

    def __init__(self):
        self.subscriptions: set[Subscription] = set()
        self.signal = threading.Event()

    def wake(self) -> None:
        signal, self.signal = self.signal, threading.Event()
        signal.set()


class Subscription:
    """One live stream's mailbox (``threading`` primitives: cooperative
    under gevent's monkey-patching)."""

    __slots__ = ('channel', 'items', 'hub_channel', '__weakref__')

    def __init__(self, channel: str, hub_channel: _Channel):
        self.channel = channel
        self.items: deque = deque()
        self.hub_channel = hub_channel

    def get(self, timeout: float | None) -> Any:
        """The next item, or ``None`` after ``timeout`` seconds without one
        (``None``: until the channel is woken -- an event, or the hub's
        ticker -- which spares a timer per wait)."""
        # the signal is taken before the mailbox is checked: an item
        # appended after the check comes with a set() of this signal
        signal = self.hub_channel.signal
        items = self.items
        if not items and timeout != 0:
            signal.wait(timeout)
        return items.popleft() if items else None


class Hub:
    """Subscriptions and recent history of every channel of one process."""

    def __init__(self, history: int = 100):
        self.history_size = history
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        self._history: dict[str, deque[Event]] = {}
        #: the backend's listener, if it has one (PostgreSQL)
        self.listener: Any = None
        #: seconds between the ticker's wake-ups of every stream (keep-alive
        #: checks); set by :meth:`tick_every`
        self.tick: float | None = None
        self._ticker: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def tick_every(self, seconds: float) -> None:
        """Wake every stream at least every ``seconds`` (the smallest asked
        for wins): idle streams then send their keep-alive when it is due and
        notice a client that left. One thread (greenlet) per hub."""
        with self._lock:
            if self.tick is None or seconds < self.tick:
                self.tick = seconds
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=self._run_ticker, name='tgstream-live-ticker', daemon=True)
                self._ticker.start()

    def _run_ticker(self) -> None:
        while not self._stopped.wait(self.tick):
            self.wake_all()

    def wake_all(self) -> None:
        with self._lock:
            channels = list(self._channels.values())
        for hub_channel in channels:
            hub_channel.wake()

    def subscribe(
        self, channel: str, last_event_id: str | None
    ) -> tuple[Subscription, list, str | None]:
        """Register a stream on ``channel``.

        Returns the subscription, the backlog to send first (the events after
        ``last_event_id``, or a :class:`Reset` when that id is not in the
        history), and the id of the channel's latest event (``None`` if none).
        Atomic with :meth:`publish`: nothing falls between backlog and queue.
        """
        with self._lock:
            hub_channel = self._channels.get(channel)
            if hub_channel is None:
                hub_channel = self._channels[channel] = _Channel()
            subscription = Subscription(channel, hub_channel)
            history = self._history.get(channel, ())
            head = history[-1].id if history else None
            backlog: list = []
            if last_event_id is not None and last_event_id != head:
                known = [event.id for event in history]
                if last_event_id in known:
                    backlog = list(history)[known.index(last_event_id) + 1:]
                else:
                    backlog = [Reset('unknown Last-Event-ID %r' % (last_event_id,))]
            hub_channel.subscriptions.add(subscription)
        return subscription, backlog, head

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            hub_channel = subscription.hub_channel
            hub_channel.subscriptions.discard(subscription)
            if not hub_channel.subscriptions and self._channels.get(
                subscription.channel
            ) is hub_channel:
                del self._channels[subscription.channel]

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
            hub_channel = self._channels.get(event.channel)
            if hub_channel is not None:
                for subscription in hub_channel.subscriptions:
                    subscription.items.append(message)
                hub_channel.wake()

    def reset_all(self, reason: str) -> None:
        """Events may have been lost (the listener reconnected): forget the
        history and tell every stream to reset."""
        from .stream import to_sse

        message = to_sse(Reset(reason))
        with self._lock:
            self._history.clear()
            for hub_channel in self._channels.values():
                for subscription in hub_channel.subscriptions:
                    subscription.items.append(message)
                hub_channel.wake()

    def stream_count(self) -> int:
        """Live streams subscribed in this process."""
        with self._lock:
            return sum(len(c.subscriptions) for c in self._channels.values())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the backend's listener (if any) and the ticker."""
        self._stopped.set()
        if self.listener is not None:
            self.listener.stop(timeout)
        self.wake_all()
