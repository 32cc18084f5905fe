"""Stream metrics for operators, through OpenTelemetry's metrics API.

Named like OpenTelemetry's HTTP server metrics (``http.server.*``) and the
long-lived connections of its semantic conventions
(``signalr.server.active_connections``, ``*.connection.duration``):

``tgstream.server.active_streams`` (UpDownCounter, ``{stream}``)
    streams handed to the server and not yet ended; attributes
    ``http.request.method``, ``http.route``.
``tgstream.server.stream.duration`` (Histogram, ``s``)
    from the stream's creation in the view to its end; attributes as above
    plus ``tgstream.outcome`` and ``tgstream.transaction`` -- its count by
    outcome is the outcomes.
``tgstream.server.stream.body.size`` (Histogram, ``By``)
    bytes handed to the server per stream.

(Items per stream are on the span, ``tgstream.items``: every metric point
costs each stream a few microseconds of the SDK's time.)
"""
from __future__ import annotations

from typing import Any

from opentelemetry import metrics
from pyramid.events import NewResponse

from ..events import StreamFinished
from ..guard import STREAMS_KEY

ATTR_OUTCOME = 'tgstream.outcome'
ATTR_TRANSACTION = 'tgstream.transaction'
ATTR_METHOD = 'http.request.method'
ATTR_ROUTE = 'http.route'

ACTIVE_STREAMS = 'tgstream.server.active_streams'
STREAM_DURATION = 'tgstream.server.stream.duration'
STREAM_BODY_SIZE = 'tgstream.server.stream.body.size'

#: streams last from milliseconds to hours
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
    600, 1800, 3600,
)
SIZE_BUCKETS = tuple(float(1 << shift) for shift in range(10, 34, 2))  # 1 KiB .. 8 GiB

#: the methods of RFC 9110 and PATCH; any other is ``_OTHER`` (semantic conventions)
KNOWN_METHODS = frozenset(
    ('CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE')
)

#: environ key: the streams of this environ counted as active, and their attributes
_COUNTED_KEY = 'tgstream.otel.counted'


def request_attributes(request: Any) -> dict[str, str]:
    """``http.request.method`` and ``http.route`` (the matched route's
    pattern, if any) of ``request``."""
    method = getattr(request, 'method', '') or ''
    attributes = {ATTR_METHOD: method if method in KNOWN_METHODS else '_OTHER'}
    route = getattr(request, 'matched_route', None)
    if route is not None:
        attributes[ATTR_ROUTE] = route.pattern
    return attributes


class StreamMetrics:
    """The instruments, and the two events that feed them."""

    def __init__(self, meter: Any):
        self.active = meter.create_up_down_counter(
            ACTIVE_STREAMS, unit='{stream}',
            description='Number of streamed responses being sent.',
        )
        self.duration = meter.create_histogram(
            STREAM_DURATION, unit='s',
            description='Duration of streamed responses, from the view to their end.',
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.size = meter.create_histogram(
            STREAM_BODY_SIZE, unit='By',
            description='Size of streamed response bodies.',
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )

    def new_response(self, event: Any) -> None:
        # After every tween and response callback: the streams of this
        # environ still open are going to the server.
        environ = event.request.environ
        streams = environ.get(STREAMS_KEY)
        if not streams:
            return
        counted = environ.setdefault(_COUNTED_KEY, {})
        for stream in streams:
            if not stream.closed and stream not in counted:
                attributes = request_attributes(event.request)
                counted[stream] = attributes
                self.active.add(1, attributes)

    def stream_finished(self, event: StreamFinished) -> None:
        counted = event.request.environ.get(_COUNTED_KEY) or {}
        attributes = counted.pop(event.stream, None)
        if attributes is not None:
            self.active.add(-1, attributes)
        else:
            attributes = request_attributes(event.request)
        attributes = {
            **attributes,
            ATTR_OUTCOME: str(event.outcome),
            ATTR_TRANSACTION: str(event.transaction),
        }
        self.duration.record(event.duration, attributes)
        self.size.record(event.bytes, attributes)


def includeme(config: Any) -> None:
    """Record the stream metrics of this app (a meter named ``tgstream``)."""
    stream_metrics = StreamMetrics(metrics.get_meter('tgstream'))
    config.add_subscriber(stream_metrics.new_response, NewResponse)
    config.add_subscriber(stream_metrics.stream_finished, StreamFinished)
