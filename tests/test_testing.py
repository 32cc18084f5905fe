"""The testing kit (tgstream.testing): incremental reads, real servers,
stream outcome assertions and the pytest fixtures."""
from __future__ import annotations

import itertools
import os
import threading
import time

import httpx
import pytest
import webtest
from pyramid.config import Configurator

import tgstream
from tgstream.testing import (
    StreamRecorder,
    disconnect_after,
    open_stream,
    record_streams,
    serve,
    serve_gunicorn,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def endless(request):
    request.environ['test.closed'] = threading.Event()
    request.add_finished_callback(lambda r: r.environ['test.closed'].set())
    for n in itertools.count():
        yield '%d\n' % n
        yield tgstream.flush
        time.sleep(0.005)


def three(request):
    yield 'a'
    yield tgstream.flush
    yield 'b'
    yield tgstream.flush
    yield 'c'


def boom(request):
    yield 'partial'
    yield tgstream.flush
    raise ValueError('boom')


def setup_views(config):
    for view in (endless, three, boom):
        config.add_route(view.__name__, '/' + view.__name__)
        config.add_view(view, route_name=view.__name__, stream=True)


@pytest.fixture
def app(make_app):
    return make_app(setup_views)


# -- open_stream -------------------------------------------------------------


def test_open_stream_reads_an_endless_stream_then_disconnects(app):
    with record_streams(app) as streams:
        with open_stream(app, '/endless') as response:
            assert response.status_code == 200
            assert response.headers['Content-Type'].startswith('text/plain')
            assert response.read(3) == b'0\n1\n2\n'
            assert not response.complete
            closed = response.app_iter.request.environ['test.closed']
            assert not closed.is_set()
        assert closed.is_set()   # finished callbacks ran at close
        event = streams.assert_disconnected('/endless')
    assert event.items == 3


def test_open_stream_complete_and_error(app):
    response = open_stream(app, '/three')
    assert response.read() == b'abc' and response.complete
    response.close()
    with open_stream(app, '/boom') as response:
        assert response.next_chunk() == b'partial'
        with pytest.raises(ValueError):
            response.next_chunk()
        assert response.body == b'partial' and not response.complete


# -- record_streams ------------------------------------------------------------


def test_record_streams_takes_an_app_a_configurator_or_a_registry(app):
    with record_streams(app.registry) as by_registry, record_streams(app) as by_app:
        webtest.TestApp(app).get('/three')
        assert by_registry.wait() and by_app.wait()
    with Configurator() as config:
        config.include('tgstream')
        setup_views(config)
        recorder = record_streams(config)
        configured = config.make_wsgi_app()
    webtest.TestApp(configured).get('/three')
    recorder.assert_completed('/three', transaction='not managed')
    recorder.stop()
    with pytest.raises(TypeError, match='record_streams.. needs a Pyramid app'):
        record_streams(object())


def test_stop_unsubscribes(app):
    recorder = record_streams(app)
    recorder.stop()
    webtest.TestApp(app).get('/three')
    assert recorder.find() == []


def test_failed_assertions_say_what_was_recorded(app):
    with record_streams(app) as streams:
        with pytest.raises(AssertionError, match=r'0 stream\(s\) for /three finished'):
            streams.assert_completed('/three', timeout=0.05)
        webtest.TestApp(app).get('/three')
        with open_stream(app, '/three') as response:
            response.next_chunk()
        with pytest.raises(AssertionError, match='outcome=completed for every stream') as info:
            streams.assert_completed('/three')
        assert 'GET /three: outcome=disconnected' in str(info.value)
        with pytest.raises(AssertionError, match=r'expected 1 stream\(s\) for /three, 2'):
            streams.assert_stream('/three', count=1)
        with pytest.raises(AssertionError, match='not so for'):
            streams.assert_error('/three')
        assert streams.outcomes('/three') == {
            ('completed', 'not managed'): 1, ('disconnected', 'not managed'): 1}
        with open_stream(app, '/boom') as response:
            response.next_chunk()
            with pytest.raises(ValueError):
                response.next_chunk()
        assert streams.assert_error('/boom', ValueError).exception.args == ('boom',)
        with pytest.raises(AssertionError, match='exception KeyError'):
            streams.assert_error('/boom', KeyError)
    assert 'StreamRecorder 3 stream(s)' in repr(streams)


# -- servers -----------------------------------------------------------------


@pytest.mark.live
def test_serve_and_disconnect_after(app):
    with record_streams(app) as streams, serve(app, channel_request_lookahead=1) as server:
        assert httpx.get(server.url + '/three').text == 'abc'
        raw = server.disconnect_after('/endless', b'\r\n3\n')
        assert raw.startswith(b'HTTP/1.1 200 OK')
        streams.assert_disconnected('/endless', timeout=10)
        streams.assert_completed('/three')
        with pytest.raises(AssertionError, match='ended before'):
            disconnect_after(server.url + '/three', b'never')


@pytest.mark.live
def test_pytest_fixtures(app, tgstream_server, tgstream_recorder):
    streams = tgstream_recorder(app)
    server = tgstream_server(app, threads=2)
    with httpx.Client(timeout=10) as client:
        with client.stream('GET', server.url + '/boom') as response:
            with pytest.raises(httpx.RemoteProtocolError):
                response.read()   # cut: no terminating chunk
    streams.assert_error('/boom', ValueError, timeout=10)


@pytest.mark.live
@pytest.mark.slow
def test_serve_gunicorn_streams_and_cuts(tmp_path):
    with serve_gunicorn('tests.pkgs.wireapp:make_app()', threads=2, cwd=ROOT) as server:
        body = b''
        with httpx.Client(timeout=10) as client:
            # streamed, not buffered: the app sends each line only once the
            # client has the one before (a handshake through tmp_path)
            url = server.url + '/count?n=4&wait=%s' % tmp_path
            with client.stream('GET', url) as response:
                for chunk in response.iter_raw():
                    body += chunk
                    for line in body.split(b'\n')[:-1]:
                        if line.isdigit():
                            (tmp_path / line.decode()).touch()
            assert body == b'0\n1\n2\n3\n'   # no 'late
            with client.stream('GET', server.url + '/boom') as response:
                with pytest.raises(httpx.RemoteProtocolError):
                    response.read()
        assert any('Booting worker' in line for line in server.output)
        # one failure, one traceback: tgstream's; gunicorn's line is short
        deadline = time.monotonic() + 10
        while not any('Error handling request' in line for line in server.output):
            assert time.monotonic() < deadline, server.output
            time.sleep(0.05)
        output = list(server.output)
        (gunicorn_line,) = [line for line in output if 'Error handling request' in line]
        assert gunicorn_line.endswith(
            'RuntimeError: boom (a failed stream; tgstream logged its traceback)')
        assert sum('Traceback (most recent call last)' in line for line in output) == 1
    assert server.process.poll() is not None


@pytest.mark.live
def test_serve_gunicorn_reports_an_app_that_does_not_load():
    with pytest.raises(RuntimeError, match='gunicorn did not start'):
        with serve_gunicorn('tests.pkgs.no_such_module:app', cwd=ROOT, ready_timeout=20):
            pass


def test_recorder_is_exported():
    assert StreamRecorder.__module__ == 'tgstream.testing.recorder'
