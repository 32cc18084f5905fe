"""Notifying commits per second: the durable log against NOTIFY, side by side.

8 writer threads on raw psycopg connections (``synchronous_commit`` as the
server has it) commit, in turn for a few seconds each, in one run:

- ``plain``: ``INSERT`` an app row, ``COMMIT`` (the baseline);
- ``log``: the same and tgstream's log ``INSERT`` (the PostgreSQL backend
  today), with the process's listener running -- sequencing, reading and
  publishing every event to a subscribed hub -- and poked after each commit
  as ``notify()`` does; every committed event must reach the hub, once, in
  position order;
- ``log-poll``: the same without the poke (the sequencer polls the log
  every 50 ms instead);
- ``notify``: the same with ``pg_notify`` instead (the backend before the log:
  PostgreSQL serialises the commits of notifying transactions).

Reports commits/s, each mode's ratio to ``plain`` (median of the rounds),
and the delay from a log commit to its publication in the hub (p50/p99).
Run from a checkout with the testing extra::

    python benchmarks/bench_live_commits.py --rounds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import psycopg  # noqa: E402

from tgstream.live import log as sql  # noqa: E402
from tgstream.live.hub import Hub  # noqa: E402
from tgstream.live.postgres import PostgresListener  # noqa: E402

MARK_BEGIN = '<!-- bench_live_commits: begin -->'
MARK_END = '<!-- bench_live_commits: end -->'


def run(mode: str, url: str, schema: str, writers: int, seconds: float, listener,
        prefix: str) -> dict:
    app = 'INSERT INTO %s.app (name) VALUES (%%s)' % schema
    table = '%s.events' % schema
    counts = [0] * writers
    stop = time.monotonic() + seconds
    commits: dict[str, float] = {}

    def write(index: int) -> None:
        with psycopg.connect(url) as conn:
            while time.monotonic() < stop:
                conn.execute(app, ('x',))
                if mode.startswith('log'):
                    tag = '%s %d-%d' % (prefix, index, counts[index])
                    conn.execute('INSERT INTO %s (channel, data) VALUES (%%s, %%s)' % table,
                                 ('bench', '"%s"' % tag))
                elif mode == 'notify':
                    conn.execute("SELECT pg_notify('bench_%s', 'bench\n1\n{}')" % schema)
                conn.commit()
                if mode.startswith('log'):
                    commits[tag] = time.monotonic()
                    if mode == 'log':
                        listener.poke()
                counts[index] += 1

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {'rate': sum(counts) / seconds, 'commits': commits}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--writers', type=int, default=8)
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--pg-url', default=os.environ.get(
        'TGSTREAM_BENCH_PG_URL', 'postgresql://postgres@127.0.0.1:5432/test'))
    parser.add_argument('--no-write', action='store_true', help='do not update RESULTS.md')
    args = parser.parse_args(argv)
    url = sql_url = args.pg_url.replace('postgresql+psycopg://', 'postgresql://')
    schema = 'bench_' + uuid.uuid4().hex[:8]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA %s' % schema)
        conn.execute('CREATE TABLE %s.app (id bigserial PRIMARY KEY, name text)' % schema)
        sql.ensure_table(conn, '%s.events' % schema)
        sync = conn.execute('SHOW synchronous_commit').fetchone()[0]
        version = conn.execute('SHOW server_version').fetchone()[0]
    hub = Hub(0)
    listener = hub.listener = PostgresListener(
        hub, sql_url, 'bench_' + schema, '%s.events' % schema, poll=1.0)
    listener.start()
    assert listener.connected.wait(10)
    subscription = hub.subscribe(['bench'])[0]
    received: dict[str, float] = {}
    positions: list[int] = []

    def drain() -> None:
        while not hub.stopped:
            item = subscription.get(0.2)
            if item is not None:
                received[item[1].data.strip('"')] = time.monotonic()
                positions.append(item[0])

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    rates: dict[str, list[float]] = {'plain': [], 'log': [], 'log-poll': [], 'notify': []}
    committed: dict[str, float] = {}
    try:
        for round_ in range(args.rounds):
            for mode in rates:
                # log-poll: no wake-up, the sequencer polls every 50 ms
                listener.poll = 0.05 if mode == 'log-poll' else 1.0
                result = run(mode, url, schema, args.writers, args.seconds, listener,
                             '%s/%d' % (mode, round_))
                rates[mode].append(result['rate'])
                committed.update(result['commits'])
                print('%-8s %7.0f commits/s' % (mode, result['rate']), flush=True)
        deadline = time.monotonic() + 30
        while len(received) < len(committed) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        hub.stop()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('DROP SCHEMA %s CASCADE' % schema)
    lost = len(set(committed) - set(received))
    duplicated = len(positions) - len(set(positions))
    in_order = positions == sorted(positions)

    def delay_ms(mode: str) -> tuple[float, float]:
        delays = sorted(received[tag] - committed[tag] for tag in committed
                        if tag in received and tag.startswith(mode + '/'))
        return (delays[len(delays) // 2] * 1000, delays[int(len(delays) * 0.99)] * 1000)

    median = {mode: statistics.median(values) for mode, values in rates.items()}
    ratio = {mode: statistics.median(
        [v / p for v, p in zip(values, rates['plain'])]) for mode, values in rates.items()}
    lines = [
        MARK_BEGIN,
        '## Issue 25: notifying commits, durable log vs NOTIFY (bench_live_commits.py)',
        '',
        'Command: `python benchmarks/bench_live_commits.py --rounds %d` -- %d writer '
        'threads on raw psycopg connections, %.0f s per mode, modes interleaved in '
        'each round; PostgreSQL %s, `synchronous_commit=%s`, 2 shared cores.'
        % (args.rounds, args.writers, args.seconds, version, sync),
        '',
        '| mode | commits/s (median) | ratio to plain (median of rounds) |',
        '|---|---|---|',
    ]
    for mode in rates:
        lines.append('| %s | %.0f | %.2fx |' % (mode, median[mode], ratio[mode]))
    lines += [
        '',
        'Log modes: %d events committed, %d reached the hub, %d lost, %d duplicated, '
        'positions in order: %s. Commit to publication in the hub, under the '
        "writers' load: log (poked after each commit, as `notify()` does) p50 %.1f ms, "
        'p99 %.1f ms; log-poll p50 %.1f ms, p99 %.1f ms.'
        % ((len(committed), len(received), lost, duplicated, in_order)
           + delay_ms('log') + delay_ms('log-poll')),
        MARK_END,
    ]
    text = '\n'.join(lines)
    print(text)
    if not args.no_write:
        path = os.path.join(HERE, 'RESULTS.md')
        current = open(path).read()
        if MARK_BEGIN in current and MARK_END in current:
            head, rest = current.split(MARK_BEGIN, 1)
            current = head + text + rest.split(MARK_END, 1)[1]
        else:
            current = current.rstrip('\n') + '\n\n' + text + '\n'
        with open(path, 'w') as f:
            f.write(current)
    return 0 if lost == 0 and duplicated == 0 and in_order else 1


if __name__ == '__main__':
    sys.exit(main())
