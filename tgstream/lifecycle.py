"""Build, prime and hand a stream over to its request: :func:`hand_over`.

Pyramid runs finished callbacks and pops the request context before the
server iterates the body; the hand-over moves the request's finished
callbacks onto the stream, attaches the stream's transaction, and makes sure
a stream that never reaches the server is closed all the same.
"""
from __future__ import annotations

import logging
import weakref
from collections import deque
from typing import Any, Iterable

from ._compat import put_finished_callbacks, take_finished_callbacks
from .compress import compress_stream
from .events import StreamFinished
from .guard import register_stream, unregister_stream
from .renderers.encoders import Encoder
from .sessions import SessionFinisher
from .settings import StreamSettings
from .stream import StreamIterator
from .transaction import StreamTransaction

log = logging.getLogger('tgstream')


def hand_over(
    request,
    response,
    items: Iterable[Any],
    encoder: Encoder,
    *,
    name: str,
    policy: str,
    settings: StreamSettings,
    content_length: str | None = None,
) -> StreamIterator:
    """Build the stream of ``items``, prime it, make it ``response``'s body
    and hand it over to ``request``; return it.

    The one place both entry points (the ``stream=True`` view deriver and
    the stream tween) go through. Priming runs here, inside the view's
    tween chain: an error raised before the first item propagates (the
    view's iterable is closed) and becomes the request's error response.
    ``content_length`` is a Content-Length the view set itself on the body
    it built (the tween's case): setting ``app_iter`` drops it, so it is put
    back -- before compression decides whether the body can be gzipped.

    Order of the stream's ``on_close`` hooks: transaction, global session,
    deferred finished callbacks, :class:`~tgstream.events.StreamFinished`.
    """
    stream = StreamIterator(
        request, items, encoder, name=name,
        chunk_size=settings.chunk_size,
        flush_interval=settings.flush_interval,
    )
    stream.prime()
    response.app_iter = stream
    if content_length:
        response.headers['Content-Length'] = content_length
    holder = StreamTransaction.attach(stream, request, policy)
    if settings.sqlalchemy_session is not None:
        SessionFinisher.attach(
            stream, settings.sqlalchemy_session, managed=holder is not None
        )
    handover = _Handover(stream, response)
    request.add_response_callback(handover.response_callback)
    request.add_finished_callback(handover.finished_callback)
    stream.on_close.append(handover.run_finished_callbacks)
    stream.on_close.append(_notify_finished)
    # until it is closed, the execution policy guard (tgstream.guard) knows
    # the stream, and closes it if it never reaches the server
    register_stream(request.environ, stream)
    stream.on_close.append(_forget)
    if settings.compress:
        compress_stream(request, response, stream)
    return stream


class _Handover:
    def __init__(self, stream: StreamIterator, response):
        self.stream = stream
        self.response = weakref.ref(response)
        self.deferred: deque | None = None

    def response_callback(self, request, response) -> None:
        # Runs after every tween, just before the router returns: is the
        # response that goes to the server still ours?
        if (
            response is not self.response()
            and getattr(response, 'app_iter', None) is not self.stream
        ):
            # replaced on the way out by another response (an exception
            # view, a tween): it will never be iterated. (Our response with
            # another body -- a compression tween's wrapper -- may still
            # iterate it: the execution policy guard closes it after that
            # body, see tgstream.guard.)
            self.stream.close()
            return
        self.deferred = take_finished_callbacks(request)

    def finished_callback(self, request) -> None:
        # Safety net for an exception that escaped the tweens (response
        # callbacks did not run): the stream never reaches the server.
        if self.deferred is None:
            self.stream.close()

    def run_finished_callbacks(self, stream: StreamIterator) -> None:
        if self.deferred is None:
            return
        request = stream.request
        callbacks = self.deferred
        callbacks.extend(take_finished_callbacks(request))
        put_finished_callbacks(request, callbacks)
        while callbacks:
            callback = callbacks.popleft()
            try:
                callback(request)
            except Exception:
                log.exception(
                    'stream %s: finished callback %r raised', stream.name, callback
                )


def _forget(stream: StreamIterator) -> None:
    unregister_stream(stream.request.environ, stream)


def _notify_finished(stream: StreamIterator) -> None:
    stream.request.registry.notify(StreamFinished(stream.request, stream))
