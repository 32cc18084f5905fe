"""The hub: one per process, fanning committed events out to live streams.

Every backend ends in :meth:`Hub.publish`, called in commit order with
increasing positions (the memory backend after the committing transaction,
the PostgreSQL reader as the log's positions are committed). The hub keeps
the last ``history`` events of each channel (memory backend; the PostgreSQL
backend replays from its log instead) and the position of the latest event
it published, so a stream's backlog and its live queue meet exactly.

Streams wait on one shared signal per set of channels, without a timer; a
ticker thread (a greenlet under gevent) wakes every stream twice per
keep-alive interval, so idle streams send their keep-alives and notice
departed clients. Waking is cheap: a publish costs one ``set()`` per set of
channels listened to, not per stream.

The hub knows nothing of the wire: it stores what ``encode`` (given by its
creator) makes of an event, once per event, shared by every stream.
"""
from __future__ import annotations

import heapq
import itertools
import os
import secrets
import threading
from collections import deque
from typing import Any, Callable, Iterable, NamedTuple


class Event(NamedTuple):
    """One committed notification: ``data`` is its JSON text, ``id`` the
    SSE id; ``position`` orders events of every channel in commit order,
    ``key`` is the log row's key (PostgreSQL) or ``None``."""

    channel: str
    id: str
    data: str
    position: int = 0
    key: int | None = None
    #: ``time.time()`` of its commit, as this process knows it (memory: the
    #: commit itself; PostgreSQL: when the log sequenced it, just after its
    #: commit); 0.0 for replayed events (their delivery is no latency)
    committed_at: float = 0.0


class Reset(NamedTuple):
    """The stream may have missed events: the client should reload its state."""

    reason: str


class _Ids:
    # Event ids unique across processes and restarts (memory backend): a
    # random token per process (renewed in a forked child) and a counter.
    def __init__(self):
        self.renew()

    def renew(self) -> None:
        self.token = secrets.token_hex(5)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return '%s-%d' % (self.token, next(self.counter))

    def origin(self) -> str:
        """The id that stands for "before this process's first event"."""
        return '%s-0' % self.token


ids = _Ids()
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=ids.renew)


class _Group:
    # The streams on one set of channels and their shared wake-up signal: a
    # publish appends to every mailbox, then sets one event that wakes them
    # all (far cheaper under gevent than one event per stream).
    __slots__ = ('channels', 'subscriptions', 'signal')

    def __init__(self, channels: tuple[str, ...]):
        self.channels = channels
        self.subscriptions: set[Subscription] = set()
        self.signal = threading.Event()

    def wake(self) -> None:
        signal, self.signal = self.signal, threading.Event()
        signal.set()


class Subscription:
    """One live stream's mailbox of ``(position, message)`` pairs
    (``threading`` primitives: cooperative under gevent's monkey-patching)."""

    __slots__ = ('channels', 'items', 'group', '__weakref__')

    def __init__(self, group: _Group):
        self.channels = group.channels
        self.items: deque = deque()
        self.group = group

    def get(self, timeout: float | None) -> Any:
        """The next ``(position, message)``, or ``None`` after ``timeout``
        seconds without one (``None``: until the channels are woken -- an
        event, or the hub's ticker -- which spares a timer per wait)."""
        # the signal is taken before the mailbox is checked: an item
        # appended after the check comes with a set() of this signal
        signal = self.group.signal
        items = self.items
        if not items and timeout != 0:
            signal.wait(timeout)
        return items.popleft() if items else None


class Hub:
    """Subscriptions, recent history and head position of one process."""

    def __init__(self, history: int = 100,
                 encode: Callable[[Event | Reset], Any] = lambda item: item):
        self.history_size = history
        self.encode = encode
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._by_channel: dict[str, list[_Group]] = {}
        self._history: dict[str, deque[Event]] = {}
        # per channel: the position of the newest event that left the history
        self._evicted: dict[str, int] = {}
        #: position of the latest event published (0: none yet)
        self.head = 0
        #: the backend's listener, if it has one (PostgreSQL)
        self.listener: Any = None
        #: the backend's log, if it has one (PostgreSQL)
        self.log: Any = None
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
            groups = list(self._groups.values())
        for group in groups:
            group.wake()

    def subscribe(
        self, channels: Iterable[str], last_event_id: str | None = None
    ) -> tuple[Subscription, list, int, str | None]:
        """Register a stream on ``channels``.

        Returns the subscription, the backlog from the history (the events
        of ``channels`` after ``last_event_id``, or a :class:`Reset` when
        that id is not in the history; empty without a history), the head
        position (every later event reaches the subscription) and the id of
        the latest event of ``channels`` in the history (``None`` if none).
        Atomic with :meth:`publish`: nothing falls between backlog and queue.
        """
        key = (channels,) if isinstance(channels, str) else tuple(sorted(set(channels)))
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(key)
                for channel in key:
                    self._by_channel.setdefault(channel, []).append(group)
            subscription = Subscription(group)
            histories = [self._history.get(channel, ()) for channel in key]
            head_id = self._latest_id(histories)
            backlog: list = []
            if self.history_size and last_event_id is not None and last_event_id != head_id:
                backlog = self._replay(key, histories, last_event_id)
            group.subscriptions.add(subscription)
            return subscription, backlog, self.head, head_id

    def latest_id(self, channels: Iterable[str]) -> str | None:
        """The id of the latest event of ``channels`` in the history."""
        with self._lock:
            return self._latest_id([self._history.get(c, ()) for c in channels])

    @staticmethod
    def _latest_id(histories) -> str | None:
        latest = max((h[-1] for h in histories if h), key=_position, default=None)
        return latest.id if latest is not None else None

    def _replay(self, channels, histories, last_event_id: str) -> list:
        if last_event_id == ids.origin():
            after = 0
        else:
            found = [e for h in histories for e in h if e.id == last_event_id]
            if not found:
                return [Reset('unknown Last-Event-ID %r' % (last_event_id,))]
            after = found[0].position
        if any(self._evicted.get(channel, 0) > after for channel in channels):
            return [Reset('Last-Event-ID %r is older than the history' % (last_event_id,))]
        return list(heapq.merge(
            *[[e for e in h if e.position > after] for h in histories], key=_position))

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            group = subscription.group
            group.subscriptions.discard(subscription)
            if not group.subscriptions and self._groups.get(group.channels) is group:
                del self._groups[group.channels]
                for channel in group.channels:
                    groups = self._by_channel[channel]
                    groups.remove(group)
                    if not groups:
                        del self._by_channel[channel]

    def publish(self, event: Event) -> None:
        """Deliver a committed event to every stream on its channel; an
        event without a position gets the next one."""
        with self._lock:
            if not event.position:
                event = event._replace(position=self.head + 1)
            if event.position <= self.head:
                return  # already published (a reader that caught up twice)
            self.head = event.position
            if self.history_size:
                history = self._history.get(event.channel)
                if history is None:
                    history = self._history[event.channel] = deque(maxlen=self.history_size)
                if len(history) == history.maxlen:
                    self._evicted[event.channel] = history[0].position
                history.append(event)
            groups = self._by_channel.get(event.channel)
            if groups:
                item = (event.position, self.encode(event), event.key, event)
                for group in groups:
                    for subscription in group.subscriptions:
                        subscription.items.append(item)
                    group.wake()

    def advance(self, position: int) -> None:
        """The log's head moved to ``position`` with nothing to deliver here."""
        with self._lock:
            self.head = max(self.head, position)

    def reset_all(self, reason: str) -> None:
        """Events may have been lost: forget the history and tell every
        stream to reset."""
        item = (None, self.encode(Reset(reason)), None, None)
        with self._lock:
            for channel, history in self._history.items():
                if history:
                    self._evicted[channel] = history[-1].position
            self._history.clear()
            for group in self._groups.values():
                for subscription in group.subscriptions:
                    subscription.items.append(item)
                group.wake()

    def stream_count(self) -> int:
        """Live streams subscribed in this process."""
        with self._lock:
            return sum(len(g.subscriptions) for g in self._groups.values())

    def stop(self, timeout: float = 5.0) -> None:
        """End every stream, stop the backend's listener (if any) and the
        ticker."""
        self._stopped.set()
        self.wake_all()
        if self.listener is not None:
            self.listener.stop(timeout)
        if self.log is not None and timeout:
            self.log.close()


def _position(event: Event) -> int:
    return event.position
