"""Live streams: transactional notifications fanned out to server-sent events.

``tgstream.notify(request, channel, payload)`` inside the request's
transaction; ``return tgstream.listen(request, channel)`` from an ``sse``
stream view. Events reach every listening stream of every process after the
transaction committed, and never when it aborted. See README.rst, "Live
streams".
"""
from __future__ import annotations

import threading
from typing import Any

from pyramid.interfaces import PHASE1_CONFIG
from pyramid.threadlocal import get_current_request

from .config import PAYLOAD_LIMIT, LiveSettings, parse_live_settings
from .hub import Event, Hub, ids
from .stream import LiveStream

__all__ = ['LiveSettings', 'LiveStream', 'PayloadTooLarge', 'get_hub', 'listen',
           'notify', 'stop_hub']

HUB_KEY = 'tgstream.live.hub'
SETTINGS_KEY = 'tgstream.live.settings'
_hub_lock = threading.Lock()


class PayloadTooLarge(ValueError):
    """A notification over PostgreSQL's NOTIFY limit (8000 bytes)."""


def includeme(config) -> None:
    """Parse and check the ``tgstream.live.*`` settings at commit time."""
    settings = config.get_settings()

    def store():
        config.registry[SETTINGS_KEY] = parse_live_settings(settings)

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
        hub = Hub(settings.history)
        if settings.backend == 'postgresql':
            from .postgres import PostgresListener

            assert settings.url is not None  # (parse_live_settings saw to it)
            hub.listener = PostgresListener(hub, settings.url, settings.pg_channel)
            hub.listener.start()
        registry[HUB_KEY] = hub
        return hub


def stop_hub(registry, timeout: float = 5.0) -> None:
    """Stop and forget ``registry``'s hub (tests, shutdown hooks)."""
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
            'tgstream.notify() with tgstream.live.backend = postgresql sends '
            'pg_notify through the request\'s SQLAlchemy session: there is no '
            'request.dbsession nor tgstream.sqlalchemy.session; pass session='
        )
    return session


def notify(request, channel: str, payload: Any, *, session: Any = None) -> str:
    """Send ``payload`` to every ``listen(request, channel)`` stream, after
    the request's transaction commits (and never if it aborts).

    ``payload`` is encoded as JSON now (with the app's JSON renderer rules);
    one over 8000 bytes raises :class:`PayloadTooLarge` here, with every
    backend. With ``tgstream.live.backend = postgresql`` it is a
    ``pg_notify`` on the request's SQLAlchemy session (``request.dbsession``,
    else ``tgstream.sqlalchemy.session``, else ``session=``), so PostgreSQL's
    commit carries it to every process. Inside a stream it is delivered when
    the stream's transaction commits. Returns the event id.

    Example::

        request.dbsession.add(order)
        tgstream.notify(request, 'orders', {'id': order.id})
    """
    from ..renderers.jsonrules import JSONEncoding

    request = _request(request, 'notify')
    _check_channel(channel)
    data = JSONEncoding(request, one_line=True).dumps(payload).decode('utf-8')
    event = Event(channel, ids.next(), data)
    settings = live_settings(request.registry)
    if settings.backend == 'postgresql':
        from .postgres import format_message, send

        message = format_message(*event)
        _check_size(channel, message)
        send(_session_of(request, session), settings.pg_channel, message)
    else:
        from .memory import MemoryNotifications

        _check_size(channel, '%s\n%s\n%s' % event)
        manager, txn = _transaction_of(request)
        MemoryNotifications.join(get_hub(request.registry), txn, manager).events.append(event)
    return event.id


def _check_size(channel: str, message: str) -> None:
    size = len(message.encode('utf-8'))
    if size >= PAYLOAD_LIMIT:
        raise PayloadTooLarge(
            'tgstream.notify(%r): the notification is %d bytes encoded; '
            'PostgreSQL NOTIFY takes less than %d (send an id and let the page '
            'fetch the rest)' % (channel, size, PAYLOAD_LIMIT)
        )


def listen(request, channel: str, *, last_event_id: str | None = None,
           keepalive: float | None = None) -> LiveStream:
    """The committed events of ``channel``, as an ``sse`` stream's items.

    Return it from a ``stream=True`` view with ``renderer='sse'``. It
    subscribes now (nothing committed after this call is missed), waits
    without a database connection or transaction (the stream runs under the
    ``view`` transaction policy unless the view names one), and yields
    ``tgstream.sse_idle`` while waiting, so keep-alive comments go out at
    the ``tgstream.sse.keepalive`` interval and a client that left is
    noticed. Each event has ``id:``; a client reconnecting with a
    ``Last-Event-ID`` (header, or ``last_event_id=``) still in the history
    gets what it missed, otherwise one ``event: reset`` first: reload your
    state. A ``reset`` also follows a reconnection of the PostgreSQL
    listener. ``keepalive``: give the view's ``keepalive`` renderer option
    here too when it differs from ``tgstream.sse.keepalive`` (the stream
    wakes when one is due).

    Example::

        @expose('sse', route_name='order_feed', stream=True)
        def order_feed(request):
            return tgstream.listen(request, 'orders')
    """
    from ..settings import get_settings

    request = _request(request, 'listen')
    _check_channel(channel)
    if last_event_id is None:
        last_event_id = request.headers.get('Last-Event-ID') or None
    if keepalive is None:
        keepalive = get_settings(request.registry).sse_keepalive
    hub = get_hub(request.registry)
    listener = hub.listener
    if listener is not None and not listener.connected.is_set() and not listener.connections:
        # the process's first streams: subscribe once LISTEN is in place (a
        # database still unreachable after this gets them a reset later)
        listener.connected.wait(listener.first_wait)
    subscription, backlog, head = hub.subscribe(channel, last_event_id)
    return LiveStream(hub, subscription, backlog, head, keepalive)
