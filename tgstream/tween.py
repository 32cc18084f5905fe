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
whatever lazy iterable its body is. ``tgstream.detect_generators = false``
turns the detection off. The hand-over itself is :mod:`tgstream.lifecycle`'s.
"""
from __future__ import annotations

from .lifecycle import POLICY_KEY, is_streamable, stream_response
from .settings import get_settings
from .stream import StreamIterator

__all__ = ['POLICY_KEY', 'is_streamable', 'stream_response', 'stream_tween_factory']


def stream_tween_factory(handler, registry):
    """Detect and run generator responses (see the module docstring).

    With ``tgstream.detect_generators = false`` there is no tween: the
    factory returns ``handler`` itself, and only ``stream=True`` views
    stream.
    """
    settings = get_settings(registry)
    if not settings.detect_generators:
        return handler

    def stream_tween(request):
        response = handler(request)
        # The fast path, one check: a list body (every renderer's, every
        # ``Response(body=...)``).
        app_iter = getattr(response, 'app_iter', None)
        if app_iter.__class__ is list or isinstance(app_iter, StreamIterator):
            return response
        return stream_response(request, response, request.environ.get(POLICY_KEY), settings)

    return stream_tween
