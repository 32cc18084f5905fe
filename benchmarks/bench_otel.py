"""What tgstream's OpenTelemetry integration costs per streamed item.

Two copies of one app, both instrumented with OpenTelemetry's Pyramid
instrumentation (``PyramidInstrumentor.instrument_config``) on the real SDK
(a ``TracerProvider``, every span sampled and recorded; a
``MeterProvider`` with an in-memory reader): one with
``tgstream.otel = false`` (the instrumentation's own behaviour), one with
the integration (the span and request metrics held until the stream ends,
the trace context attached around every step, the stream metrics). A
stream view yields ``--items`` short lines:

- ``coalesced``: yielded as fast as they come (tgstream joins them into
  writes of ``tgstream.chunk_size``);
- ``per step``: each followed by ``tgstream.flush`` -- one ``next()`` of
  the server per item, the worst case for the per-step context hook.

Called in process as raw WSGI apps; paired blocks alternating (order
swapped every pair), thread CPU time, garbage collector run between blocks;
the figure is the median of the per-pair ratios (``bench_overhead.py``'s
method). ``--same`` compares two copies of the first app (the noise floor).

Usage::

    python benchmarks/bench_otel.py            # writes RESULTS.md
    python benchmarks/bench_otel.py --quick    # writes nothing
"""
from __future__ import annotations

import argparse
import datetime
import gc
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_overhead import ENVIRON, machine, quartiles, write_section  # noqa: E402

SECTION = 'otel'
MODES = ('coalesced', 'per step')
#: items of the short stream (the per-request cost)
SHORT = 10


def setup_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def make_app(integration: bool, items: int):
    from opentelemetry.instrumentation.pyramid import PyramidInstrumentor
    from pyramid.config import Configurator

    import tgstream

    def coalesced(request):
        for n in range(items):
            yield 'item %d\n' % n

    def per_step(request):
        for n in range(items):
            yield 'item %d\n' % n
            yield tgstream.flush

    settings = {'tgstream.otel': 'true' if integration else 'false'}
    with Configurator(settings=settings) as config:
        PyramidInstrumentor.instrument_config(config)
        config.include('tgstream')
        config.add_route('coalesced', '/coalesced')
        config.add_view(coalesced, route_name='coalesced', stream=True)
        config.add_route('per step', '/step')
        config.add_view(per_step, route_name='per step', stream=True)
        return config.make_wsgi_app()


def run_block(app, path: str, requests: int, expected: bytes) -> float:
    """Microseconds per request for ``requests`` requests, each body read
    and closed as a server does."""
    def start_response(status, headers, exc_info=None):
        pass

    environ = dict(ENVIRON, PATH_INFO=path, HTTP_ACCEPT='*/*')
    started = time.thread_time()
    for _ in range(requests):
        body = app(dict(environ), start_response)
        data = b''.join(body)
        body.close()
    elapsed = time.thread_time() - started
    if data != expected:
        raise AssertionError('unexpected body for %s' % path)
    return elapsed / requests * 1e6


def measure(mode: str, args) -> dict[str, list[float]]:
    """Per pair: µs per request of each app with ``SHORT`` items and with
    ``--items`` items. The per-item cost is the slope between the two (what
    a request costs per item more), so the per-request costs (the span, the
    metric points) do not count in it; they are reported apart."""
    path = '/coalesced' if mode == 'coalesced' else '/step'
    apps = {
        (kind, size): make_app(kind == 'with' and not args.same, size)
        for kind in ('without', 'with') for size in (SHORT, args.items)
    }
    expected = {size: b''.join(b'item %d\n' % n for n in range(size))
                for size in (SHORT, args.items)}
    blocks = list(apps)
    for key in blocks:  # warm up
        run_block(apps[key], path, args.requests, expected[key[1]])
    times: dict[tuple, list[float]] = {key: [] for key in blocks}
    gc.collect()
    gc.disable()
    try:
        for index in range(args.pairs):
            order = blocks if index % 2 == 0 else blocks[::-1]
            for key in order:
                requests = args.requests * (10 if key[1] == SHORT else 1)
                times[key].append(run_block(apps[key], path, requests, expected[key[1]]))
            gc.collect()
    finally:
        gc.enable()
    per_item = {
        kind: [(long - short) / (args.items - SHORT)
               for short, long in zip(times[(kind, SHORT)], times[(kind, args.items)])]
        for kind in ('without', 'with')
    }
    return {
        'request without': times[('without', SHORT)],
        'request with': times[('with', SHORT)],
        'item without': per_item['without'],
        'item with': per_item['with'],
    }


def report(results: dict, command: str, seconds: float, args) -> str:
    lines = [
        '## OpenTelemetry integration: cost per streamed item (issue 26)',
        '',
        'Command: `%s`  ' % command,
        'Date: %s; took %.0f s  ' % (datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), seconds),
        'Machine: %s' % machine(),
        '',
        'Both apps instrumented with OpenTelemetry\'s Pyramid instrumentation on the real '
        'SDK (every span recorded, an in-memory metric reader); %s. %d pairs, each a block '
        'of %d requests of %d items and a block of %d requests of %d items per app, order '
        'swapped every pair, thread CPU time. µs/item is the slope between the two sizes '
        '(per-request costs excluded); µs/request is measured with %d items.'
        % ('A/A: two copies of the app without the integration' if args.same
           else '`tgstream.otel = false` vs the integration', args.pairs,
           args.requests * 10, SHORT, args.requests, args.items, SHORT),
        '',
        '| stream | µs/item without | µs/item with | added µs/item, median (quartiles) '
        '| µs/request without | µs/request with | added µs/request, median (quartiles) |',
        '|---|---:|---:|---:|---:|---:|---:|',
    ]
    for mode, r in results.items():
        item = [b - a for a, b in zip(r['item without'], r['item with'])]
        request = [b - a for a, b in zip(r['request without'], r['request with'])]
        row = '| %s | %.3f | %.3f | %+.3f (%+.3f to %+.3f) | %.1f | %.1f | %+.1f (%+.1f to %+.1f) |'
        lines.append(row % (
            mode, statistics.median(r['item without']), statistics.median(r['item with']),
            statistics.median(item), *quartiles(item),
            statistics.median(r['request without']), statistics.median(r['request with']),
            statistics.median(request), *quartiles(request)))
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--pairs', type=int, default=30)
    parser.add_argument('--requests', type=int, default=10)
    parser.add_argument('--items', type=int, default=2000)
    parser.add_argument('--quick', action='store_true', help='8 pairs; writes nothing')
    parser.add_argument('--same', action='store_true', help='A/A: the noise floor')
    parser.add_argument('--output', default=os.path.join(HERE, 'RESULTS.md'))
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs = 8
    setup_sdk()
    started = time.monotonic()
    results = {mode: measure(mode, args) for mode in MODES}
    command = 'python benchmarks/bench_otel.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    text = report(results, command.strip(), time.monotonic() - started, args)
    print(text)
    if not args.quick and not args.same:
        write_section(args.output, text, SECTION)
    return 0


if __name__ == '__main__':
    sys.exit(main())
