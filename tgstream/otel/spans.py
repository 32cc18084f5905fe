"""The Pyramid instrumentation's server span and request metrics, held open
until a stream ends.

``opentelemetry-instrumentation-pyramid``'s tween ends the server span,
records the request duration and decrements ``http.server.active_requests``
when the view returns -- before a streamed body exists. For a request whose
response is a stream still open at that moment, tgstream

- wraps the activation the instrumentation keeps in the environ (at
  ``ContextFound``, after its ``BeforeTraversal`` subscriber made it): its
  exit detaches the span's context as before but leaves the span open;
- holds the duration and active-requests calls the tween makes while the
  request's span is current (its instruments are wrapped once, when the app
  is made) and makes them when the stream ends: the same instruments and
  attributes, the duration extended by the time the stream took;
- makes the request's trace context current around every step of the
  stream (:data:`tgstream.context.STEP_HOOK_KEY`);
- at :class:`~tgstream.events.StreamFinished`, sets the ``tgstream.*``
  attributes (and ERROR with the exception for a failed stream), ends the
  span and makes the held metric calls.

A request without an open stream at that moment (every non-stream request)
goes through the instrumentation's own code unchanged.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pyramid.events import ContextFound

from .._compat import (
    OTEL_ACTIVATION_KEY,
    OTEL_REQUEST_INSTRUMENTS,
    OTEL_SPAN_KEY,
    OTEL_STARTTIME_KEY,
    OTEL_TWEEN,
    otel_context_var,
    otel_request_instruments,
    otel_span_end_deferred,
    wrap_tween_factory,
)
from ..context import STEP_HOOK_KEY
from ..events import Outcome, StreamFinished
from ..guard import STREAMS_KEY

#: span attributes (public names)
ATTR_OUTCOME = 'tgstream.outcome'
ATTR_TRANSACTION = 'tgstream.transaction'
ATTR_ITEMS = 'tgstream.items'
ATTR_BYTES = 'tgstream.bytes'
ATTR_TTFB = 'tgstream.time_to_first_byte'
ATTR_ERROR_TYPE = 'error.type'

#: environ key: the :class:`HeldSpan` of a traced request
STATE_KEY = 'tgstream.otel.span'

# server span -> its request's HeldSpan, from ContextFound until the
# instrumentation's tween exits the activation
_requests: dict[Any, 'HeldSpan'] = {}


class HeldSpan:
    """One traced request: the instrumentation's activation, wrapped."""

    def __init__(self, environ: dict, span: Any, activation: Any, context: Any):
        self.environ = environ
        self.span = span
        self.activation = activation
        #: the context the stream's steps run in (the span current)
        self.context = context
        self.stream: Any = None
        self.held: list[tuple[Callable, Any, Any, str]] = []
        self.returned_at: float | None = None
        self.first_byte_ns: int | None = None
        self.exited = False
        self.ended = False

    # -- while the instrumentation's tween finishes ------------------------

    def streaming(self) -> bool:
        """Is a stream of this request open (to be waited for)?"""
        if self.ended:
            return False
        if self.stream is None:
            for stream in self.environ.get(STREAMS_KEY, ()):
                if not stream.closed:
                    self.stream = stream
                    break
            else:
                return False
        return not self.stream.closed

    def hold(self, call: Callable, amount: Any, attributes: Any, unit: str) -> None:
        if self.returned_at is None:
            self.returned_at = time.perf_counter()
        self.held.append((call, amount, attributes, unit))

    def __enter__(self) -> Any:  # pragma: no cover - entered before wrapping
        return self.activation.__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        _requests.pop(self.span, None)
        if not self.streaming():
            return self.activation.__exit__(*exc_info)
        if self.returned_at is None:
            self.returned_at = time.perf_counter()
        with otel_span_end_deferred(self.span):
            self.activation.__exit__(*exc_info)
        self.exited = True
        return False

    # -- every step of the stream (tgstream.context) -----------------------

    def enter(self) -> Any:
        return _attach(self.context)

    def exit(self, token: Any) -> None:
        _detach(token)
        if self.first_byte_ns is None and self.stream is not None and self.stream.bytes_sent:
            self.first_byte_ns = time.time_ns()

    # -- the stream ended --------------------------------------------------

    def finish(self, event: StreamFinished) -> None:
        if self.ended:
            return
        self.ended = True
        _requests.pop(self.span, None)
        span = self.span
        if span.is_recording():
            attributes: dict[str, Any] = {
                ATTR_OUTCOME: str(event.outcome),
                ATTR_TRANSACTION: str(event.transaction),
                ATTR_ITEMS: event.items,
                ATTR_BYTES: event.bytes,
            }
            started = self.environ.get(OTEL_STARTTIME_KEY)
            if self.first_byte_ns is not None and started is not None:
                attributes[ATTR_TTFB] = (self.first_byte_ns - started) / 1e9
            exc = event.exception
            if event.outcome == Outcome.ERROR and exc is not None:
                attributes[ATTR_ERROR_TYPE] = type(exc).__qualname__
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, '%s: %s' % (type(exc).__name__, exc)))
            span.set_attributes(attributes)
        if self.exited:
            span.end()
        self.release()

    def release(self) -> None:
        held, self.held = self.held, []
        extra = time.perf_counter() - self.returned_at if self.returned_at else 0.0
        for call, amount, attributes, unit in held:
            if unit == 's':
                amount = max(amount + extra, 0)
            elif unit == 'ms':
                amount = max(round(amount + extra * 1000), 0)
            call(amount, attributes)


def _context_calls() -> tuple[Callable, Callable]:
    # OpenTelemetry's attach/detach, or the ContextVar they set (same effect)
    var = otel_context_var()
    if var is None:
        return otel_context.attach, otel_context.detach

    def detach(token: Any) -> None:
        try:
            var.reset(token)
        except ValueError:
            # a token of another thread's context: what detach() logs
            log.exception('Failed to detach context')

    return var.set, detach


_attach, _detach = _context_calls()
log = logging.getLogger('tgstream')


def _held_call(call: Callable, unit: str) -> Callable:
    # The instrument's record/add: held while a streaming request's span is
    # current (the instrumentation's tween finishing), else called as is.
    def held_call(amount, attributes=None, *args, **kwargs):
        state = _requests.get(trace.get_current_span())
        if state is not None and state.streaming():
            state.hold(call, amount, attributes, unit)
            return None
        return call(amount, attributes, *args, **kwargs)

    held_call.tgstream_held = True  # type: ignore[attr-defined]
    return held_call


def hold_request_metrics(instruments: dict[str, Any]) -> None:
    """Wrap the instrumentation's request instruments (once each)."""
    for name, instrument in instruments.items():
        method = 'add' if name == 'active_requests_counter' else 'record'
        call = getattr(instrument, method)
        if getattr(call, 'tgstream_held', False):
            continue
        setattr(instrument, method, _held_call(call, OTEL_REQUEST_INSTRUMENTS[name]))


def _wrap_factory(factory: Callable) -> Callable:
    def tween_factory(handler: Callable, registry: Any) -> Callable:
        tween = factory(handler, registry)
        hold_request_metrics(otel_request_instruments(tween))
        return tween

    return tween_factory


def context_found(event: Any) -> None:
    """Wrap the activation of a traced request (see the module docstring)."""
    environ = event.request.environ
    activation = environ.get(OTEL_ACTIVATION_KEY)
    if activation is None or isinstance(activation, HeldSpan):
        return
    span = environ.get(OTEL_SPAN_KEY)
    if span is None:
        return
    state = HeldSpan(environ, span, activation, otel_context.get_current())
    environ[OTEL_ACTIVATION_KEY] = state
    environ[STATE_KEY] = state
    environ[STEP_HOOK_KEY] = state
    _requests[span] = state


def stream_finished(event: StreamFinished) -> None:
    state = event.request.environ.get(STATE_KEY)
    if state is not None and state.stream in (None, event.stream):
        state.finish(event)


def includeme(config: Any) -> None:
    """Hold the instrumentation's span and metrics of streamed requests."""
    config.add_subscriber(context_found, ContextFound)
    config.add_subscriber(stream_finished, StreamFinished)
    registry = config.registry
    # after every tween is registered (default order 0), before the app
    config.action(
        ('tgstream', 'otel tween'),
        lambda: wrap_tween_factory(registry, OTEL_TWEEN, _wrap_factory),
        order=10,
    )
