"""Replay of many missed events to one reconnecting client (PostgreSQL log).

Commits ``--events`` events (one channel of two, interleaved) to a fresh log,
lets a process's listener sequence them, then opens a stream as a client
that reconnects with the id it had before them, and reads the whole replay
item by item. Reports the time to the first and
the last replayed event and the peak of Python memory allocated while
replaying (tracemalloc), next to the memory the same events take loaded
whole as a list (the hub's pool warmed first) -- a replay is read page by
page, not loaded whole.

    python benchmarks/bench_live_replay.py --events 10000
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import psycopg  # noqa: E402

from tgstream.live import log as sql  # noqa: E402
from tgstream.live.hub import Hub  # noqa: E402
from tgstream.live.postgres import PostgresListener  # noqa: E402
from tgstream.live.stream import LiveStream, to_sse  # noqa: E402
from tgstream.renderers.sse import ServerSentEvent  # noqa: E402

MARK_BEGIN = '<!-- bench_live_replay: begin -->'
MARK_END = '<!-- bench_live_replay: end -->'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--events', type=int, default=10000)
    parser.add_argument('--pg-url', default=os.environ.get(
        'TGSTREAM_BENCH_PG_URL', 'postgresql://postgres@127.0.0.1:5432/test'))
    parser.add_argument('--no-write', action='store_true', help='do not update RESULTS.md')
    args = parser.parse_args(argv)
    url = args.pg_url.replace('postgresql+psycopg://', 'postgresql://')
    schema = 'bench_' + uuid.uuid4().hex[:8]
    table = '%s.events' % schema
    payload = '{"id": %d, "name": "user %d", "email": "user%d@example.com"}'
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA %s' % schema)
        sql.ensure_table(conn, table)
    hub = Hub(0, encode=to_sse)
    hub.log = sql.LiveLog(url, table)
    hub.listener = PostgresListener(hub, url, 'bench_' + schema, table)
    hub.listener.start()
    try:
        assert hub.listener.connected.wait(10)
        before = str(hub.head)
        with psycopg.connect(url) as conn:
            with conn.cursor() as cursor:
                cursor.executemany(
                    'INSERT INTO %s (channel, data) VALUES (%%s, %%s)' % table,
                    [('users' if n % 2 == 0 else 'other', payload % (n, n, n))
                     for n in range(args.events * 2)])
            conn.commit()
        hub.listener.poke()
        deadline = time.monotonic() + 120
        while hub.head < int(before) + args.events * 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        list(hub.log.backlog(['users'], str(hub.head), hub.head)[0])  # the pool, warm
        tracemalloc.start()
        began = time.monotonic()
        subscription, _, head, _ = hub.subscribe(['users'])
        backlog, after, exclude = hub.log.backlog(['users'], before, head)
        stream = LiveStream(hub, subscription, backlog, after, str(head), 15.0, exclude=exclude)
        count, first = 0, None
        for item in stream:
            if not isinstance(item, ServerSentEvent) or item.data is None:
                break
            if first is None:
                first = time.monotonic() - began
            count += 1
            if count == args.events:
                break
        total = time.monotonic() - began
        _, replay_peak = tracemalloc.get_traced_memory()
        stream.close()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        backlog, _, _ = hub.log.backlog(['users'], before, head)
        whole = list(backlog)
        loaded, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del whole
    finally:
        hub.stop()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('DROP SCHEMA %s CASCADE' % schema)
    assert count == args.events, count
    text = '\n'.join([
        MARK_BEGIN,
        '## Issue 25: replay of %d missed events to one client (bench_live_replay.py)'
        % args.events,
        '',
        'Command: `python benchmarks/bench_live_replay.py --events %d` -- the client '
        "missed %d events of its channel among %d in the log (another channel's "
        'interleaved); pages of %d.' % (args.events, args.events, args.events * 2, sql.PAGE),
        '',
        '| measure | value |',
        '|---|---|',
        '| time to the first replayed event | %.1f ms |' % (first * 1000),
        '| time to the last | %.0f ms (%.0f events/s) |' % (total * 1000, count / total),
        '| peak Python memory while replaying | %.0f KiB |' % (replay_peak / 1024),
        '| the same events loaded whole (a list) | %.0f KiB |' % ((loaded - base) / 1024),
        MARK_END,
    ])
    print(text)
    if not args.no_write:
        path = os.path.join(HERE, 'RESULTS.md')
        current = open(path).read()
        if MARK_BEGIN in current and MARK_END in current:
            head_text, rest = current.split(MARK_BEGIN, 1)
            current = head_text + text + rest.split(MARK_END, 1)[1]
        else:
            current = current.rstrip('\n') + '\n\n' + text + '\n'
        with open(path, 'w') as f:
            f.write(current)
    return 0


if __name__ == '__main__':
    sys.exit(main())
