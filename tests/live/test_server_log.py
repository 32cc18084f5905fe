"""One failed stream reads as one log record with a traceback.

tgstream logs the failure with its facts and traceback; the server (real
waitress) still says it cut the response, in one short line without a second
traceback.
"""
from __future__ import annotations

import logging
import time

import pytest

from tests.conftest import build_app
from tgstream.serverlog import ServerLogFilter, mark_logged

from .conftest import read_timed

pytestmark = pytest.mark.live


def failing(request):
    yield 'first line\n'
    raise ValueError('the feed broke at row 2')


def setup(config):
    config.add_route('fail', '/fail')
    config.add_view(failing, route_name='fail', stream=True)


def records_of(caplog, name, timeout=5.0):
    """The records of logger ``name`` (waiting a bounded while for the
    server's thread to log)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in caplog.records if r.name == name]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.fixture
def server_loggers_restored():
    """``tgstream.shorten_server_log`` changes the server loggers: undo it."""
    names = ('waitress', 'gunicorn.error')
    before = {name: list(logging.getLogger(name).filters) for name in names}
    yield
    for name in names:
        logging.getLogger(name).filters[:] = before[name]


def test_a_failed_stream_logs_one_traceback(live, caplog, server_loggers_restored):
    caplog.set_level(logging.INFO)
    url = live(build_app(setup, {'tgstream.shorten_server_log': 'true'}))
    response, chunks, complete = read_timed(url + '/fail?x=1')
    assert response.status_code == 200 and not complete

    (ours,) = records_of(caplog, 'tgstream')
    message = ours.getMessage()
    assert 'failed for GET /fail?x=1' in message and 'outcome=error' in message
    assert 'ValueError: the feed broke at row 2' in message
    assert ours.exc_info and isinstance(ours.exc_info[1], ValueError)

    (server,) = records_of(caplog, 'waitress')
    assert server.exc_info is None
    text = logging.Formatter().format(server)
    assert 'Traceback' not in text and '\n' not in text
    assert text == (
        'Exception while serving /fail: ValueError: the feed broke at row 2 '
        '(a failed stream; tgstream logged its traceback)'
    )
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert with_traceback == [ours]


def test_without_the_setting_the_server_log_is_left_alone(live, caplog):
    caplog.set_level(logging.INFO)
    url = live(build_app(setup))
    response, chunks, complete = read_timed(url + '/fail')
    assert response.status_code == 200 and not complete
    (server,) = records_of(caplog, 'waitress')
    assert isinstance(server.exc_info[1], ValueError)   # waitress' own record


def test_other_server_records_pass_untouched():
    def record(exc):
        try:
            raise exc
        except ValueError:
            import sys
            return logging.LogRecord(
                'waitress', logging.ERROR, __file__, 1, 'Exception while serving %s',
                ('/x',), sys.exc_info(),
            )

    plain = record(ValueError('not a stream'))
    assert ServerLogFilter().filter(plain) and plain.exc_info is not None
    logged = ValueError('a stream')
    mark_logged(logged)
    short = record(logged)
    assert ServerLogFilter().filter(short) and short.exc_info is None
    assert short.getMessage() == (
        'Exception while serving /x: ValueError: a stream '
        '(a failed stream; tgstream logged its traceback)'
    )
