"""A stream's life in its request: hand-over, start, end and the close sequence.

Pyramid runs finished callbacks and pops the request context before the
server iterates the body. :func:`hand_over` builds and primes the stream,
makes it the response's body and gives it a :class:`Lifecycle`: what the
stream runs when it starts, when its items are exhausted and when it is
closed -- the close sequence, in order, in :meth:`Lifecycle.close`.
"""
from __future__ import annotations

import logging
import types
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any, Callable, Iterable

from pyramid.httpexceptions import HTTPException
from pyramid.response import FileIter
from webob.static import FileIter as WebObFileIter

from ._compat import put_finished_callbacks, take_finished_callbacks
from .compress import compress_stream
from .events import Recorded, StreamFinished, TransactionOutcome, transaction_outcome
from .guard import register_stream, unregister_stream
from .renderers.encoders import Encoder, RawEncoder
from .sessions import SessionFinisher
from .settings import StreamSettings
from .stream import StreamIterator
from .transaction import StreamTransaction, resolve_policy

log = logging.getLogger('tgstream')

#: environ key for a per-view ``stream_transaction`` of a non-stream view
POLICY_KEY = 'tgstream.policy'


def hand_over(
    request,
    response,
    items: Iterable[Any],
    encoder: Encoder,
    *,
    name: str,
    policy: str | None,
    settings: StreamSettings,
    content_length: str | None = None,
    origin: Any = None,
) -> StreamIterator:
    """Build the stream of ``items``, prime it, make it ``response``'s body
    and hand it over to ``request``; return it.

    The one place both entry points (the ``stream=True`` view deriver and
    the stream tween) go through. Priming runs here, inside the view's
    tween chain: an error raised before the first item propagates (the
    view's iterable is closed) and becomes the request's error response.

    ``policy`` is the view's ``stream_transaction`` (or ``None``); the
    stream's policy is resolved from it, ``origin`` (what the view
    returned; ``items`` by default) and the settings, here, once.
    ``content_length`` is a Content-Length the view set itself on the body
    it built (the tween's case): setting ``app_iter`` drops it, so it is put
    back -- before compression decides whether the body can be gzipped.
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
    transaction = StreamTransaction.attach(
        request, resolve_policy(policy, items if origin is None else origin, settings)
    )
    session = None
    if settings.sqlalchemy_session is not None:
        session = SessionFinisher(settings.sqlalchemy_session, managed=transaction is not None)
    lifecycle = stream.lifecycle = Lifecycle(stream, response, transaction, session)
    request.add_response_callback(lifecycle.response_callback)
    request.add_finished_callback(lifecycle.finished_callback)
    # until it is closed, the execution policy guard (tgstream.guard) knows
    # the stream, and closes it if it never reaches the server
    register_stream(request.environ, stream)
    if settings.compress:
        compress_stream(request, response, stream)
    return stream


class Lifecycle:
    """What one handed-over stream runs besides delivering its items.

    In the order it happens: the request's response callback (is the stream
    still the body?) and finished callback (a safety net), :meth:`start`
    before the first item is pulled, :meth:`end` when the items are
    exhausted, and :meth:`close`, the close sequence.
    """

    def __init__(
        self,
        stream: StreamIterator,
        response,
        transaction: StreamTransaction | None,
        session: SessionFinisher | None,
    ):
        self.stream = stream
        self.response = weakref.ref(response)
        #: the pyramid_tm transaction (tgstream.transaction), if it manages the request
        self.transaction = transaction
        #: the global session (``tgstream.sqlalchemy.session``), if configured
        self.session = session
        #: the request's finished callbacks, taken off the request by the router's turn
        self.deferred: deque | None = None

    # -- in the request, after the view ---------------------------------------

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

    # -- while the server iterates --------------------------------------------

    def start(self) -> None:
        """Before the first item is pulled: the ``view`` policy's own transaction."""
        if self.transaction is not None and self.transaction.policy == 'view':
            self.transaction.begin_for_stream()

    def end(self) -> None:
        """The items are exhausted, the closing bytes not yet produced: commit.

        May raise (a failed commit): the stream then cuts the response.
        """
        if self.transaction is not None:
            self.transaction.finish()
        elif self.session is not None:
            self.session.commit()

    # -- the close sequence -----------------------------------------------------

    def close(self, stream: StreamIterator) -> TransactionOutcome:
        """Close ``stream``'s request side, in this order, and return what
        became of its transaction.

        Runs once per stream, inside the request's context, after the stream
        decided its outcome. Each step runs even if an earlier one raised
        (the error is logged).
        """
        request = stream.request
        # 1. End the source: the view's iterable is closed (GeneratorExit
        #    at its ``yield``), so its own ``finally`` runs in the transaction.
        stream.close_source()
        # 2. Decide and finish the transaction: abort whatever is still open
        #    (a completed stream committed in end()), remove the session.
        recorded = self._step(stream, self._finish_transaction, stream) or Recorded.NOT_MANAGED
        outcome = transaction_outcome(recorded)
        # 3. Run the request's finished callbacks, deferred until now.
        self._step(stream, self._run_finished_callbacks, request)
        # 4. Notify StreamFinished, with the facts of steps 1-3.
        self._step(stream, _notify_finished, request, stream, outcome)
        # 5. Release the request: the guard forgets the stream (the stream
        #    then drops request.context and holds the request weakly).
        unregister_stream(request.environ, stream)
        return outcome

    def _step(self, stream: StreamIterator, step: Callable, *args) -> Any:
        try:
            return step(*args)
        except Exception:
            log.exception('stream %s: error while closing (%s)', stream.name, step.__name__)
            return None

    def _finish_transaction(self, stream: StreamIterator) -> str:
        recorded: str = Recorded.NOT_MANAGED
        if self.transaction is not None:
            recorded = self.transaction.close()
        if self.session is not None:
            recorded = self.session.close(stream.name) or recorded
        return recorded

    def _run_finished_callbacks(self, request) -> None:
        if self.deferred is None:
            return
        callbacks = self.deferred
        callbacks.extend(take_finished_callbacks(request))
        put_finished_callbacks(request, callbacks)
        while callbacks:
            callback = callbacks.popleft()
            try:
                callback(request)
            except Exception:
                log.exception(
                    'stream %s: finished callback %r raised', self.stream.name, callback
                )


def _notify_finished(request, stream: StreamIterator, transaction: TransactionOutcome) -> None:
    request.registry.notify(StreamFinished(request, stream, transaction))


# -- responses a view built itself ----------------------------------------------


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
    request, response, policy: str | None, settings: StreamSettings,
    any_iterator: bool = False, origin: Any = None,
):
    """Prime and hand over the body of a response a view built itself
    (a generator; any lazy iterable with ``any_iterator``)."""
    if not is_streamable(response, request.environ, any_iterator):
        return response
    hand_over(
        request, response, response.app_iter, RawEncoder(response=response),
        name=getattr(request, 'path_info', ''), policy=policy, settings=settings,
        # setting app_iter drops a Content-Length the view set itself: keep it
        content_length=response.headers.get('Content-Length'),
        origin=origin,
    )
    return response
