"""OpenTelemetry for streams: spans and metrics that cover the whole stream.

``config.include('tgstream')`` includes this; it does nothing (and imports
nothing of OpenTelemetry) unless ``opentelemetry-api`` is installed, and
nothing with ``tgstream.otel = false``. With it (``pip install
tgstream[otel]``):

- **Stream metrics** (:mod:`tgstream.otel.metrics`), through OpenTelemetry's
  metrics API: ``tgstream.server.active_streams`` (open streams),
  ``tgstream.server.stream.duration`` (its count by ``tgstream.outcome`` is
  the outcomes) and ``tgstream.server.stream.body.size`` (bytes). Without a ``MeterProvider`` they are
  OpenTelemetry's no-ops.
- **The server span of OpenTelemetry's Pyramid instrumentation**
  (:mod:`tgstream.otel.spans`), when the app is instrumented (either
  documented way, tgstream included in any order): for a streamed response
  the span ends, ``http.server.duration`` / ``http.server.request.duration``
  are recorded and ``http.server.active_requests`` is decremented when the
  stream ends -- not when the view returns. The span gets
  ``tgstream.outcome``, ``tgstream.transaction``, ``tgstream.items``,
  ``tgstream.bytes`` and ``tgstream.time_to_first_byte``; a stream that
  fails has status ERROR with the exception recorded. The trace context is
  current in every step of the stream (SQL run by the generator is a child
  of the request's span). Non-stream requests are recorded exactly as
  without tgstream.
- **Live streams** (:mod:`tgstream.otel.live`): open listeners per channel
  and the delivery latency from commit, through :func:`live_metrics`.

See docs/observability.rst.
"""
from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from ..settings import as_bool

#: registry key of the :class:`tgstream.otel.live.LiveMetrics` of an app
LIVE_METRICS_KEY = 'tgstream.otel.live'


def otel_available() -> bool:
    """Is OpenTelemetry's API installed? (Looked up, not imported.)"""
    try:
        return find_spec('opentelemetry') is not None and find_spec(
            'opentelemetry.metrics'
        ) is not None
    except (ImportError, ValueError):  # pragma: no cover - a broken install
        return False


def instrumentation_available() -> bool:
    """Is ``opentelemetry-instrumentation-pyramid`` installed?"""
    try:
        return find_spec('opentelemetry.instrumentation.pyramid') is not None
    except (ImportError, ValueError):
        return False


def includeme(config: Any) -> None:
    """Stream metrics, and the Pyramid instrumentation's server span held
    open until a stream ends (see the module docstring)."""
    settings = config.get_settings()
    if not as_bool('tgstream.otel', settings.get('tgstream.otel', True)):
        return
    if not otel_available():
        return
    config.include('.metrics')
    config.include('.live')
    if instrumentation_available():
        config.include('.spans')


def live_metrics(registry: Any) -> Any:
    """The live streams' metrics hook of an app
    (:class:`tgstream.otel.live.LiveMetrics`), or ``None`` without
    OpenTelemetry: ``listener_opened(channel)``,
    ``listener_closed(channel)``, ``delivered(channel, committed_at)``."""
    return registry.get(LIVE_METRICS_KEY) if registry is not None else None
