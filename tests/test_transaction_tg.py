"""TurboGears-style global sessions: tgstream.sqlalchemy.session, no pyramid_tm."""
from __future__ import annotations

import pytest
import transaction
import webtest
from sqlalchemy import func, select

from tests.dbapp import seed_users
from tests.pkgs.tgapp import DBSession, Permission
from tgstream.testing import open_stream

SETTINGS = {'tgstream.sqlalchemy.session': 'tests.pkgs.tgapp:DBSession'}


@pytest.fixture
def engine(any_engine):
    seed_users(any_engine)
    DBSession.remove()
    DBSession.configure(bind=any_engine)
    yield any_engine
    DBSession.remove()
    transaction.abort()


@pytest.fixture
def app(engine, make_app):
    return make_app(lambda config: config.include('tests.pkgs.tgapp'), SETTINGS)


def permissions(engine):
    with engine.connect() as conn:
        return sorted(conn.scalars(select(Permission.permission_name)))


def test_stream_db_reads_users(app, engine):
    body = webtest.TestApp(app).get('/stream_db').json
    assert body == [None, 'user1', 'user2', 'user3', 'user4', 'user5', None, None, None, None]
    assert engine.pool.checkedout() == 0


def test_literal_manual_commit_still_works(app, engine):
    response = webtest.TestApp(app).get('/write_literal')
    assert response.text.split() == [str(n) for n in range(1, 10)]
    assert permissions(engine) == ['perm_%d' % n for n in range(9)]
    assert engine.pool.checkedout() == 0
    assert transaction.manager.get()._resources == []


def test_setting_commits_and_removes_at_the_end(app, engine):
    webtest.TestApp(app).get('/write')
    assert permissions(engine) == ['auto_%d' % n for n in range(9)]
    assert engine.pool.checkedout() == 0
    assert not DBSession.registry.has()


def test_failure_rolls_back_and_removes(app, engine, tgstream_log):
    response = open_stream(app, '/write_fails')
    assert response.next_chunk() == b'one\n'
    with pytest.raises(RuntimeError):
        response.read()
    response.close()
    assert permissions(engine) == []
    assert engine.pool.checkedout() == 0
    assert not DBSession.registry.has()


def test_early_close_rolls_back(app, engine):
    with open_stream(app, '/write') as response:
        response.next_chunk()
    assert permissions(engine) == []
    assert engine.pool.checkedout() == 0


def test_by_hand_helpers(engine):
    import tgstream

    DBSession.add(Permission(permission_name='by_hand'))
    tgstream.commit_session(DBSession)
    assert permissions(engine) == ['by_hand']
    DBSession.add(Permission(permission_name='dropped'))
    DBSession.flush()
    tgstream.abort_session(DBSession)
    assert permissions(engine) == ['by_hand']
    assert engine.pool.checkedout() == 0


def test_pyramid_tm_with_the_thread_local_manager(engine, make_app):
    """No tm.manager_hook: pyramid_tm uses transaction.manager; writes made
    in the stream are committed (today they are silently lost)."""

    def view(request):
        yield 'start\n'
        DBSession.add(Permission(permission_name='thread_local'))
        yield 'added\n'

    def setup(config):
        config.include('pyramid_tm')
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', stream=True)

    app = make_app(setup, SETTINGS)
    assert webtest.TestApp(app).get('/v').text == 'start\nadded\n'
    assert permissions(engine) == ['thread_local']
    assert engine.pool.checkedout() == 0
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Permission)) == 1


def test_commit_session_that_fails_aborts_removes_and_raises(engine):
    import tgstream

    DBSession.add(Permission(permission_name='twice'))
    DBSession.add(Permission(permission_name='twice'))
    with pytest.raises(Exception, match='UNIQUE|unique|duplicate'):
        tgstream.commit_session(DBSession)
    assert permissions(engine) == []
    assert not DBSession.registry.has()  # removed


def test_commit_session_of_a_doomed_transaction_aborts(engine):
    import tgstream

    DBSession.add(Permission(permission_name='doomed'))
    transaction.get().doom()
    tgstream.commit_session(DBSession)
    assert permissions(engine) == []
