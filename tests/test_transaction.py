"""Transactions that span the stream: real pyramid_tm + zope.sqlalchemy.

The cookiecutter wiring (explicit manager, ``request.dbsession``), without
the ``tm.active`` test override, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import pytest
import transaction
import webtest
from pyramid.httpexceptions import HTTPConflict
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

import tgstream
from tests.dbapp import Note, User, build_db_app, count_users, seed_users, writing_stream
from tgstream.testing import open_stream


@pytest.fixture
def engine(any_engine):
    seed_users(any_engine)
    with any_engine.begin() as conn:
        conn.execute(Note.__table__.insert(), [{'user_id': 1, 'text': 'hello'}])
    return any_engine


def names(engine):
    with engine.connect() as conn:
        return sorted(conn.scalars(select(User.name)))


def stream_app(engine, settings=None, **views):
    def setup(config):
        for name, spec in views.items():
            view, options = spec if isinstance(spec, tuple) else (spec, {})
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, stream=True, **options)

    return build_db_app(engine, setup, settings)


def test_reads_and_lazy_loads_in_the_generator(engine):
    def view(request):
        user = request.dbsession.get(User, 1)   # loaded in the view ...

        def gen():
            yield user.name + ':'
            yield ','.join(n.text for n in user.notes)   # ... lazy-loaded here
            yield ':%d' % request.dbsession.scalar(select(func.count()).select_from(User))

        return gen()

    app = webtest.TestApp(stream_app(engine, v=view))
    assert app.get('/v').text == 'user1:hello:5'
    assert engine.pool.checkedout() == 0


def test_view_and_stream_writes_commit_together_at_the_end(engine):
    seen_outside = []

    def view(request):
        request.dbsession.add(User(id=10, name='from view'))
        yield 'view wrote\n'
        request.dbsession.add(User(id=11, name='from stream'))
        request.dbsession.flush()
        seen_outside.append(count_users(engine) if engine.dialect.name == 'postgresql' else None)
        yield 'stream wrote\n'

    app = webtest.TestApp(stream_app(engine, v=view))
    assert app.get('/v').text == 'view wrote\nstream wrote\n'
    assert 'from view' in names(engine) and 'from stream' in names(engine)
    if engine.dialect.name == 'postgresql':
        assert seen_outside == [5]   # not visible to others until the end
    assert engine.pool.checkedout() == 0


def test_exception_mid_stream_commits_nothing(engine, tgstream_log):
    def view(request):
        request.dbsession.add(User(id=10, name='from view'))
        yield 'a'
        yield tgstream.flush
        request.dbsession.add(User(id=11, name='from stream'))
        request.dbsession.flush()
        raise RuntimeError('boom')

    def ok(request):
        yield str(len(request.dbsession.scalars(select(User)).all()))

    app = stream_app(engine, v=view, ok=ok)
    response = open_stream(app, '/v')
    assert response.next_chunk() == b'a'
    with pytest.raises(RuntimeError):
        response.read()
    response.close()
    assert count_users(engine) == 5
    assert engine.pool.checkedout() == 0
    assert webtest.TestApp(app).get('/ok').text == '5'


def test_early_close_aborts_and_releases_the_connection(engine):
    finished = []
    writes = writing_stream(10, 20)

    def view(request):
        request.add_finished_callback(lambda r: finished.append(True))
        return writes(request)

    app = stream_app(engine, v=view)
    with open_stream(app, '/v') as response:
        assert response.read(3) == b'10\n11\n12\n'
        assert engine.pool.checkedout() == 1
    assert finished == [True]
    assert count_users(engine) == 5
    assert engine.pool.checkedout() == 0


def test_head_request_aborts(engine):
    def view(request):
        request.dbsession.add(User(id=10, name='head'))
        yield 'x'

    webtest.TestApp(stream_app(engine, v=view)).head('/v')
    assert count_users(engine) == 5
    assert engine.pool.checkedout() == 0


def test_commit_failure_at_the_end_cuts_the_response(engine, tgstream_log):
    def view(request):
        yield 'start\n'
        yield tgstream.flush
        # a duplicate name: found only when the stream's work is flushed at commit
        request.dbsession.add(User(id=10, name='user1'))
        yield 'added\n'

    app = stream_app(engine, v=view)
    response = open_stream(app, '/v')
    assert response.next_chunk() == b'start\n'
    # every item yielded goes out; the failed commit keeps the end back
    assert response.next_chunk() == b'added\n'
    with pytest.raises(IntegrityError):
        response.next_chunk()
    assert response.body == b'start\nadded\n'
    response.close()
    assert count_users(engine) == 5
    assert engine.pool.checkedout() == 0
    assert 'failed' in tgstream_log.records[0].getMessage()


def test_json_array_closing_bytes_come_after_the_commit(engine):
    from tgstream.renderers.encoders import RawEncoder

    events = []

    class Recording(RawEncoder):
        def end(self):
            events.append(('end', count_users(engine)))
            return b']'

    def view(request):
        request.response.app_iter  # noqa: B018 - the stream is built by the deriver
        request.dbsession.add(User(id=10, name='x'))
        yield '['

    def renderer_factory(info):
        class Renderer:
            content_type = 'application/json'

            def __call__(self, value, request):
                return value, Recording(response=request.response)

        return Renderer()

    def setup(config):
        config.add_stream_renderer('recording', renderer_factory)
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', stream=True, renderer='recording')

    app = webtest.TestApp(build_db_app(engine, setup))
    assert app.get('/v').text == '[]'
    # the row was committed (visible to another connection) before ']' existed
    assert events == [('end', 6)]


def test_doom_before_or_during_the_stream_is_not_an_error(engine):
    def before(request):
        request.dbsession.add(User(id=10, name='doomed before'))
        request.tm.doom()
        yield 'complete'

    def during(request):
        request.dbsession.add(User(id=11, name='doomed during'))
        yield 'com'
        request.tm.doom()
        yield 'plete'

    app = webtest.TestApp(stream_app(engine, before=before, during=during))
    assert app.get('/before').text == 'complete'
    assert app.get('/during').text == 'complete'
    assert count_users(engine) == 5
    assert engine.pool.checkedout() == 0


def test_commit_veto_decision_is_respected(engine):
    def view(request):
        request.response.status = 409
        request.dbsession.add(User(id=10, name='vetoed'))
        yield 'conflict'

    app = webtest.TestApp(
        stream_app(engine, {'tm.commit_veto': 'pyramid_tm.default_commit_veto'}, v=view)
    )
    assert app.get('/v', status=409).text == 'conflict'
    assert count_users(engine) == 5


def test_error_before_first_item_handled_by_exception_view_aborts(engine):
    def view(request):
        request.dbsession.add(User(id=10, name='never'))
        request.dbsession.flush()
        raise HTTPConflict()
        yield 'x'

    webtest.TestApp(stream_app(engine, v=view)).get('/v', status=409)
    assert count_users(engine) == 5
    assert engine.pool.checkedout() == 0


def test_app_owned_transaction_is_left_alone(engine):
    """The cookiecutter test fixture sets tm.active: it owns the transaction."""
    import zope.sqlalchemy
    from sqlalchemy.orm import Session

    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    session = Session(bind=engine)
    zope.sqlalchemy.register(session, transaction_manager=tm)

    def view(request):
        request.dbsession.add(User(id=10, name='fixture'))
        yield 'ok'

    app = webtest.TestApp(
        stream_app(engine, v=view),
        extra_environ={'tm.active': True, 'tm.manager': tm, 'app.dbsession': session},
    )
    assert app.get('/v').text == 'ok'
    # neither committed nor aborted: still open for the fixture to finish
    assert tm.get().status == 'Active'
    session.flush()
    assert session.get(User, 10) is not None
    tm.abort()
    assert count_users(engine) == 5


def test_checkpoint_keeps_progress(engine):
    def view(request):
        for n in range(10, 16):
            request.dbsession.add(User(id=n, name='u%d' % n))
            if n == 12:
                tgstream.checkpoint(request)
                yield 'checkpoint\n'
                yield tgstream.flush
        yield 'end\n'
        raise RuntimeError('fails after the checkpoint')

    app = stream_app(engine, v=view)
    response = open_stream(app, '/v')
    assert response.next_chunk() == b'checkpoint\n'
    with pytest.raises(RuntimeError):
        response.read()
    response.close()
    # 10..12 were checkpointed; 13..15 aborted with the failure
    assert count_users(engine) == 8
    assert engine.pool.checkedout() == 0


def test_view_policy_releases_the_connection_before_the_stream(engine):
    seen = []

    def view(request):
        request.dbsession.add(User(id=10, name='in view'))

        def gen():
            # Code before the first item runs while priming, i.e. in the
            # view's transaction; after it, the stream has its own.
            request.dbsession.add(User(id=12, name='primed'))
            yield 'first\n'
            seen.append(engine.pool.checkedout())
            seen.append('in view' in names(engine))   # committed at view return
            request.dbsession.add(User(id=11, name='in stream'))
            yield '%d users' % request.dbsession.scalar(select(func.count()).select_from(User))

        return gen()

    app = stream_app(engine, v=(view, {'stream_transaction': 'view'}))
    response = open_stream(app, '/v')
    assert engine.pool.checkedout() == 0   # released before the stream starts
    assert response.read() == b'first\n8 users'
    response.close()
    assert seen == [0, True]
    assert {'in view', 'primed', 'in stream'} <= set(names(engine))
    assert engine.pool.checkedout() == 0


def test_view_policy_global_setting_and_abort(engine):
    def view(request):
        request.dbsession.add(User(id=10, name='in view'))

        def gen():
            yield 'x'
            request.dbsession.add(User(id=11, name='in stream'))
            request.dbsession.flush()
            yield tgstream.flush
            raise RuntimeError('stream fails')

        return gen()

    app = stream_app(engine, {'tgstream.transaction': 'view'}, v=view)
    response = open_stream(app, '/v')
    with pytest.raises(RuntimeError):
        response.read()
    response.close()
    assert names(engine).count('in view') == 1
    assert 'in stream' not in names(engine)
    assert engine.pool.checkedout() == 0


def test_retryable_error_before_the_first_item_is_retried(engine):
    from transaction.interfaces import TransientError

    attempts = []

    def view(request):
        attempts.append(1)
        if len(attempts) == 1:
            raise TransientError('try again')
        yield 'attempt %d' % len(attempts)

    app = webtest.TestApp(stream_app(engine, {'retry.attempts': '3'}, v=view))
    assert app.get('/v').text == 'attempt 2'


def test_plain_generator_response_gets_the_transaction_too(engine):
    from pyramid.response import Response

    def view(request):
        user = request.dbsession.get(User, 2)

        def gen():
            request.dbsession.add(User(id=10, name='plain'))
            yield user.name.encode()

        return Response(app_iter=gen())

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v')

    app = webtest.TestApp(build_db_app(engine, setup))
    assert app.get('/v').text == 'user2'
    assert 'plain' in names(engine)


def test_include_order_does_not_matter(engine):
    def view(request):
        user = request.dbsession.get(User, 3)
        yield user.name

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', stream=True)

    app = webtest.TestApp(build_db_app(engine, setup, tgstream_first=False))
    assert app.get('/v').text == 'user3'


# -- PostgreSQL: isolation and server-side cursors ---------------------------


@pytest.fixture
def pg(pg_engine):
    seed_users(pg_engine, 2000)
    return pg_engine


@pytest.mark.postgresql
def test_server_side_cursor_spans_the_stream(pg):
    def view(request):
        result = request.dbsession.scalars(
            select(User).order_by(User.id).execution_options(yield_per=100)
        )

        def gen():
            for user in result:
                yield '%d\n' % user.id

        return gen()

    app = stream_app(pg, v=view)
    with open_stream(app, '/v') as response:
        body = response.read()
    assert body.split() == [b'%d' % n for n in range(1, 2001)]
    assert pg.pool.checkedout() == 0


@pytest.mark.postgresql
def test_other_connections_see_the_rows_only_at_the_end(pg):
    observed = []

    def view(request):
        for n in range(3001, 3004):
            request.dbsession.add(User(id=n, name='new%d' % n))
            request.dbsession.flush()
            observed.append(count_users(pg))
            yield '%d\n' % n
            yield tgstream.flush

    app = stream_app(pg, v=view)
    with open_stream(app, '/v') as response:
        response.read()
    assert observed == [2000, 2000, 2000]
    assert count_users(pg) == 2003


@pytest.mark.postgresql
def test_no_idle_in_transaction_after_disconnect(pg):
    app = stream_app(pg, v=writing_stream(3001, 3100))
    with open_stream(app, '/v') as response:
        response.read(2)
    with pg.connect() as conn:
        # only this test's sessions (application_name: see the pg_engine fixture)
        idle = conn.execute(
            text("select count(*) from pg_stat_activity where state = 'idle in transaction' "
                 "and application_name = current_setting('application_name') "
                 "and pid <> pg_backend_pid()")
        ).scalar()
    assert idle == 0
    assert count_users(pg) == 2000


def test_a_transaction_begun_in_the_stream_is_committed_at_the_end(engine):
    # TurboGears style: commit, begin, write more. request.tm is the app's own
    # manager; the stream follows its new transaction (a synchronizer).
    def view(request):
        request.dbsession.add(User(id=10, name='first'))
        yield 'a'
        request.tm.commit()
        request.tm.begin()
        request.dbsession.add(User(id=11, name='second'))
        yield 'b'

    app = stream_app(engine, v=view)
    assert webtest.TestApp(app).get('/v').text == 'ab'
    assert {'first', 'second'} <= set(names(engine))
    assert engine.pool.checkedout() == 0


def test_nothing_is_left_on_the_transaction_or_the_manager(engine):
    seen = {}

    def view(request):
        seen['manager'], seen['txn'] = request.tm, request.tm.get()
        yield 'a'

    app = webtest.TestApp(stream_app(engine, v=view))
    assert app.get('/v').text == 'a'
    assert type(seen['manager']) is transaction.TransactionManager
    # pyramid_tm's decision was intercepted on the transaction, then undone
    assert 'commit' not in vars(seen['txn']) and 'abort' not in vars(seen['txn'])
    assert len(seen['manager']._synchs) == 0  # the stream's synchronizer is gone
    with pytest.raises(transaction.interfaces.NoTransaction):
        seen['manager'].get()  # committed by the stream, nothing begun after


def test_pyramid_tm_decision_is_recorded_once(engine):
    # the first commit()/abort() after the stream is attached is pyramid_tm's
    # decision; later calls (the stream's own) go to the transaction
    def view(request):
        request.dbsession.add(User(id=10, name='kept'))
        yield 'a'
        request.tm.commit()  # the stream commits itself, mid-stream
        yield 'b'

    app = webtest.TestApp(stream_app(engine, v=view))
    assert app.get('/v').text == 'ab'
    assert 'kept' in names(engine)


def test_explicit_tween_list_with_pyramid_tm(engine):
    from tgstream.testing import record_streams

    settings = {'pyramid.tweens': '\n'.join([
        'pyramid_tm.tm_tween_factory',
        'pyramid.tweens.excview_tween_factory',
        'tgstream.tween.stream_tween_factory',
    ])}
    app = stream_app(engine, settings, v=writing_stream(10, 12))
    assert getattr(app.registry.settings['tm.manager_hook'], 'tgstream_wrapped', False)
    with record_streams(app) as streams:
        assert webtest.TestApp(app).get('/v').text == '10\n11\n'
        streams.assert_completed('/v', transaction='committed')
    assert count_users(engine) == 7


def test_checkpoint_while_streaming_keeps_progress(engine):
    # After the first item the stream's own transaction is checkpointed.
    def view(request):
        yield 'start\n'
        for n in range(10, 16):
            request.dbsession.add(User(id=n, name='u%d' % n))
            if n == 12:
                tgstream.checkpoint()  # the current request
                yield 'checkpoint\n'
                yield tgstream.flush
        raise RuntimeError('fails after the checkpoint')

    app = stream_app(engine, v=view)
    with open_stream(app, '/v') as response:
        with pytest.raises(RuntimeError):
            response.read()
    assert b'checkpoint' in response.body
    assert count_users(engine) == 8  # 10..12 kept, 13..15 aborted
    assert engine.pool.checkedout() == 0


def test_checkpoint_of_a_doomed_stream_commits_nothing(engine):
    def view(request):
        yield 'start\n'
        request.dbsession.add(User(id=10, name='doomed'))
        request.tm.doom()
        tgstream.checkpoint(request)
        request.dbsession.add(User(id=11, name='after'))
        yield 'end\n'

    app = stream_app(engine, v=view)
    with open_stream(app, '/v') as response:
        assert response.read() == b'start\nend\n'
    assert count_users(engine) == 5


def test_checkpoint_outside_a_request_is_a_clear_error():
    with pytest.raises(RuntimeError, match='needs a request'):
        tgstream.checkpoint()


def test_checkpoint_in_a_doomed_view_aborts_and_dooms_the_next(engine):
    seen = []

    def view(request):
        request.dbsession.add(User(id=10, name='doomed'))
        request.tm.doom()
        tgstream.checkpoint(request)
        seen.append(request.tm.isDoomed())
        request.dbsession.add(User(id=11, name='after'))
        return 'done'

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer='string')

    assert webtest.TestApp(build_db_app(engine, setup)).get('/v').text == 'done'
    assert seen == [True]
    assert count_users(engine) == 5
