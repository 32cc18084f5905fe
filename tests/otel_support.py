"""The real OpenTelemetry SDK for the tests: in-memory spans and metrics.

The global providers can be set once per process: :func:`sdk` sets them
the first time and returns them; each test clears the spans and reads the
metric points it needs (cumulative), relative to where they were.
"""
from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_SDK: dict[str, Any] = {}


class SDK:
    def __init__(self):
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, name: str | None = None) -> list:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def points(self, metric: str) -> dict[frozenset, Any]:
        """``{attributes: point}`` of ``metric`` now (cumulative)."""
        data = self.reader.get_metrics_data()
        found: dict[frozenset, Any] = {}
        for resource in (data.resource_metrics if data else ()):
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        for point in m.data.data_points:
                            found[frozenset(point.attributes.items())] = point
        return found

    def total(self, metric: str, **match: Any) -> float:
        """Sum of a counter's values (or a histogram's counts) over the points
        whose attributes include ``match``."""
        total = 0.0
        for attributes, point in self.points(metric).items():
            if set(match.items()) <= attributes:
                total += getattr(point, 'value', None) if hasattr(point, 'value') else point.count
        return total


def sdk() -> SDK:
    if 'sdk' not in _SDK:
        s = SDK()
        trace.set_tracer_provider(s.tracer_provider)
        metrics.set_meter_provider(s.meter_provider)
        _SDK['sdk'] = s
    s = _SDK['sdk']
    s.exporter.clear()
    return s


def build_traced_app(setup=None, settings=None, includes=('tgstream',), how='config'):
    """A Pyramid app instrumented the documented ways: ``how='config'``
    (``PyramidInstrumentor.instrument_config(config)`` before the includes)
    or ``'instrument'`` (``PyramidInstrumentor().instrument()`` before the
    Configurator is made); ``'otel'`` in ``includes`` places
    ``instrument_config`` among them."""
    from opentelemetry.instrumentation.pyramid import PyramidInstrumentor
    from pyramid.config import Configurator

    instrumentor = PyramidInstrumentor()
    if how == 'instrument':
        instrumentor.instrument()
    try:
        with Configurator(settings=dict(settings or {})) as config:
            if how == 'config' and 'otel' not in includes:
                PyramidInstrumentor.instrument_config(config)
            for name in includes:
                if name == 'otel':
                    PyramidInstrumentor.instrument_config(config)
                else:
                    config.include(name)
            if setup is not None:
                setup(config)
            return config.make_wsgi_app()
    finally:
        if how == 'instrument':
            instrumentor.uninstrument()


def server_span(spans, route):
    """The one server span named ``route`` in ``spans``."""
    found = [s for s in spans if s.name == route and s.kind == trace.SpanKind.SERVER]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]
