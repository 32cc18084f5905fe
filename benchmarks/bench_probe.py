"""What the departed-client probe (issue 23) costs the per-item path.

A :class:`tgstream.stream.StreamIterator` over ``--items`` small items
yielded one by one (a fast run: the coalescing path), iterated in process
as a server would, three ways side by side:

- **none**: an environ with no handle (WebTest, mod_wsgi): no probe;
- **waitress**: ``environ['waitress.client_disconnected']`` (what waitress
  with ``channel_request_lookahead`` gives; the probe before issue 23);
- **socket**: ``environ['gunicorn.socket']``, a connected TCP socket on
  127.0.0.1 (gunicorn, and likewise werkzeug, uWSGI, cheroot): the peek,
  asked only after a pause of ``tgstream.connection.PROBE_PAUSE``.

Blocks alternate (the order rotates), timed with the thread's CPU time;
the result is the median ratio of each to **none** over ``--rounds``
rounds. Then the price of one peek (``Connection.client_gone()``: a dup, a
``recv(MSG_PEEK | MSG_DONTWAIT)``, a close) in microseconds: what a stream
pays once per pause. Writes its section of RESULTS.md unless ``--quick``.

Usage::

    python benchmarks/bench_probe.py            # 30 rounds of 200 000 items
    python benchmarks/bench_probe.py --quick    # 5 rounds, writes nothing
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pyramid.testing import DummyRequest  # noqa: E402

from tgstream.connection import Connection  # noqa: E402
from tgstream.renderers.encoders import RawEncoder  # noqa: E402
from tgstream.stream import StreamIterator  # noqa: E402

SECTION = 'probe'


def run(environ: dict, items: int) -> float:
    request = DummyRequest(environ=dict(environ))
    stream = StreamIterator(request, (b'x\n' for _ in range(items)), RawEncoder())
    stream.prime()
    start = time.thread_time()
    size = 0
    for chunk in stream:
        size += len(chunk)
    elapsed = time.thread_time() - start
    stream.close()
    assert size == 2 * items, size
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--items', type=int, default=200_000)
    parser.add_argument('--rounds', type=int, default=30)
    parser.add_argument('--quick', action='store_true')
    args = parser.parse_args()
    if args.quick:
        args.rounds = 5
    listener = socket.create_server(('127.0.0.1', 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    cases = {
        'none': {},
        'waitress': {'waitress.client_disconnected': lambda: False},
        'socket': {'gunicorn.socket': server},
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    run(cases['socket'], 1000)  # warm up
    for number in range(args.rounds):
        order = names[number % 3:] + names[:number % 3]
        for name in order:
            times[name].append(run(cases[name], args.items))
    ratios = {
        name: statistics.median(t / n for t, n in zip(times[name], times['none']))
        for name in names
    }
    per_item = {name: statistics.median(times[name]) / args.items * 1e9 for name in names}
    connection = Connection('gunicorn', server.fileno())
    peeks = []
    for _ in range(20):
        start = time.perf_counter()
        for _ in range(1000):
            connection.client_gone()
        peeks.append((time.perf_counter() - start) / 1000 * 1e6)
    peek = statistics.median(peeks)
    for sock in (client, server, listener):
        sock.close()
    lines = [
        '## Departed-client probe on the per-item path (issue 23)',
        '',
        'Command: `python benchmarks/bench_probe.py --items %d --rounds %d`; Python %s.'
        % (args.items, args.rounds, sys.version.split()[0]),
        'One stream of %d items yielded one by one, iterated in process; thread CPU time,'
        % args.items,
        'median of %d alternating rounds.' % args.rounds,
        '',
        '| environ | ns per item | ratio to no probe |',
        '|---|---|---|',
    ]
    for name in names:
        lines.append('| %s | %.0f | %.3f |' % (name, per_item[name], ratios[name]))
    lines += [
        '',
        'One peek (`Connection.client_gone()`: dup, `recv(1, MSG_PEEK|MSG_DONTWAIT)`, close):'
        ' %.2f us, paid once per pause of 2 ms or more.' % peek,
    ]
    report = '\n'.join(lines) + '\n'
    print(report)
    if not args.quick:
        path = os.path.join(HERE, 'RESULTS.md')
        text = open(path, encoding='utf-8').read()
        pattern = re.compile(r'<!-- %s -->.*?<!-- /%s -->\n' % (SECTION, SECTION), re.S)
        block = '<!-- %s -->\n%s<!-- /%s -->\n' % (SECTION, report, SECTION)
        text = pattern.sub(lambda m: block, text) if pattern.search(text) else text + '\n' + block
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)


if __name__ == '__main__':
    main()
