"""Live streams: transactional notifications fanned out to server-sent events.

``tgstream.notify(request, channel, payload)`` inside the request's
transaction; ``return tgstream.listen(request, channel)`` from an ``sse``
stream view. Events reach every listening stream of every process after the
transaction committed, and never when it aborted; with the PostgreSQL
backend they are kept in a durable log and replayed from ``Last-Event-ID``
by any process. See docs/live.rst.
"""
from __future__ import annotations

import threading
from typing import Any, Sequence

from pyramid.interfaces import PHASE1_CONFIG
from pyramid.threadlocal import get_current_request

from ..otel import live_metrics
from .config import PAYLOAD_LIMIT, LiveSettings, parse_live_settings
from .hub import Event, Hub, ids
from .stream import LiveStream, to_sse

__all__ = ['LiveSettings', 'LiveStream', 'PayloadTooLarge', 'current_id', 'get_hub',
           'listen', 'notify', 'stop_hub']

HUB_KEY = 'tgstream.live.hub'
SETTINGS_KEY = 'tgstream.live.settings'
_hub_lock = threading.Lock()


class PayloadTooLarge(ValueError):
    """A notification over PostgreSQL's NOTIFY limit (8000 bytes)."""


def includeme(config) -> None:
    """Parse and check the ``tgstream.live.*`` settings at commit time, and
    end every live stream of the process cleanly on SIGTERM (see
    :mod:`tgstream.live.shutdown`)."""
    settings = config.get_settings()

    def store():
        config.registry[SETTINGS_KEY] = parse_live_settings(settings)
        from .shutdown import install

        install()  # SIGTERM ends every live stream cleanly (see shutdown.py)

    config.action(('tgstream', 'live settings'), store, order=PHASE1_CONFIG)


def live_settings(registry) -> LiveSettings:
    parsed = registry.get(SETTINGS_KEY) if registry is not None else None
    if parsed is None:
        parsed = parse_live_settings(getattr(registry, 'settings', None))
    return parsed


def get_hub(registry) -> Hub:
    """This process's hub of ``registry``'s application (started on first use;
    a forked worker gets a fresh one and its own listening connection)."""
    import os

    hub = registry.get(HUB_KEY)
    if hub is not None and hub.pid == os.getpid():
        return hub
    with _hub_lock:
        hub = registry.get(HUB_KEY)
        if hub is not None and hub.pid == os.getpid():
            return hub
        settings = live_settings(registry)
        if settings.backend == 'postgresql':
            from .log import LiveLog
            from .postgres import PostgresListener

            assert settings.url is not None  # (parse_live_settings saw to it)
            hub = Hub(0, encode=to_sse)  # the log is the history
            hub.log = LiveLog(settings.url, settings.table)
            hub.listener = PostgresListener(
                hub, settings.url, settings.pg_channel, settings.table,
                retention=settings.retention, poll=settings.poll)
            hub.listener.start()
        else:
            hub = Hub(settings.history, encode=to_sse)
        from .shutdown import register

        register(hub)
        registry[HUB_KEY] = hub
        return hub


def stop_hub(registry, timeout: float = 5.0) -> None:
    """Stop and forget ``registry``'s hub (tests, shutdown hooks): every
    live stream ends cleanly at once, after a ``retry:`` field with jitter
    (its client reconnects, to another process, and resumes from its last
    id)."""
    hub = registry.get(HUB_KEY)
    if hub is not None:
        registry[HUB_KEY] = None
        hub.stop(timeout)


def _request(request, name: str):
    request = request if request is not None else get_current_request()
    if request is None:
        raise RuntimeError(
            'tgstream.%s() needs a request: call it in a view or a stream, or '
            'pass the request' % name
        )
    return request


def _channels(channels: Any) -> tuple[str, ...]:
    if isinstance(channels, str):
        return (_check_channel(channels),)
    try:
        names = tuple(channels)
    except TypeError:
        names = ()
    if not names:
        raise ValueError('live channels %r: give a channel name or a non-empty '
                         'list of them' % (channels,))
    return tuple(_check_channel(name) for name in names)


def _check_channel(channel: Any) -> str:
    if not isinstance(channel, str) or not channel or len(channel) > 200 or any(
        ord(c) < 32 for c in channel
    ):
        raise ValueError(
            'live channel %r is not valid: use a non-empty str of at most 200 '
            'characters without control characters' % (channel,)
        )
    return channel


def _transaction_of(request):
    # The request's current transaction: pyramid_tm's request.tm (tgstream's
    # proxy while a stream runs), else the thread-local manager (TurboGears).
    try:
        import transaction
        from transaction.interfaces import NoTransaction
    except ImportError:  # pragma: no cover - the sqlalchemy extra
        raise RuntimeError('tgstream.notify() needs the transaction package '
                           '(the "live" extra: pip install -e ".[live]" in a checkout)') from None
    manager = getattr(request, 'tm', None) or transaction.manager
    try:
        txn = manager.get()
    except NoTransaction:
        raise RuntimeError(
            'tgstream.notify() needs an open transaction (pyramid_tm or '
            'transaction.manager); none is active for %s'
            % getattr(request, 'path_qs', request)
        ) from None
    return manager, txn


def _session_of(request, session):
    if session is not None:
        return session
    session = getattr(request, 'dbsession', None)
    if session is None:
        from ..settings import get_settings

        session = get_settings(request.registry).sqlalchemy_session
    if session is None:
        raise RuntimeError(
            'tgstream.notify() with tgstream.live.backend = postgresql writes '
            'to the log through the request\'s SQLAlchemy session: there is no '
            'request.dbsession nor tgstream.sqlalchemy.session; pass session='
        )
    return session


def notify(request, channel: str, payload: Any, *, session: Any = None) -> str:
    """Send ``payload`` to every ``listen(request, channel)`` stream, after
    the request's transaction commits (and never if it aborts).

    ``payload`` is encoded as JSON now (with the app's JSON renderer rules);
    one over 8000 bytes raises :class:`PayloadTooLarge` here, with every
    backend. With ``tgstream.live.backend = postgresql`` it is a row of the
    durable log (``tgstream.live.table``), inserted through the request's
    SQLAlchemy session (``request.dbsession``, else
    ``tgstream.sqlalchemy.session``, else ``session=``): it exists if and
    only if the transaction commits, and every process delivers it. Inside a
    stream it is delivered when the stream's transaction commits. Returns the
    event's id (memory) or its key in the log (PostgreSQL: its SSE id, a
    position in commit order, is given when it commits).

    Example::

        request.dbsession.add(order)
        tgstream.notify(request, 'orders', {'id': order.id})
    """
    from ..renderers.jsonrules import JSONEncoding

    request = _request(request, 'notify')
    _check_channel(channel)
    data = JSONEncoding(request, one_line=True).dumps(payload).decode('utf-8')
    settings = live_settings(request.registry)
    if settings.backend == 'postgresql':
        from .postgres import send

        _check_size(channel, '%s\n%s' % (channel, data))
        hub = get_hub(request.registry)
        hub.log.ensure()
        session = _session_of(request, session)
        key = send(session, settings.table, channel, data)
        _poke_after_commit(request, hub)
        return str(key)
    from .memory import MemoryNotifications

    event = Event(channel, ids.next(), data)
    _check_size(channel, '%s\n%s\n%s' % event[:3])
    manager, txn = _transaction_of(request)
    MemoryNotifications.join(get_hub(request.registry), txn, manager).events.append(event)
    return event.id


def _poke_after_commit(request, hub: Hub) -> None:
    # Wake the listener when the transaction committed: the sequencer gives
    # the new rows their positions now, not at its next poll.
    try:
        _, txn = _transaction_of(request)
    except RuntimeError:  # a session outside the transaction package
        return
    key = 'tgstream.live.poke'
    try:
        txn.data(key)
    except KeyError:
        txn.set_data(key, True)
        txn.addAfterCommitHook(lambda ok: ok and hub.listener.poke())


def _check_size(channel: str, message: str) -> None:
    size = len(message.encode('utf-8'))
    if size >= PAYLOAD_LIMIT:
        raise PayloadTooLarge(
            'tgstream.notify(%r): the notification is %d bytes encoded; '
            'PostgreSQL NOTIFY takes less than %d (send an id and let the page '
            'fetch the rest)' % (channel, size, PAYLOAD_LIMIT)
        )


def listen(request, channel: str | Sequence[str], *, last_event_id: str | None = None,
           keepalive: float | None = None) -> LiveStream:
    """The committed events of ``channel`` (a name, or a list of names), as
    an ``sse`` stream's items, in commit order.

    Return it from a ``stream=True`` view with ``renderer='sse'``. It
    subscribes now (nothing committed after this call is missed), waits
    without a database connection or transaction (the stream runs under the
    ``view`` transaction policy unless the view names one), and yields
    ``tgstream.sse_idle`` while waiting, so keep-alive comments go out at
    the ``tgstream.sse.keepalive`` interval and a client that left is
    noticed. Each event has ``id:``; a client reconnecting with a
    ``Last-Event-ID`` (header, or ``last_event_id=``, e.g.
    :func:`current_id` embedded in the page) is sent exactly what it missed
    -- from the durable log with the PostgreSQL backend, from the process's
    history with the memory backend -- and when that cannot be known (an id
    older than ``tgstream.live.retention``, or unknown) one ``event: reset``
    first: reload your state. ``keepalive``: give the view's ``keepalive``
    renderer option here too when it differs from ``tgstream.sse.keepalive``
    (the stream wakes when one is due).

    Example::

        @expose('sse', route_name='order_feed', stream=True)
        def order_feed(request):
            return tgstream.listen(request, 'orders')
    """
    from ..settings import get_settings

    request = _request(request, 'listen')
    channels = _channels(channel)
    if last_event_id is None:
        last_event_id = (request.headers.get('Last-Event-ID')
                         or request.params.get('last_event_id') or None)
    if keepalive is None:
        keepalive = get_settings(request.registry).sse_keepalive
    settings = live_settings(request.registry)
    hub = get_hub(request.registry)
    listener = hub.listener
    if listener is not None and not listener.connected.is_set() and not listener.connections:
        # the process's first streams: subscribe once the listener knows the
        # log's head (a database still unreachable after this gets them a
        # reset later)
        listener.connected.wait(listener.first_wait)
    subscription, backlog, head, head_id = hub.subscribe(channels, last_event_id)
    after, exclude = head, frozenset[int]()
    if hub.log is not None:
        head_id = str(head) if head else None
        if last_event_id is not None:
            try:
                backlog, after, exclude = hub.log.backlog(channels, last_event_id, head)
            except BaseException:
                hub.unsubscribe(subscription)
                raise
    return LiveStream(hub, subscription, backlog, after, head_id, keepalive,
                      exclude=exclude, max_lifetime=settings.max_lifetime,
                      retry=settings.retry, metrics=live_metrics(request.registry))


def current_id(request, channel: str | Sequence[str], *, session: Any = None) -> str | None:
    """The id a page embeds when it is rendered: a later
    ``listen(request, channel, last_event_id=<it>)`` delivers exactly the
    events committed after what this transaction sees -- no gap between
    render and subscribe, no duplicate.

    Call it in the transaction that reads what the page shows, before that
    read (under READ COMMITTED each statement sees the latest commits: an
    event committed in between then arrives once more, never not at all;
    under REPEATABLE READ it is exact). With the memory backend it is the
    latest event's id in the process's history (``None`` without a
    history).

    Example::

        return {'orders': orders, 'since': tgstream.live.current_id(request, 'orders')}
        # in the page: new EventSource('/orders/feed?last_event_id=' + since)
    """
    request = _request(request, 'current_id')
    channels = _channels(channel)
    settings = live_settings(request.registry)
    hub = get_hub(request.registry)
    if settings.backend == 'postgresql':
        from .log import current_id as log_current_id

        hub.log.ensure()
        return log_current_id(_session_of(request, session), settings.table, channels)
    if not hub.history_size:
        return None
    latest = hub.latest_id(channels)
    return latest if latest is not None else ids.origin()
