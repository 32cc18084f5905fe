"""``expose``: a TurboGears-style view decorator built on ``view_config``."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from pyramid.view import view_config

F = TypeVar('F', bound=Callable[..., Any])


class expose:
    """Register the decorated function or method as a view, like ``view_config``.

    ``renderer`` may be given positionally (``@expose('json')``). With
    ``stream=True`` the view streams: it may be a generator function or return
    any iterable, and each item reaches the client as it is produced, with the
    request, its transaction and ``tgstream.request`` usable throughout.
    ``content_type`` sets the response's content type (for streams, a type the
    view sets on ``request.response`` before its first item wins).

    Everything else is passed to ``view_config`` (``route_name``,
    ``request_method``, ``permission``, ``stream_transaction``, ...), and the
    view is registered by ``config.scan()``. Without ``stream=True`` it is
    exactly ``view_config`` plus the ``content_type`` shortcut.

    Example::

        @expose(route_name='count', stream=True, content_type='text/plain')
        def count(request):
            for n in range(1, 11):
                yield '%s\\n' % n

    Caveat: a stream's status and headers are sent with its first item; set
    them before the first ``yield``.
    """

    def __init__(
        self,
        renderer: str | None = None,
        *,
        stream: bool = False,
        content_type: str | None = None,
        **view_config_args: Any,
    ):
        settings = dict(view_config_args)
        if renderer is not None:
            settings['renderer'] = renderer
        if stream:
            settings['stream'] = stream
        if content_type is not None:
            settings['content_type'] = content_type
        self.settings = settings

    def __call__(self, wrapped: F) -> F:
        # _depth=1: venusian must see the caller of this method, the class
        # body or module that applies the decorator.
        settings = dict(self.settings)
        depth = settings.pop('_depth', 0) + 1
        return view_config(_depth=depth, **settings)(wrapped)
