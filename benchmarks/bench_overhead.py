"""What tgstream costs a request that does not stream.

Two apps with the Pyramid cookiecutter's wiring -- pyramid_jinja2,
pyramid_tm with ``tm.manager_hook = pyramid_tm.explicit_manager``,
pyramid_retry, a lazy ``request.dbsession`` joined to ``request.tm`` (never
touched here) -- and one ``renderer='json'`` view; the second app also has
``config.include('tgstream')``. Both are called in process as raw WSGI apps
(no server, no WebTest), so that what is measured is the request itself.

The machine is noisy (shared cores, frequency changes): blocks are timed
with the thread's CPU time by default (``--clock wall`` for wall time), so
time spent descheduled does not count, and the apps run in
paired blocks of ``--requests`` requests each, alternating, the order
swapped every pair, and the overhead is the median of the per-pair
differences and ratios, reported with the spread of the pairs. Each block
checks the status and body of its last response.

Usage (from a checkout with the testing extra installed)::

    python benchmarks/bench_overhead.py              # 100 pairs of 1 000 requests, writes RESULTS.md
    python benchmarks/bench_overhead.py --quick      # 20 pairs, writes nothing
    python benchmarks/bench_overhead.py --pairs 200 --requests 2000
    python benchmarks/bench_overhead.py --same       # A/A: the noise floor

Target (issue 13): overhead <= 1 % and <= 0.5 us per request. Not part of
the test suite; timings depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import io
import os
import platform
import re
import statistics
import sys
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
SECTION = 'overhead'
CLOCKS = {'thread': time.thread_time, 'wall': time.perf_counter}
CLOCK_NAMES = {
    'thread': 'CPU time of the benchmark thread (`time.thread_time`)',
    'wall': 'wall time (`time.perf_counter`)',
}
BODY = b'{"id": 1, "name": "one", "value": 1.5, "tags": ["a", "b"]}'


def make_app(with_tgstream: bool):
    """The cookiecutter wiring, one JSON view; with or without tgstream."""
    import sqlalchemy
    import zope.sqlalchemy
    from pyramid.config import Configurator
    from sqlalchemy.orm import sessionmaker

    settings = {
        'tm.manager_hook': 'pyramid_tm.explicit_manager',
        'retry.attempts': '3',
    }
    engine = sqlalchemy.create_engine('sqlite://')
    factory = sessionmaker(bind=engine)

    def dbsession(request):
        session = factory(info={'request': request})
        zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    def home(request):
        return {'id': 1, 'name': 'one', 'value': 1.5, 'tags': ['a', 'b']}

    with Configurator(settings=settings) as config:
        config.include('pyramid_jinja2')
        if with_tgstream:
            config.include('tgstream')
        config.include('pyramid_tm')
        config.include('pyramid_retry')
        config.add_request_method(dbsession, reify=True)
        config.add_route('home', '/')
        config.add_view(home, route_name='home', renderer='json')
        return config.make_wsgi_app()


ENVIRON = {
    'REQUEST_METHOD': 'GET',
    'SCRIPT_NAME': '',
    'PATH_INFO': '/',
    'QUERY_STRING': '',
    'SERVER_NAME': 'localhost',
    'SERVER_PORT': '80',
    'SERVER_PROTOCOL': 'HTTP/1.1',
    'HTTP_HOST': 'localhost',
    'HTTP_ACCEPT': 'application/json',
    'wsgi.version': (1, 0),
    'wsgi.url_scheme': 'http',
    'wsgi.input': io.BytesIO(b''),
    'wsgi.errors': sys.stderr,
    'wsgi.multithread': True,
    'wsgi.multiprocess': False,
    'wsgi.run_once': False,
}


def run_block(app, n: int, clock=time.thread_time) -> float:
    """Seconds for ``n`` requests, each a full WSGI call with its body read."""
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    environ = ENVIRON
    started = clock()
    for _ in range(n):
        body = b''.join(app(dict(environ), start_response))
    elapsed = clock() - started
    if statuses[-1] != '200 OK' or body != BODY:
        raise AssertionError('unexpected response: %r %r' % (statuses[-1], body))
    return elapsed


def measure(pairs: int, requests: int, log, clock, same=False) -> tuple[list, list]:
    """Per-request microseconds of each app, block by block, paired."""
    plain, with_tg = make_app(False), make_app(not same)
    for app in (plain, with_tg):  # warm up: imports, caches, reified properties
        run_block(app, requests, clock)
    without, with_ = [], []
    gc.collect()
    gc.disable()  # a collection landing in one block of a pair is noise
    try:
        for index in range(pairs):
            order = ((plain, without), (with_tg, with_))
            for app, results in order if index % 2 == 0 else reversed(order):
                results.append(run_block(app, requests, clock) / requests * 1e6)
            gc.collect()
            if (index + 1) % 10 == 0:
                log('%d/%d pairs' % (index + 1, pairs))
    finally:
        gc.enable()
    return without, with_


def quartiles(values) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    versions = []
    for package in ('pyramid', 'pyramid_tm', 'pyramid_retry', 'transaction',
                    'WebOb', 'tgstream'):
        try:
            versions.append('%s %s' % (package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            versions.append('%s (not installed)' % package)
    return '%s, %d cores; %s; Python %s; %s' % (
        cpu, os.cpu_count() or 0, platform.platform(),
        platform.python_version(), ', '.join(versions),
    )


def report(without, with_, command: str, seconds: float, requests: int, clock: str,
           same: bool = False) -> str:
    diffs = [b - a for a, b in zip(without, with_)]
    ratios = [b / a for a, b in zip(without, with_)]
    median_diff = statistics.median(diffs)
    median_ratio = statistics.median(ratios)
    q1, q3 = quartiles(ratios)
    d1, d3 = quartiles(diffs)
    ok = median_ratio <= 1.01 and median_diff <= 0.5
    lines = [
        '## Overhead of tgstream on a request that does not stream (issue 13)',
        '',
        'Command: `%s`  ' % command,
        'Date: %s; took %.0f s  ' % (
            datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), seconds),
        'Machine: %s' % machine(),
        '',
        'Cookiecutter wiring (pyramid_jinja2, pyramid_tm with '
        '`tm.manager_hook = pyramid_tm.explicit_manager`, pyramid_retry, a lazy '
        '`request.dbsession`), one `renderer=\'json\'` view, called in process '
        'as a raw WSGI app; %d paired blocks of %d requests, alternating (order '
        'swapped every pair), garbage collector run between blocks; clock: %s.'
        % (len(without), requests, CLOCK_NAMES[clock]),
        '',
        '| | µs/request, median | quartiles | min–max |',
        '|---|---:|---:|---:|',
        '| without tgstream | %.2f | %.2f–%.2f | %.2f–%.2f |' % (
            statistics.median(without), *quartiles(without), min(without), max(without)),
        '| %s | %.2f | %.2f–%.2f | %.2f–%.2f |' % (
            'without tgstream (A/A)' if same else 'with tgstream',
            statistics.median(with_), *quartiles(with_), min(with_), max(with_)),
        '| difference per pair | %+.2f | %+.2f–%+.2f | %+.2f–%+.2f |' % (
            median_diff, d1, d3, min(diffs), max(diffs)),
        '| ratio per pair | %.4f | %.4f–%.4f | %.4f–%.4f |' % (
            median_ratio, q1, q3, min(ratios), max(ratios)),
        '',
        'Overhead: %+.2f %% (%+.2f µs/request); target ≤ 1 %% and ≤ 0.5 µs %s' % (
            (median_ratio - 1) * 100, median_diff, '✅' if ok else '❌'),
    ]
    return '\n'.join(lines) + '\n'


def write_section(path: str, text: str, section: str = SECTION) -> None:
    """Put ``text`` in RESULTS.md between the markers of ``section``."""
    begin, end = '<!-- %s:begin -->' % section, '<!-- %s:end -->' % section
    block = '%s\n%s%s\n' % (begin, text, end)
    try:
        with open(path) as f:
            current = f.read()
    except FileNotFoundError:
        current = ''
    pattern = re.compile(re.escape(begin) + '.*?' + re.escape(end) + '\n?', re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda m: block, current)
    else:
        updated = current.rstrip('\n') + ('\n\n' if current else '') + block
    with open(path, 'w') as f:
        f.write(updated)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--pairs', type=int, default=100)
    parser.add_argument('--requests', type=int, default=1000,
                        help='requests per block')
    parser.add_argument('--quick', action='store_true',
                        help='20 pairs; writes nothing')
    parser.add_argument('--output', default=os.path.join(HERE, 'RESULTS.md'))
    parser.add_argument('--no-write', action='store_true')
    parser.add_argument('--same', action='store_true',
                        help='A/A run: both apps without tgstream, to see the '
                             'noise floor of the machine; writes nothing')
    parser.add_argument('--clock', choices=sorted(CLOCKS), default='thread',
                        help='thread: CPU time of this thread (default; time the '
                             'process spends descheduled is not counted); wall: '
                             'perf_counter')
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.no_write = 20, True
    if args.same:
        args.no_write = True

    def log(message):
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    without, with_ = measure(args.pairs, args.requests, log, CLOCKS[args.clock], args.same)
    command = ' '.join(
        ['python benchmarks/bench_overhead.py']
        + list(argv if argv is not None else sys.argv[1:])
    )
    text = report(without, with_, command, time.monotonic() - started, args.requests,
                  args.clock, args.same)
    print(text)
    if not args.no_write:
        write_section(args.output, text)
        log('wrote %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
