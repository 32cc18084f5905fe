"""StreamFinished: one event per stream, with the facts of its end; the
failure log line carries the same facts."""
from __future__ import annotations

import logging

import pytest
import transaction
import webtest
from sqlalchemy.exc import IntegrityError

import tgstream
from tests.dbapp import User, build_db_app, count_users, seed_users
from tests.live.test_wire import app_with
from tests.pkgs.tgapp import DBSession  # (its Permission table is created too)
from tests.test_transaction import stream_app
from tgstream.events import TRANSACTION_OUTCOMES, StreamFinished, transaction_outcome
from tgstream.testing import open_stream, record_streams


@pytest.fixture
def engine(any_engine):
    seed_users(any_engine)
    return any_engine


def writer(first, count, fail_at=None):
    def view(request):
        for n in range(first, first + count):
            if n == fail_at:
                raise RuntimeError('boom at %d' % n)
            request.dbsession.add(User(id=n, name='u%d' % n))
            request.dbsession.flush()
            yield '%d\n' % n
            yield tgstream.flush

    return view


def test_subscribers_get_one_event_per_stream(engine):
    seen = []

    def setup(config):
        config.add_route('w', '/w')
        config.add_view(writer(10, 3), route_name='w', stream=True)
        config.add_subscriber(seen.append, StreamFinished)

    app = build_db_app(engine, setup)
    response = webtest.TestApp(app).get('/w?x=1')
    (event,) = seen
    assert event.outcome == 'completed'
    assert event.transaction == 'committed'
    assert (event.items, event.bytes) == (3, len(response.body))
    assert event.exception is None
    assert event.request.path_qs == '/w?x=1' and event.path == '/w'
    assert event.duration >= 0
    assert event.stream.closed
    assert 'completed' in repr(event) and 'committed' in repr(event)
    assert count_users(engine) == 8


def test_error_event_and_log_line_carry_the_same_facts(engine, caplog):
    caplog.set_level(logging.ERROR, logger='tgstream')
    app = stream_app(engine, w=writer(10, 5, fail_at=12))
    with record_streams(app) as streams:
        with open_stream(app, '/w') as response:
            assert response.read(2) == b'10\n11\n'
            with pytest.raises(RuntimeError, match='boom at 12'):
                response.next_chunk()
            assert not response.complete
        event = streams.assert_error('/w', RuntimeError, count=1)
    assert event.transaction == 'aborted'
    assert event.items == 2 and event.bytes == 6
    (record,) = caplog.records
    message = record.getMessage()
    for fact in ('outcome=error', 'transaction=aborted', 'items=2', 'bytes=6',
                 'duration=', 'GET /w'):
        assert fact in message
    assert record.exc_info[1] is event.exception
    assert count_users(engine) == 5


def test_commit_failure_is_an_error_with_an_aborted_transaction(engine, caplog):
    caplog.set_level(logging.ERROR, logger='tgstream')

    def dup(request):
        yield 'start\n'
        request.dbsession.add(User(id=10, name='user1'))  # unique name: fails at commit

    app = stream_app(engine, dup=dup)
    with record_streams(app) as streams:
        with open_stream(app, '/dup') as response:
            response.next_chunk()
            with pytest.raises(IntegrityError):
                response.read()
        event = streams.assert_error('/dup', IntegrityError)
    assert event.transaction == 'aborted'
    assert 'transaction=aborted' in caplog.records[0].getMessage()


def test_disconnect_and_head(engine):
    app = stream_app(engine, w=writer(10, 5))
    with record_streams(app) as streams:
        with open_stream(app, '/w') as response:
            response.next_chunk()
        streams.assert_disconnected('/w', count=1)
        streams.assert_aborted('/w')
        streams.clear()
        webtest.TestApp(app).head('/w')
        event = streams.assert_aborted('/w', count=1)
    assert event.outcome == 'aborted'   # never iterated
    assert count_users(engine) == 5


def test_view_policy(engine):
    app = stream_app(engine, w=(writer(10, 2), {'stream_transaction': 'view'}))
    with record_streams(app) as streams:
        webtest.TestApp(app).get('/w')
        streams.assert_committed('/w', count=1)


def test_without_pyramid_tm_the_transaction_is_not_managed(make_app):
    def view(request):
        yield 'a'

    app = app_with(make_app, v=view)
    with record_streams(app) as streams:
        webtest.TestApp(app).get('/v')
        event = streams.assert_completed('/v', transaction='not managed')
    assert event.items == 1


def test_a_stream_that_commits_itself_is_not_managed_by_tgstream(engine):
    def view(request):
        request.dbsession.add(User(id=10, name='self'))
        yield 'a'
        request.tm.commit()
        yield 'b'

    app = stream_app(engine, v=view)
    with record_streams(app) as streams:
        assert webtest.TestApp(app).get('/v').text == 'ab'
        streams.assert_completed('/v', transaction='not managed')
    assert count_users(engine) == 6


def test_turbogears_session_commits(engine, make_app):
    DBSession.remove()
    DBSession.configure(bind=engine)
    try:
        app = make_app(lambda config: config.include('tests.pkgs.tgapp'),
                       {'tgstream.sqlalchemy.session': 'tests.pkgs.tgapp:DBSession'})
        with record_streams(app) as streams:
            webtest.TestApp(app).get('/write')
            streams.assert_committed('/write')
            with open_stream(app, '/write_fails') as response:
                response.next_chunk()
                with pytest.raises(RuntimeError):
                    response.read()
            streams.assert_error('/write_fails', RuntimeError)
            streams.assert_aborted('/write_fails')
    finally:
        DBSession.remove()
        transaction.abort()


def test_the_event_fires_once_even_if_closed_twice(make_app):
    def view(request):
        yield 'a'
        yield tgstream.flush
        yield 'b'

    app = app_with(make_app, v=view)
    with record_streams(app) as streams:
        response = open_stream(app, '/v')
        response.next_chunk()
        response.close()
        response.app_iter.close()
        streams.assert_disconnected('/v', count=1)


def test_transaction_outcomes_are_normalised():
    recorded = ['committed', 'aborted', 'committing', 'not managed', 'pyramid_tm',
                'ended by the stream', None]
    assert [transaction_outcome(r) for r in recorded] == [
        'committed', 'aborted', 'aborted', 'not managed', 'not managed',
        'not managed', 'not managed']
    assert {transaction_outcome(r) for r in recorded} == set(TRANSACTION_OUTCOMES)


def test_event_aliases_are_deprecated(make_app):
    from tgstream import StreamFinished

    seen = []

    def setup(config):
        config.add_subscriber(seen.append, StreamFinished)
        config.add_route('v', '/v')
        config.add_view(lambda request: iter(['ab', 'c']), route_name='v', stream=True)

    import webtest

    webtest.TestApp(make_app(setup)).get('/v')
    (event,) = seen
    assert (event.transaction, event.items, event.bytes) == ('not managed', 2, 3)
    for alias, name in (('transaction_outcome', 'transaction'), ('items_sent', 'items'),
                        ('bytes_sent', 'bytes')):
        with pytest.warns(DeprecationWarning, match='StreamFinished.%s is deprecated.*'
                          'use StreamFinished.%s' % (alias, name)):
            assert getattr(event, alias) == getattr(event, name)


def test_outcomes_are_enums_that_are_their_strings():
    from tgstream.events import OUTCOMES, Outcome, Recorded, TransactionOutcome

    assert Outcome.COMPLETED == 'completed' and Outcome('error') is Outcome.ERROR
    assert OUTCOMES == ('completed', 'error', 'disconnected', 'aborted')
    assert TRANSACTION_OUTCOMES == ('committed', 'aborted', 'not managed')
    # logs, f-strings and metrics see the plain value
    member = TransactionOutcome.NOT_MANAGED
    assert (str(member), '%s' % member, f'{member}', f'{member:>12}') == (
        'not managed', 'not managed', 'not managed', ' not managed')
    assert transaction_outcome(Recorded.COMMITTING) is TransactionOutcome.ABORTED
    assert transaction_outcome(Recorded.PYRAMID_TM) is TransactionOutcome.NOT_MANAGED
