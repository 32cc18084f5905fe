"""Keep pyramid_debugtoolbar's hands off streams.

The toolbar's tween (above pyramid_tm) reads ``response.body`` of every
``text/html`` and ``application/xhtml+xml`` response to inject its button:
that buffers a stream whole (first byte = last byte, an endless stream hangs
the worker) after pyramid_tm has committed, and an error raised by the stream
during that read escapes as a plain 500. With ``intercept_redirects`` it also
replaces the body of 301/302/303/304 responses. It has no per-response
switch, so this is a **workaround for a missing toolbar API**:

- the guard tween sits *under* the toolbar and *over* pyramid_tm (so
  pyramid_tm still sees the real status and type), and only acts on
  responses whose body is a :class:`~tgstream.stream.StreamIterator` of a
  request the toolbar is monitoring (``request.debug_toolbar`` is set);
- it hides what the toolbar acts on: an HTML ``Content-Type`` becomes
  :data:`HIDDEN_CONTENT_TYPE`; with ``debugtoolbar.intercept_redirects`` a
  30x status becomes :data:`HIDDEN_STATUS`;
- a response callback (response callbacks run after every tween, before the
  server sends the headers) puts the real values back, on the response and
  in the toolbar's record of the request.

The toolbar still records what it can: request vars, timing, the SQL run
before the first item; its SQLAlchemy panel is refreshed when the stream
ends, so it also lists the queries run while streaming and the commit.

Caveat: tweens over the guard (the toolbar, and any tween above it) see the
placeholders for streams of monitored requests. ``tgstream.toolbar = false``
turns the guard off. Example (``development.ini``)::

    pyramid.includes = pyramid_debugtoolbar tgstream
    debugtoolbar.hosts = 127.0.0.1 ::1
"""
from __future__ import annotations

from typing import Any, Callable

from pyramid.settings import asbool
from pyramid.tweens import EXCVIEW, MAIN

from ._compat import (
    TM_TWEEN,
    toolbar_app_interface,
    toolbar_of,
    toolbar_refresh_sql_panel,
    toolbar_set_status,
)
from .settings import get_settings
from .stream import StreamIterator

TOOLBAR_TWEEN = 'pyramid_debugtoolbar.toolbar_tween_factory'
GUARD_TWEEN = 'tgstream.toolbar.toolbar_guard_tween_factory'

#: the content types the toolbar injects its button into (exact match)
HTML_TYPES = ('text/html', 'application/xhtml+xml')
#: the statuses the toolbar rewrites with ``intercept_redirects``
REDIRECT_CODES = (301, 302, 303, 304)
#: what the toolbar sees instead of an HTML stream's Content-Type
HIDDEN_CONTENT_TYPE = 'application/x-tgstream-hidden-from-toolbar'
#: what the toolbar sees instead of a stream's 30x status
HIDDEN_STATUS = '399 tgstream hidden redirect'
_HIDDEN_CODE = int(HIDDEN_STATUS.split()[0])


def includeme(config: Any) -> None:
    """Place the guard tween under the toolbar and over pyramid_tm.

    The placement is decided when the configuration is committed (every
    include is done by then, in whatever order): with the toolbar included,
    under it and over pyramid_tm (or the exception view); without it, at
    Pyramid's default place, where it constrains no other tween -- declared
    over pyramid_tm there, it would pull pyramid_tm over tweens included
    before it (OpenTelemetry's). The factory decides at ``make_wsgi_app``
    time whether the toolbar is enabled at all.
    """

    def place_guard() -> None:
        if toolbar_included(config.registry):
            config.add_tween(
                GUARD_TWEEN, under=TOOLBAR_TWEEN, over=(TM_TWEEN, EXCVIEW, MAIN)
            )
        else:
            config.add_tween(GUARD_TWEEN)

    config.action(('tgstream', 'toolbar guard'), place_guard)


def toolbar_included(registry: Any) -> bool:
    """Is pyramid_debugtoolbar included in this application?"""
    interface = toolbar_app_interface()
    return interface is not None and registry.queryUtility(interface) is not None


def toolbar_enabled(registry: Any) -> bool:
    """Is pyramid_debugtoolbar included and enabled in this application?"""
    if not toolbar_included(registry):
        return False
    return asbool(registry.settings.get('debugtoolbar.enabled', True))


def toolbar_guard_tween_factory(handler: Callable, registry: Any) -> Callable:
    """Hide streams from pyramid_debugtoolbar (see the module docstring).

    Returns ``handler`` itself (no tween at all) unless the toolbar is
    included and enabled and ``tgstream.toolbar`` is true.
    """
    if not get_settings(registry).toolbar or not toolbar_enabled(registry):
        return handler
    hide_redirects = asbool(
        registry.settings.get('debugtoolbar.intercept_redirects', False)
    )

    def toolbar_guard_tween(request):
        response = handler(request)
        toolbar = toolbar_of(request)
        if toolbar is None or not isinstance(
            getattr(response, 'app_iter', None), StreamIterator
        ):
            return response  # not monitored, or not a stream
        hidden = _Hidden(response, toolbar, hide_redirects)
        if hidden.headers or hidden.status:
            # first in line (Pyramid keeps them in a deque), so the response
            # callbacks the view registered see the real values too
            request.response_callbacks.appendleft(hidden.restore)
        # Finished callbacks of a stream run when it ends (tgstream defers
        # them): let the SQL panel show the queries the stream ran too.
        request.add_finished_callback(
            lambda request: toolbar_refresh_sql_panel(toolbar, response)
        )
        return response

    return toolbar_guard_tween


class _Hidden:
    """What the guard hid from the toolbar on one response, and its undo."""

    def __init__(self, response, toolbar, hide_redirects: bool):
        self.response = response
        self.toolbar = toolbar
        self.headers = None
        self.status = None
        if response.content_type in HTML_TYPES:
            # the raw header, so it comes back byte for byte (charset too)
            self.headers = response.headers.getall('Content-Type')
            response.headers['Content-Type'] = HIDDEN_CONTENT_TYPE
        if hide_redirects and response.status_int in REDIRECT_CODES:
            self.status = response.status
            response.status = HIDDEN_STATUS

    def restore(self, request, response) -> None:
        if response is not self.response:
            return  # replaced on the way out: the stream is never sent
        if self.headers is not None:
            del response.headers['Content-Type']
            for value in self.headers:
                response.headers.add('Content-Type', value)
        if self.status is not None:
            response.status = self.status
            # the toolbar recorded the placeholder before rewriting; its
            # request list must show the status the client got
            toolbar_set_status(self.toolbar, response.status_int, _HIDDEN_CODE)

