"""Live streams at scale: two gunicorn gevent workers, PostgreSQL backend,
many concurrent SSE clients.

Measures, in one run (see benchmarks/README.rst):

- committed notifications reach every client (none lost, none duplicated,
  in commit order), latency from commit p50/p99/max;
- rolled-back notifications reach nobody;
- server RSS per idle stream (RSS of both workers with the clients
  connected minus before, divided by the clients);
- database connections: one listener per worker, plus the request pool;
- after the clients leave: streams, greenlets, connections and RSS back to
  their baseline.

Every loop is bounded in count and time. Run from a checkout with the
testing extra::

    python benchmarks/bench_live.py --clients 1000
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import http.client
import json
import os
import platform
import resource
import statistics
import sys
import time
import uuid

import sqlalchemy

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tgstream.testing.servers import serve_gunicorn  # noqa: E402

MARK_BEGIN = '<!-- bench_live: begin -->'
MARK_END = '<!-- bench_live: end -->'
LOAD = [0.0, 0.0, 0.0]


def raise_fd_limit(needed: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < needed:
        sys.exit('ulimit -n is %d (hard %d); %d file descriptors are needed'
                 % (soft, hard, needed))
    return soft, hard


def get(server, path, timeout=10.0):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        connection.request('GET', path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def worker_stats(server, workers: int, timeout=30.0, trim=False) -> dict[int, dict]:
    """/stats of every worker (new connections until each pid answered);
    ``trim``: after a garbage collection and malloc_trim in each."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError('only workers %s answered /stats' % sorted(seen))
        try:
            status, body = get(server, '/stats?trim=1' if trim else '/stats')
        except OSError:  # a worker still booting
            time.sleep(0.1)
            continue
        data = json.loads(body)
        seen[data['pid']] = data
    return seen


def rss_kib(pid: int) -> int:
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


#: the benchmark's schema: its listeners' last queries name its log table
#: (the database is shared: other listeners are not counted)
SCHEMA = ''


def connections(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE application_name = 'tgstream-bench-pool' OR (application_name = "
            "'tgstream-live-listener' AND query LIKE :mine) "
            "GROUP BY application_name"), {'mine': '%' + SCHEMA + '.%'}).all()
    return dict(rows)


async def wait_streams_gone(server, workers, timeout, blocking) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = await blocking(worker_stats, server, workers)
        if not sum(s['streams'] for s in stats.values()):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)


class Client:
    __slots__ = ('ready', 'received', 'writer', 'task')

    def __init__(self):
        self.ready = asyncio.Event()
        self.received: list[tuple[int, float]] = []  # (seq, latency s)
        self.writer = None


async def run_client(client: Client, host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    client.writer = writer
    writer.write(b'GET /feed HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n'
                 % (host.encode(), port))
    tail = b''
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            now = time.time()
            lines = (tail + data).split(b'\n')
            tail = lines.pop()
            for line in lines:
                if line.startswith((b': keep-alive', b': live')):  # (the log's id first)
                    client.ready.set()
                elif line.startswith(b'data: {'):
                    event = json.loads(line[6:])
                    client.received.append((event['seq'], now - event['t']))
    except (ConnectionError, OSError):
        return


def client_process(host: str, port: int, count: int, timeout: float, pipe) -> None:
    """A client process: ``count`` SSE clients. Protocol on ``pipe``: sends
    ``'ready'`` once all received their first keep-alive, waits for
    ``'leave'``, closes them, sends each client's ``received`` list."""
    async def run():
        loop = asyncio.get_running_loop()
        clients = [Client() for _ in range(count)]
        for start in range(0, count, 100):
            batch = clients[start:start + 100]
            for client in batch:
                client.task = asyncio.ensure_future(run_client(client, host, port))
            await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in batch)), timeout)
        pipe.send('ready')
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == 'leave':
                break
            pipe.send([len(c.received) for c in clients])  # 'progress'
        for client in clients:
            client.writer.close()
        await asyncio.gather(*(c.task for c in clients), return_exceptions=True)
        pipe.send([c.received for c in clients])

    asyncio.run(run())


class ClientProcesses:
    """``processes`` client processes sharing ``count`` clients."""

    def __init__(self, server, count: int, processes: int, timeout: float):
        import multiprocessing

        context = multiprocessing.get_context('spawn')  # (the parent runs an event loop)
        self.pipes, self.procs = [], []
        for n in range(processes):
            share = count // processes + (1 if n < count % processes else 0)
            parent, child = context.Pipe()
            proc = context.Process(target=client_process,
                                   args=(server.host, server.port, share, timeout, child),
                                   daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.timeout = timeout

    def _recv(self, pipe):
        if not pipe.poll(self.timeout):
            raise RuntimeError('a client process did not answer within %ss' % self.timeout)
        return pipe.recv()

    def wait_ready(self) -> None:
        for pipe in self.pipes:
            assert self._recv(pipe) == 'ready'

    def progress(self) -> list[int]:
        counts = []
        for pipe in self.pipes:
            pipe.send('progress')
            counts += self._recv(pipe)
        return counts

    def leave(self) -> list[list[tuple[int, float]]]:
        received = []
        for pipe in self.pipes:
            pipe.send('leave')
        for pipe in self.pipes:
            received += self._recv(pipe)
        for proc in self.procs:
            proc.join(self.timeout)
        return received


async def measure(server, args, engine, report):
    workers = args.workers
    loop = asyncio.get_running_loop()

    def blocking(fn, *a):
        return loop.run_in_executor(None, fn, *a)

    # -- baseline (hubs started and listeners connected by /stats) ----------
    cold = await blocking(worker_stats, server, workers, 30.0, True)
    cold_rss = {pid: rss_kib(pid) for pid in cold}
    # warm-up: the same clients connect and leave once (first-use costs:
    # greenlet and socket free lists, code paths), so the baseline below is
    # the steady state
    warm = ClientProcesses(server, args.clients, args.client_processes, args.timeout)
    await blocking(warm.wait_ready)
    await blocking(warm.leave)
    await wait_streams_gone(server, workers, args.timeout, blocking)
    before = await blocking(worker_stats, server, workers, 30.0, True)
    base_conn = await blocking(connections, engine)
    base_rss = {pid: rss_kib(pid) for pid in before}

    # -- connect --------------------------------------------------------------
    started = time.monotonic()
    group = ClientProcesses(server, args.clients, args.client_processes, args.timeout)
    await blocking(group.wait_ready)
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(2.0)  # let the workers settle
    during = await blocking(worker_stats, server, workers)
    streams = sum(s['streams'] for s in during.values())
    idle_rss = {pid: rss_kib(pid) for pid in during}
    during_conn = await blocking(connections, engine)
    rss_per_stream = (sum(idle_rss.values()) - sum(base_rss.values())) / max(streams, 1)

    # -- publish ------------------------------------------------------------
    committed, rolled_back = [], []

    def publish_all():
        for seq in range(args.events + args.rollbacks):
            rollback = seq % 4 == 3 and len(rolled_back) < args.rollbacks
            if not rollback and len(committed) >= args.events:
                continue
            status, _ = get(server, '/publish?seq=%d%s' % (seq, '&rollback=1' if rollback else ''))
            assert status == 200, status
            (rolled_back if rollback else committed).append(seq)
            time.sleep(args.interval)

    cpu_before = {pid: cpu_seconds(pid) for pid in during}
    await blocking(publish_all)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if min(await blocking(group.progress)) >= len(committed):
            break
        await asyncio.sleep(0.2)
    cpu_publish = sum(cpu_seconds(pid) - cpu_before[pid] for pid in during)
    await asyncio.sleep(1.0)  # anything late (duplicates, rolled back) shows up now
    received = await blocking(group.leave)
    latencies = sorted(lat for r in received for _, lat in r)
    exact = sum(1 for r in received if [s for s, _ in r] == committed)
    lost = sum(len(set(committed) - {s for s, _ in r}) for r in received)
    duplicated = sum(len(r) - len({s for s, _ in r}) for r in received)
    leaked = sum(1 for r in received for s, _ in r if s in rolled_back)

    # -- left ---------------------------------------------------------------
    await wait_streams_gone(server, workers, args.timeout, blocking)
    after = await blocking(worker_stats, server, workers, 30.0, True)
    after_conn = await blocking(connections, engine)
    after_rss = {pid: rss_kib(pid) for pid in after}

    def pct(p):
        if not latencies:
            return float('nan')
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    result = {
        'clients': args.clients,
        'connect_seconds': connect_seconds,
        'streams': streams,
        'per_worker': {pid: s['streams'] for pid, s in during.items()},
        'committed': len(committed),
        'rolled_back': len(rolled_back),
        'exact': exact,
        'lost': lost,
        'duplicated': duplicated,
        'leaked': leaked,
        'deliveries': len(latencies),
        'p50': pct(0.50), 'p99': pct(0.99), 'max': latencies[-1] * 1000 if latencies else float('nan'),
        'mean': statistics.mean(latencies) * 1000 if latencies else float('nan'),
        'rss_per_stream_kib': rss_per_stream,
        'rss': {pid: (base_rss[pid], idle_rss.get(pid), after_rss.get(pid)) for pid in base_rss},
        'cold_rss': cold_rss,
        'cpu_per_delivery_us': cpu_publish / max(len(committed) * streams, 1) * 1e6,
        'greenlets': {pid: (before[pid]['greenlets'], during[pid]['greenlets'],
                            after[pid]['greenlets']) for pid in before},
        'connections': (base_conn, during_conn, after_conn),
        'streams_after': sum(s['streams'] for s in after.values()),
    }
    report(result)
    return result


def check(result, args) -> list[str]:
    failures = []
    if result['streams'] != args.clients:
        failures.append('streams %d != clients' % result['streams'])
    if result['exact'] != args.clients:
        failures.append('%d clients got something else than the committed events'
                        % (args.clients - result['exact']))
    for key in ('lost', 'duplicated', 'leaked'):
        if result[key]:
            failures.append('%s: %d' % (key, result[key]))
    if not result['p99'] <= 250:
        failures.append('p99 %.1f ms > 250' % result['p99'])
    if not result['rss_per_stream_kib'] <= 50:
        failures.append('RSS per stream %.1f KiB > 50' % result['rss_per_stream_kib'])
    base, during, after = result['connections']
    if during.get('tgstream-live-listener') != args.workers:
        failures.append('listeners during: %r' % during)
    if during.get('tgstream-bench-pool', 0) > args.workers * args.pool:
        failures.append('pool connections during: %r' % during)
    if after.get('tgstream-live-listener') != base.get('tgstream-live-listener'):
        failures.append('listeners after: %r vs %r' % (after, base))
    if result['streams_after']:
        failures.append('streams after the clients left: %d' % result['streams_after'])
    for pid, (b, _, a) in result['greenlets'].items():
        if a > b + 5:
            failures.append('worker %d greenlets %d -> %d' % (pid, b, a))
    for pid, (b, _, a) in result['rss'].items():
        if a - b > 4 * 1024:
            failures.append('worker %d RSS after %d KiB vs baseline %d' % (pid, a, b))
    return failures


def markdown(result, args, failures, took, command) -> str:
    from importlib.metadata import version

    import pyramid  # noqa: F401

    base, during, after = result['connections']
    lines = [
        MARK_BEGIN,
        '# Live streams benchmark',
        '',
        'Command: `%s`  ' % command,
        'Date: %s; took %.0f s; load average before the run %.1f (the machine is '
        'shared)  ' % (datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), took, LOAD[0]),
        'Machine: %d cores; %s; Python %s; gunicorn %s, gevent %s, psycopg %s, PostgreSQL on 127.0.0.1' % (
            os.cpu_count(), platform.platform(), platform.python_version(),
            version('gunicorn'), version('gevent'), version('psycopg')),
        '',
        '%d gunicorn gevent workers (`--worker-connections %d`), `tgstream.live.backend = '
        'postgresql`, request pool %d per worker; %d SSE clients (asyncio, raw sockets, in %d '
        'processes) on `/feed` = `tgstream.listen(request, \'bench\')`, split by the kernel '
        'between the workers %s. Then %d notifications committed and %d rolled back (doomed), '
        'one every %.0f ms, each by a new request to either worker. Latency: client receive '
        'time minus the server\'s `time.time()` taken just before the commit (so it includes '
        'the commit itself).' % (
            args.workers, args.worker_connections, args.pool, args.clients,
            args.client_processes, sorted(result['per_worker'].values()), result['committed'],
            result['rolled_back'], args.interval * 1000),
        '',
        '| measure | value | target |',
        '|---|---:|---|',
        '| clients connected (time to connect all) | %d (%.1f s) | %d |' % (
            result['streams'], result['connect_seconds'], args.clients),
        '| clients that got exactly the committed events, in order | %d | all |' % result['exact'],
        '| deliveries lost / duplicated | %d / %d | 0 / 0 |' % (result['lost'], result['duplicated']),
        '| rolled-back notifications delivered | %d | 0 |' % result['leaked'],
        '| latency from commit p50 / p99 / max | %.1f / %.1f / %.1f ms | p99 ≤ 250 ms |' % (
            result['p50'], result['p99'], result['max']),
        '| server RSS per idle stream, after the warm-up round (cold: from before it) '
        '| %.1f KiB (cold %.1f KiB) | ≤ 50 KiB |' % (
            result['rss_per_stream_kib'],
            (sum(v[1] for v in result['rss'].values()) - sum(result['cold_rss'].values()))
            / max(result['streams'], 1)),
        '| DB connections before / with clients / after | listeners %s / %s / %s; pool %s / %s / %s '
        '| one listener per worker; pool ≤ %d |' % (
            base.get('tgstream-live-listener', 0), during.get('tgstream-live-listener', 0),
            after.get('tgstream-live-listener', 0), base.get('tgstream-bench-pool', 0),
            during.get('tgstream-bench-pool', 0), after.get('tgstream-bench-pool', 0),
            args.workers * args.pool),
        '| live streams after the clients left | %d | 0 |' % result['streams_after'],
        '| server CPU per delivery (both workers, while publishing, incl. the publish requests) '
        '| %.0f µs | |' % result['cpu_per_delivery_us'],
    ]
    for pid, (b, d, a) in sorted(result['rss'].items()):
        gb, gd, ga = result['greenlets'][pid]
        lines.append('| worker %d RSS before / with clients / after (before and after: after gc and '
                     'malloc_trim); greenlets | %.1f / %.1f / %.1f MiB; '
                     '%d / %d / %d | back to baseline |' % (
                         pid, b / 1024, d / 1024, a / 1024, gb, gd, ga))
    lines += ['', 'RSS of each worker before the warm-up round (cold, after gc and malloc_trim): %s MiB; '
              'the warm-up round (the same clients connect and leave once) grows it once, by '
              'first-use costs; the baseline above is taken after it.' % ', '.join(
                  '%.1f' % (v / 1024) for v in result['cold_rss'].values())]
    lines += ['', 'Result: %s' % ('all targets met' if not failures else
                                  'FAILED: ' + '; '.join(failures)), MARK_END]
    return '\n'.join(lines) + '\n'


def write_results(text: str) -> None:
    path = os.path.join(HERE, 'RESULTS.md')
    current = open(path, encoding='utf-8').read() if os.path.exists(path) else ''
    if MARK_BEGIN in current and MARK_END in current:
        head, rest = current.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1].lstrip('\n')
        current = head + text + ('\n' + tail if tail else '')
    else:
        current = current.rstrip('\n') + ('\n\n' if current else '') + text
    with open(path, 'w', encoding='utf-8') as f:
        f.write(current)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--clients', type=int, default=1000)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--worker-connections', type=int, default=2000)
    parser.add_argument('--pool', type=int, default=5)
    parser.add_argument('--client-processes', type=int, default=2)
    parser.add_argument('--events', type=int, default=20)
    parser.add_argument('--rollbacks', type=int, default=5)
    parser.add_argument('--interval', type=float, default=0.1)
    parser.add_argument('--keepalive', type=float, default=2.0,
                        help='tgstream.sse.keepalive: how soon a gone client is noticed')
    parser.add_argument('--timeout', type=float, default=60.0)
    parser.add_argument('--pg-url', default=os.environ.get(
        'TGSTREAM_TEST_PG_URL', 'postgresql+psycopg://postgres@127.0.0.1:5432/test'))
    parser.add_argument('--no-write', action='store_true', help='do not update RESULTS.md')
    args = parser.parse_args(argv)
    started = time.monotonic()
    LOAD[:] = os.getloadavg()
    limit = raise_fd_limit(2 * args.clients + 256)
    print('file descriptors: soft limit %d (hard %d)' % limit)

    global SCHEMA
    schema = SCHEMA = 'bench_live_' + uuid.uuid4().hex[:8]
    admin = sqlalchemy.create_engine(args.pg_url, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE SCHEMA %s' % schema)
    env = {
        'BENCH_LIVE_PG_URL': args.pg_url,
        'BENCH_LIVE_SCHEMA': schema,
        'BENCH_LIVE_CHANNEL': 'bench_' + uuid.uuid4().hex[:8],
        'BENCH_LIVE_POOL': str(args.pool),
        'BENCH_LIVE_KEEPALIVE': str(args.keepalive),
    }
    try:
        with serve_gunicorn(
            'bench_live_app:app()', workers=args.workers, env=env, cwd=HERE,
            args=['--worker-class', 'gevent', '--worker-connections',
                  str(args.worker_connections), '--backlog', '2048'],
            ready_path='/stats', timeout=60,
        ) as server:
            try:
                result = asyncio.run(measure(server, args, admin, lambda r: None))
            except BaseException:
                print('\n'.join(server.output[-40:]), file=sys.stderr)
                raise
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql('DROP SCHEMA %s CASCADE' % schema)
        admin.dispose()
    failures = check(result, args)
    command = 'python benchmarks/bench_live.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    text = markdown(result, args, failures, time.monotonic() - started, command.strip())
    print(text)
    if not args.no_write:
        write_results(text)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
