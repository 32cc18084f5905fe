"""The stream tween: plain ``Response(app_iter=<generator>)`` responses.

A view that builds its own streaming response gets every stream guarantee
too. The tween sits just above the main handler (``under`` the exception
view tween), so an error raised while priming reaches exception views.

Only *generator* bodies are taken over. Every other body -- lists, files
(``FileResponse``, ``wsgi.file_wrapper``), ``iter([...])``, ``map(...)``,
iterator classes, the ``ClosingIterator`` of an app mounted with
``pyramid.wsgi.wsgiapp2`` -- and HTTP exceptions keep Pyramid's and
pyramid_tm's behaviour exactly (commit at view return, finished callbacks
when Pyramid runs them). A ``stream=True`` view's ``Response`` is taken over
whatever lazy iterable its body is.
"""
from __future__ import annotations

import types
from collections.abc import Iterator

from pyramid.httpexceptions import HTTPException
from pyramid.response import FileIter
from webob.static import FileIter as WebObFileIter

from ._compat import app_iter_is_list
from .lifecycle import hand_over
from .renderers.encoders import RawEncoder
from .settings import StreamSettings, get_settings
from .stream import StreamIterator

#: environ key for a per-view ``stream_transaction`` of a non-stream view
POLICY_KEY = 'tgstream.policy'


def is_streamable(response, environ, any_iterator: bool = False) -> bool:
    """Does ``response`` carry a lazily produced body tgstream should run?

    A generator body, always; any other iterator body (not a list, tuple or
    file) only with ``any_iterator`` -- the ``Response`` of a ``stream=True``
    view.
    """
    app_iter = getattr(response, 'app_iter', None)
    if app_iter is None or app_iter.__class__ in (list, tuple):
        return False
    if isinstance(app_iter, StreamIterator) or isinstance(response, HTTPException):
        return False
    if isinstance(app_iter, types.GeneratorType):
        return True
    if not any_iterator:
        return False
    file_wrapper = environ.get('wsgi.file_wrapper')
    if isinstance(file_wrapper, type) and isinstance(app_iter, file_wrapper):
        return False
    return (
        isinstance(app_iter, Iterator)
        and not isinstance(app_iter, (FileIter, WebObFileIter))
        and not hasattr(app_iter, 'read')
    )


def stream_response(
    request, response, policy: str, settings: StreamSettings,
    any_iterator: bool = False,
):
    """Prime and attach the body of a response a view built itself
    (a generator; any lazy iterable with ``any_iterator``)."""
    if not is_streamable(response, request.environ, any_iterator):
        return response
    hand_over(
        request, response, response.app_iter, RawEncoder(response=response),
        name=getattr(request, 'path_info', ''), policy=policy, settings=settings,
        # setting app_iter drops a Content-Length the view set itself: keep it
        content_length=response.headers.get('Content-Length'),
    )
    return response


def stream_tween_factory(handler, registry):
    """Detect and run generator responses (see the module docstring)."""
    settings = get_settings(registry)

    def stream_tween(request):
        response = handler(request)
        # The fast path, one check: a list body (every renderer's, every
        # ``Response(body=...)``).
        if app_iter_is_list(response):
            return response
        app_iter = getattr(response, 'app_iter', None)
        if app_iter.__class__ is list or isinstance(app_iter, StreamIterator):
            return response
        policy = (request.environ.get(POLICY_KEY)
                  or getattr(app_iter, 'tgstream_transaction', None)
                  or settings.transaction)
        return stream_response(request, response, policy, settings)

    return stream_tween
