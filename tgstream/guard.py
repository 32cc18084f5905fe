"""Close every stream that does not reach the server, before the thread moves on.

tgstream hands a primed stream to the response in a response callback, but
Pyramid's router can still fail after that, outside every tween: a later
response callback or a ``NewResponse`` subscriber raising, or the server's
``start_response`` rejecting a header value (a CR or LF copied from user
input). The stream is then never iterated nor closed, and its transaction
would stay open -- row locks and a pool connection held -- until a cyclic
garbage collection.

Pyramid's router does ``response = execution_policy(environ, router)`` and
then ``return response(environ, start_response)``. :func:`guard_policy`
wraps the application's execution policy (pyramid_retry's, or the default):
it sees exceptions raised inside the request, and returns a WSGI callable
that guards the ``start_response`` call and the body's ``close()``. On every
path where a stream does not reach the server it is closed there, with
outcome ``error`` (transaction aborted, finished callbacks and
:class:`~tgstream.events.StreamFinished` run).

A body that wraps the stream (a compression tween's ``response.app_iter =
gzip(response.app_iter)``) is passed to the server as it is; the stream is
closed after that body was closed, so it is never closed while a wrapper
still iterates it.
"""
from __future__ import annotations

import logging
import traceback
from typing import Any, Callable, Iterable

from ._compat import execution_policy, register_execution_policy

log = logging.getLogger('tgstream')

#: environ key: the streams handed to the responses of this environ (one per
#: attempt with pyramid_retry); a stream removes itself when it is closed.
STREAMS_KEY = 'tgstream.streams'


def register_stream(environ: dict, stream) -> None:
    """Record ``stream`` as handed over in ``environ`` (see :func:`guard_policy`)."""
    environ.setdefault(STREAMS_KEY, []).append(stream)


def unregister_stream(environ: dict, stream) -> None:
    """Forget ``stream`` (it was closed); breaks the environ -> stream reference."""
    streams = environ.get(STREAMS_KEY)
    if streams is not None:
        try:
            streams.remove(stream)
        except ValueError:
            pass
        if not streams:
            environ.pop(STREAMS_KEY, None)


def _open_streams(environ: dict) -> list:
    return list(environ.get(STREAMS_KEY, ()))


def abandon_streams(environ: dict, exc: BaseException | None, where: str) -> None:
    """Close every stream of ``environ`` still open: it will not be sent.

    With ``exc`` the outcome is ``error`` (the failure is recorded on the
    stream); without, the stream is closed as it is (``aborted`` if it was
    never iterated, ``completed`` if a wrapper consumed it whole).
    """
    for stream in _open_streams(environ):
        if stream.closed:
            continue
        if exc is not None:
            stream.abandon(exc, where)
        else:
            stream.close()


class _GuardedBody:
    """The body the server gets when the stream is not the body itself.

    Iteration goes straight to the body's own iterator (no per-chunk cost);
    ``close()`` closes the body, then every stream still open.
    """

    def __init__(self, body: Iterable[bytes], environ: dict):
        self.body = body
        self.environ: dict | None = environ

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, 'close', None)
            if close is not None:
                close()
        finally:
            environ, self.environ = self.environ, None
            if environ is not None:
                abandon_streams(environ, None, 'after the response body was closed')


class _GuardedResponse:
    """Call the response as a WSGI application; close its streams if that fails."""

    def __init__(self, response: Callable, environ: dict):
        self.response: Callable | None = response
        self.environ = environ

    def __call__(self, environ, start_response):
        response, self.response = self.response, None
        assert response is not None, 'a response is called once'
        try:
            body = response(environ, start_response)
        except BaseException as exc:
            # start_response rejected the status or a header value. The
            # frames below are finished; their locals (the response, hence
            # the stream, which records exc) would make a reference cycle.
            response = None
            if exc.__traceback__ is not None:
                traceback.clear_frames(exc.__traceback__.tb_next)
            abandon_streams(self.environ, exc, 'while the response started')
            raise
        streams = self.environ.get(STREAMS_KEY)
        if not streams or (len(streams) == 1 and body is streams[0]):
            # the stream is the body: the server closes it
            return body
        return _GuardedBody(body, self.environ)


def guard_policy(policy: Callable) -> Callable:
    """Wrap an execution policy so no handed-over stream is left unclosed."""

    def tgstream_execution_policy(environ, router):
        try:
            response = policy(environ, router)
        except BaseException as exc:
            abandon_streams(environ, exc, 'after the view returned')
            raise
        if not environ.get(STREAMS_KEY):
            return response
        return _GuardedResponse(response, environ)

    tgstream_execution_policy.wrapped = policy  # type: ignore[attr-defined]
    return tgstream_execution_policy


def includeme(config) -> None:
    """Register :func:`guard_policy` around the application's execution policy.

    Registered late (order 20, after ``config.set_execution_policy`` calls
    such as pyramid_retry's), so it wraps whatever the application set.
    """

    def register():
        registry = config.registry
        current: Any = execution_policy(registry)
        if getattr(current, 'wrapped', None) is not None and (
            current.__name__ == 'tgstream_execution_policy'
        ):
            return
        register_execution_policy(registry, guard_policy(current))

    config.action(('tgstream', 'execution policy'), register, order=20)
