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
    return elapsed


def measure(mode: str, pairs: int, requests: int, items: int, same: bool) -> tuple[list, list]:
    path = '/coalesced' if mode == 'coalesced' else '/step'
    expected = b''.join(b'item %d\n' % n for n in range(items))
    without, with_ = make_app(False, items), make_app(not same, items)
    for app in (without, with_):
        run_block(app, path, requests, expected)
    a, b = [], []
    gc.collect()
    gc.disable()
    try:
        for index in range(pairs):
            order = ((without, a), (with_, b))
            for app, results in order if index % 2 == 0 else reversed(order):
                results.append(run_block(app, path, requests, expected) / (requests * items) * 1e6)
            gc.collect()
    finally:
        gc.enable()
    return a, b


def report(results: dict, command: str, seconds: float, args) -> str:
    lines = [
        '## OpenTelemetry integration: cost per streamed item (issue 26)',
        '',
        'Command: `%s`  ' % command,
        'Date: %s; took %.0f s  ' % (datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), seconds),
        'Machine: %s' % machine(),
        '',
        'Both apps instrumented with OpenTelemetry\'s Pyramid instrumentation on the real '
        'SDK (every span recorded, an in-memory metric reader); %s. %d paired blocks of %d '
        'requests of %d items, alternating, thread CPU time.'
        % ('A/A: two copies of the app without the integration' if args.same
           else '`tgstream.otel = false` vs the integration', args.pairs, args.requests,
           args.items),
        '',
        '| stream | µs/item without | µs/item with | ratio per pair, median | quartiles | µs/request added |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    for mode, (a, b) in results.items():
        ratios = [y / x for x, y in zip(a, b)]
        q1, q3 = quartiles(ratios)
        added = statistics.median(y - x for x, y in zip(a, b)) * args.items
        lines.append('| %s | %.3f | %.3f | %.4f | %.4f–%.4f | %+.1f |' % (
            mode, statistics.median(a), statistics.median(b), statistics.median(ratios),
            q1, q3, added))
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--pairs', type=int, default=40)
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
    results = {mode: measure(mode, args.pairs, args.requests, args.items, args.same)
               for mode in MODES}
    command = 'python benchmarks/bench_otel.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    text = report(results, command.strip(), time.monotonic() - started, args)
    print(text)
    if not args.quick and not args.same:
        write_section(args.output, text, SECTION)
    return 0


if __name__ == '__main__':
    sys.exit(main())
