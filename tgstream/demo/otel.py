"""``demo.otel_console = true``: the demo prints its spans to the console.

One line per span on stderr -- the request's server span (with tgstream's
``tgstream.*`` attributes: it ends when the stream does) and, with
``opentelemetry-instrumentation-sqlalchemy`` installed, the SQL it ran,
indented under it. Needs ``pip install tgstream[otel]``.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def span_line(span: Any) -> str:
    """``name 12.3 ms STATUS key=value ...`` (the tgstream and HTTP status
    attributes) for a finished span; children are indented."""
    attributes = span.attributes or {}
    shown = ' '.join(
        '%s=%s' % (key, value) for key, value in attributes.items()
        if key.startswith('tgstream.') or key in ('http.status_code', 'error.type')
    )
    indent = '  ' if span.parent is not None else ''
    return '%s%s %.1f ms %s %s\n' % (
        indent, span.name, (span.end_time - span.start_time) / 1e6,
        span.status.status_code.name, shown,
    )


def print_spans(config: Any, out: Any = None) -> None:
    """Instrument the app (``PyramidInstrumentor.instrument_config``) and
    print every span to ``out`` (stderr). Call it before the database
    engine exists; the engine is instrumented when the app is made."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.pyramid import PyramidInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(
        ConsoleSpanExporter(out=out or sys.stderr, formatter=span_line)
    ))
    PyramidInstrumentor.instrument_config(config)


def instrument_engine(engine: Any) -> None:
    """SQL spans of ``engine``, if opentelemetry-instrumentation-sqlalchemy
    is installed (``skip_dep_check``: 0.66b1 declares SQLAlchemy < 2.1)."""
    try:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    except ImportError:
        log.info('demo.otel_console: no SQL spans without '
                 'opentelemetry-instrumentation-sqlalchemy')
        return
    SQLAlchemyInstrumentor().instrument(engine=engine, skip_dep_check=True)
