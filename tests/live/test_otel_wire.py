"""OpenTelemetry through a real waitress server: the server span and request
metrics of a stream cover it on the wire, a departed client ends the span,
concurrent streams keep their own trace."""
from __future__ import annotations

import threading
import time

import httpx
import pytest
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import select

from tests.dbapp import User, includeme_models, make_engine, seed_users
from tests.handshake import Handshake
from tests.otel_support import build_traced_app, sdk, server_span
from tgstream.testing import StreamRecorder

pytestmark = pytest.mark.live

ACTIVE = 'http.server.active_requests'
DURATION = 'http.server.duration'


@pytest.fixture
def otel():
    return sdk()


@pytest.fixture
def engine(tmp_path):
    engine = make_engine('sqlite:///%s/wire.sqlite' % tmp_path)
    seed_users(engine, 5)
    SQLAlchemyInstrumentor().instrument(engine=engine, skip_dep_check=True)
    yield engine
    SQLAlchemyInstrumentor().uninstrument()
    engine.dispose()


def make_app(engine, handshake):
    def ticks(request):
        # the client must have read each tick before the next one is made
        for n in range(3):
            marker = b'tick%d\n' % n
            yield marker
            handshake.wait_for(marker)
            time.sleep(0.05)

    def endless(request):
        for n in range(2000):  # bounded: stops by itself
            yield '%d\n' % n
            time.sleep(0.005)

    def queries(request):
        for n in range(1, 6):
            yield request.dbsession.execute(
                select(User.name).where(User.id == n)
            ).scalar_one() + '\n'
            time.sleep(0.01)

    def setup(config):
        includeme_models(config, engine)
        for name, view in [('ticks', ticks), ('endless', endless), ('queries', queries)]:
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, stream=True)

    return build_traced_app(setup)


def test_span_and_duration_cover_the_stream_on_the_wire(otel, engine, tgstream_server):
    handshake = Handshake()
    app = make_app(engine, handshake)
    server = tgstream_server(app, channel_request_lookahead=1)
    active = otel.total(ACTIVE)
    before = {a: (p.count, p.sum) for a, p in otel.points(DURATION).items()}
    seen_active = []

    def watch():
        # while the client reads, the stream counts as an active request
        deadline = time.monotonic() + 10
        while b'tick1' not in handshake.body and time.monotonic() < deadline:
            time.sleep(0.005)
        seen_active.append(otel.total(ACTIVE))

    watcher = threading.Thread(target=watch)
    watcher.start()
    with StreamRecorder(app.registry) as recorder:
        response, chunks, complete = handshake.read(server.url + '/ticks')
        recorder.wait(path='/ticks')
    watcher.join(10)
    assert complete and response.status_code == 200 and not handshake.late
    assert seen_active == [active + 1]
    span = server_span(otel.spans(), '/ticks')
    first_at, last_at = chunks[0][0], chunks[-1][0]
    assert (span.end_time - span.start_time) / 1e9 >= last_at - first_at
    assert span.attributes['tgstream.outcome'] == 'completed'
    assert span.attributes['tgstream.transaction'] == 'committed'
    assert otel.total(ACTIVE) == active
    # one point more (once per request), covering the stream
    [(count, total)] = [
        (p.count - before.get(a, (0, 0))[0], p.sum - before.get(a, (0, 0))[1])
        for a, p in otel.points(DURATION).items() if p.count != before.get(a, (0, 0))[0]
    ]
    assert count == 1
    assert total >= (last_at - first_at) * 1000


def test_a_client_that_leaves_ends_the_span(otel, engine, tgstream_server):
    app = make_app(engine, Handshake())
    server = tgstream_server(app)
    active = otel.total(ACTIVE)
    with StreamRecorder(app.registry) as recorder:
        server.disconnect_after('/endless', b'\n20\n')
        [event] = recorder.wait(path='/endless', timeout=20)
    assert event.outcome == 'disconnected'
    span = server_span(otel.spans(), '/endless')
    assert span.attributes['tgstream.outcome'] == 'disconnected'
    assert span.attributes['tgstream.transaction'] == 'aborted'
    assert otel.total(ACTIVE) == active


def test_concurrent_streams_keep_their_own_trace(otel, engine, tgstream_server):
    app = make_app(engine, Handshake())
    server = tgstream_server(app, threads=4)
    with StreamRecorder(app.registry) as recorder:
        threads = [
            threading.Thread(target=httpx.get, args=(server.url + '/queries',),
                             kwargs={'timeout': 10})
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        recorder.wait(4, path='/queries', timeout=15)
    spans = otel.spans()
    requests = {s.context.span_id: s for s in spans if s.name == '/queries'}
    assert len(requests) == 4
    per_request: dict[int, int] = {}
    for span in spans:
        if span.name.startswith('SELECT'):
            request = requests[span.parent.span_id]
            assert request.context.trace_id == span.context.trace_id
            assert request.start_time <= span.start_time <= span.end_time <= request.end_time
            per_request[span.parent.span_id] = per_request.get(span.parent.span_id, 0) + 1
    assert sorted(per_request.values()) == [5, 5, 5, 5]
