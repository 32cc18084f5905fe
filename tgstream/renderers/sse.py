"""The ``sse`` stream renderer: server-sent events (``text/event-stream``).

Each item is one event, written at once:

- a ``str`` is the event's data, sent as it is; ``bytes`` are UTF-8 text;
- any other value is encoded as JSON by the app's JSON rules
  (:mod:`tgstream.renderers.jsonrules`: ``__json__``, adapters, rows, dates);
- a :class:`ServerSentEvent` sets ``event``, ``id``, ``retry`` and a
  ``comment`` as well;
- :data:`sse_idle` sends nothing, unless nothing was sent for
  ``tgstream.sse.keepalive`` seconds (15; the view option ``keepalive``
  overrides it, 0 turns it off): then a ``: keep-alive`` comment, so
  proxies keep the connection open and a vanished client is noticed. The
  first ``sse_idle`` of a stream sends one at once, which also sends the
  response headers.

Data with line breaks (CR, LF or CRLF) becomes several ``data:`` lines,
which the client joins back with LF: data can never start another field or
event. Responses get ``Cache-Control: no-cache`` (unless the view set one)
and ``X-Accel-Buffering: no`` (nginx must not buffer them).

A WSGI stream is pulled by the server: nothing can be written while the
view's code blocks. Wait with a timeout and yield :data:`sse_idle` meanwhile::

    @expose('sse', route_name='events', stream=True)
    def events(request):
        while True:
            try:
                message = messages.get(timeout=1.0)
            except queue.Empty:
                yield tgstream.sse_idle
                continue
            yield tgstream.ServerSentEvent(message, event='chat', id=message['id'])
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
from typing import Any

from ..items import Marker
from ..settings import get_settings
from . import BaseEncoder, JSONRulesRenderer
from .encoders import Encoder
from .jsonrules import JSONEncoding, plan_of

_LINE_BREAK = re.compile('\r\n|\r|\n')

#: The fixed event an SSE stream with ``error_marker`` sends when it fails
#: (never the exception's text).
SSE_ERROR_MARKER = b'event: error\ndata: stream failed\n\n'

KEEPALIVE_COMMENT = b': keep-alive\n\n'


class _Idle(Marker):
    __slots__ = ()
    name, public_name = 'sse_idle', 'tgstream.sse_idle'


#: Yield this from an SSE stream while waiting: a keep-alive comment goes
#: out when the stream was silent for the keep-alive interval.
sse_idle = _Idle()


def _single_line(name: str, value: str, forbidden: str) -> str:
    if any(c in value for c in forbidden):
        raise ValueError(
            'ServerSentEvent %s=%r contains a line break or NUL; an SSE field '
            'must be one line of text' % (name, value)
        )
    return value


@dataclasses.dataclass(frozen=True)
class ServerSentEvent:
    """One server-sent event.

    ``data`` is text (``str``), or any JSON-encodable value; ``None`` sends
    no data line. ``event`` (the type the client listens for), ``id`` (the
    client sends the last one back as ``Last-Event-ID`` when it reconnects)
    and ``retry`` (milliseconds before the client reconnects) are optional;
    ``comment`` is a comment line clients ignore. ``event`` and ``id`` must
    not contain CR, LF or NUL (a ``ValueError`` here), so they can never
    inject another field; ``retry`` is an int >= 0.

    Example::

        yield ServerSentEvent({'price': 42}, event='tick', id=17)
    """

    data: Any = None
    event: str | None = None
    id: str | int | None = None
    retry: int | None = None
    comment: str | None = None

    def __post_init__(self):
        if self.event is not None:
            if not isinstance(self.event, str):
                raise TypeError('ServerSentEvent event=%r is not a str' % (self.event,))
            _single_line('event', self.event, '\r\n\0')
        if self.id is not None:
            if isinstance(self.id, bool) or not isinstance(self.id, (str, int)):
                raise TypeError('ServerSentEvent id=%r is not a str or int' % (self.id,))
            _single_line('id', str(self.id), '\r\n\0')
        if self.retry is not None and (
            isinstance(self.retry, bool) or not isinstance(self.retry, int) or self.retry < 0
        ):
            raise ValueError(
                'ServerSentEvent retry=%r is not a number of milliseconds (an '
                'int >= 0)' % (self.retry,)
            )
        if self.comment is not None and not isinstance(self.comment, str):
            raise TypeError('ServerSentEvent comment=%r is not a str' % (self.comment,))


class SSEEncoder(BaseEncoder):
    """Frame items as server-sent events; every event is written at once."""

    flush_each = True

    def __init__(self, encoding: JSONEncoding, keepalive: float = 15.0,
                 error_marker: bool = False):
        self.dumps = encoding.dumps
        self.keepalive = keepalive
        self.last_output: float | None = None
        self.error_marker = error_marker

    def _text(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        if isinstance(data, (bytes, bytearray)):
            return bytes(data).decode('utf-8')
        return self.dumps(data).decode('utf-8')

    def _lines(self, item: Any) -> list[str]:
        if item.__class__ is not ServerSentEvent:
            return ['data: ' + line for line in _LINE_BREAK.split(self._text(item))]
        lines: list[str] = []
        if item.comment is not None:
            lines.extend(': ' + line for line in _LINE_BREAK.split(item.comment))
        if item.event is not None:
            lines.append('event: ' + item.event)
        if item.id is not None:
            lines.append('id: %s' % item.id)
        if item.retry is not None:
            lines.append('retry: %d' % item.retry)
        if item.data is not None:
            lines.extend('data: ' + line for line in _LINE_BREAK.split(self._text(item.data)))
        return lines

    def encode(self, item: Any) -> bytes:
        now = time.monotonic()
        if item is sse_idle:
            if self.keepalive and (
                self.last_output is None or now - self.last_output >= self.keepalive
            ):
                self.last_output = now
                return KEEPALIVE_COMMENT
            return b''
        self.last_output = now
        return ('\n'.join(self._lines(item)) + '\n\n').encode('utf-8')

    def end(self) -> bytes:
        return b''

    def error(self) -> bytes | None:
        return SSE_ERROR_MARKER if self.error_marker else None


class SSEStreamRenderer(JSONRulesRenderer):
    """``renderer='sse'``: ``text/event-stream``; options ``keepalive``
    (seconds, overrides ``tgstream.sse.keepalive``) and ``error_marker``
    (a failed stream ends with ``event: error`` / ``data: stream failed``)."""

    content_type = 'text/event-stream'
    options = frozenset({'keepalive', 'error_marker'})
    batches = False

    def __init__(self, info):
        super().__init__(info)
        keepalive = info.options.get('keepalive')
        if keepalive is not None and (
            isinstance(keepalive, bool)
            or not isinstance(keepalive, (int, float))
            or not math.isfinite(keepalive)
            or keepalive < 0
        ):
            raise self.option_error(
                'keepalive', '%r is not a number of seconds >= 0 (finite)' % (keepalive,)
            )
        self.keepalive = keepalive

    def __call__(self, value: Any, request):
        headers = request.response.headers
        if 'Cache-Control' not in headers:
            headers['Cache-Control'] = 'no-cache'
        headers['X-Accel-Buffering'] = 'no'
        return super().__call__(value, request)

    def encoder(self, request) -> Encoder:
        keepalive = self.keepalive
        if keepalive is None:
            keepalive = get_settings(request.registry).sse_keepalive
        return SSEEncoder(
            JSONEncoding(request, plan=plan_of(self, request, one_line=True)), keepalive,
            self.error_marker
        )


def includeme(config) -> None:
    config.add_stream_renderer('sse', SSEStreamRenderer)
