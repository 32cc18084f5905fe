"""``tgstream.request``: a module-level proxy to the current request."""
from __future__ import annotations

from typing import Any

from pyramid.threadlocal import get_current_request


class RequestProxy:
    """Forward attribute access to Pyramid's current request.

    The TurboGears ``tg.request`` idiom for Pyramid: ``tgstream.request``
    resolves to the request being served, in views and -- because tgstream
    re-pushes the request around every step of a stream -- inside streams.
    ``tgstream.request._current_obj()`` returns the real request object, to
    hand to code that must not depend on a global.

    Outside a request it raises :class:`RuntimeError`; pass the request in
    explicitly in code that also runs in scripts or threads.
    """

    __slots__ = ()

    def _current_obj(self) -> Any:
        request = get_current_request()
        if request is None:
            raise RuntimeError(
                'tgstream.request is used outside of a request: it is only '
                'available while Pyramid serves a request (in a view, a '
                'tween, or a stream tgstream runs); pass the request '
                'explicitly to code that runs elsewhere'
            )
        return request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current_obj(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._current_obj(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._current_obj(), name)

    def __dir__(self):
        return dir(self._current_obj())

    def __bool__(self) -> bool:
        return get_current_request() is not None

    def __repr__(self) -> str:
        request = get_current_request()
        if request is None:
            return '<tgstream.request: no current request>'
        return '<tgstream.request for %r>' % (request,)


request = RequestProxy()
