"""``tgstream.stream_query`` on SQLite and PostgreSQL, with the cookiecutter wiring."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, aliased, scoped_session, sessionmaker

import tgstream
from tests.dbapp import Note, User, build_db_app, seed_users
from tgstream.query import QueryStream
from tgstream.testing import open_stream

COUNT = 95


@pytest.fixture
def engine(any_engine):
    seed_users(any_engine, COUNT)
    with any_engine.begin() as conn:
        conn.execute(Note.__table__.insert(), [
            {'id': n, 'user_id': 1 + n % 3, 'text': 'note %d' % n} for n in range(1, 31)
        ])
    return any_engine


def db_app(engine, view, renderer='json', **options):
    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer=renderer, stream=True, **options)

    return build_db_app(engine, setup)


def read(app):
    with open_stream(app, '/v') as response:
        return response.read()


def test_orm_objects_every_row_once_in_order_bounded_identity_map(engine):
    sizes = []

    def view(request):
        session = request.dbsession
        query = select(User).order_by(User.id)
        for user in tgstream.stream_query(session, query, batch=10):
            sizes.append(len(session.identity_map))
            yield user

    body = read(db_app(engine, view))
    assert [u['id'] for u in json.loads(body)] == list(range(1, COUNT + 1))
    assert len(sizes) == COUNT
    assert max(sizes) <= 10


def test_returned_query_stream_goes_batch_by_batch(engine):
    seen = []

    def view(request):
        stream = tgstream.stream_query(request.dbsession, select(User).order_by(User.id.desc()),
                                       batch=7)
        assert isinstance(stream, QueryStream) and stream.scalars
        original = stream.batches

        def batches(**form):
            for batch in original(**form):
                seen.append((len(batch), len(request.dbsession.identity_map)))
                yield batch

        stream.batches = batches  # what every tgstream_*batches method calls
        return stream

    body = read(db_app(engine, view))
    assert [u['id'] for u in json.loads(body)] == list(range(COUNT, 0, -1))
    assert sum(n for n, _ in seen) == COUNT and len(seen) == 14
    assert max(size for _, size in seen) <= 7


def test_core_rows_and_column_selects(engine):
    def view(request):
        return tgstream.stream_query(request.dbsession,
                                     select(User.id, User.name).order_by(User.id), batch=8)

    rows = json.loads(read(db_app(engine, view)))
    assert rows == [{'id': n, 'name': 'user%d' % n} for n in range(1, COUNT + 1)]
    csv_body = read(db_app(engine, view, renderer='csv'))
    assert csv_body.splitlines()[:2] == [b'id,name', b'1,user1']
    assert len(csv_body.splitlines()) == COUNT + 1


def test_text_statement_gives_rows(engine):
    def view(request):
        statement = text('SELECT id, name FROM users WHERE id <= :n ORDER BY id').bindparams(n=5)
        return tgstream.stream_query(request.dbsession, statement, batch=2)

    assert read(db_app(engine, view, renderer='ndjson')).splitlines() == [
        b'{"id":%d,"name":"user%d"}' % (n, n) for n in range(1, 6)]


def test_several_entities_per_row_are_expunged(engine):
    sizes = []

    def view(request):
        session = request.dbsession
        query = select(Note, User).join(Note.user).order_by(Note.id)
        for note, user in tgstream.stream_query(session, query, batch=5):
            sizes.append(len(session.identity_map))
            yield {'note': note.id, 'user': user.name}

    rows = json.loads(read(db_app(engine, view)))
    assert [r['note'] for r in rows] == list(range(1, 31))
    assert rows[0] == {'note': 1, 'user': 'user2'}
    assert max(sizes) <= 5 + 3  # five notes and at most three users


def test_aliased_entity_and_explicit_scalars(engine):
    def view(request):
        person = aliased(User)
        yield from tgstream.stream_query(request.dbsession,
                                         select(person).where(person.id < 4).order_by(person.id))
        yield from tgstream.stream_query(request.dbsession,
                                         select(User.name).where(User.id < 3).order_by(User.id),
                                         scalars=True)

    assert json.loads(read(db_app(engine, view))) == [
        {'id': 1, 'name': 'user1'}, {'id': 2, 'name': 'user2'}, {'id': 3, 'name': 'user3'},
        'user1', 'user2']


def test_modified_objects_are_kept_and_committed(engine):
    def view(request):
        for user in tgstream.stream_query(request.dbsession, select(User).order_by(User.id),
                                          batch=10):
            if user.id % 10 == 0:
                user.name = 'renamed %d' % user.id
            yield {'id': user.id}

    assert len(json.loads(read(db_app(engine, view)))) == COUNT
    with Session(engine) as session:
        renamed = session.scalars(select(User.name).where(User.name.like('renamed%'))).all()
    assert len(renamed) == COUNT // 10


def test_expunge_false_keeps_objects_attached(engine):
    def view(request):
        users = list(tgstream.stream_query(request.dbsession, select(User).order_by(User.id),
                                           batch=10, expunge=False))
        yield {'attached': all(u in request.dbsession for u in users), 'n': len(users)}

    assert json.loads(read(db_app(engine, view))) == [{'attached': True, 'n': COUNT}]


def test_scoped_session(engine):
    session = scoped_session(sessionmaker(bind=engine))
    try:
        ids = [u.id for u in tgstream.stream_query(session, select(User).order_by(User.id), 30)]
        assert ids == list(range(1, COUNT + 1))
        assert len(session().identity_map) == 0
    finally:
        session.remove()


@pytest.mark.parametrize('batch', [0, -1, 2.5, True, '10'])
def test_bad_batch_size(batch):
    with pytest.raises(ValueError, match='stream_query batch=.* is not a positive int'):
        tgstream.stream_query(None, select(User), batch)


def test_default_batch_sizes():
    assert tgstream.stream_query(None, select(User)).batch == 100
    assert tgstream.stream_query(None, select(User, Note)).batch == 100
    assert tgstream.stream_query(None, select(User.id)).batch == 500
    assert tgstream.stream_query(None, text('SELECT 1')).batch == 500
    assert tgstream.stream_query(None, select(User), 7).batch == 7


@pytest.mark.postgresql
def test_postgresql_uses_a_server_side_cursor(postgresql_engine):
    seed_users(postgresql_engine, COUNT)
    cursors = []

    def view(request):
        session = request.dbsession
        for n, user in enumerate(tgstream.stream_query(session, select(User).order_by(User.id),
                                                       batch=10)):
            if n in (0, 50):
                cursors.append(session.execute(text('SELECT count(*) FROM pg_cursors')).scalar())
            yield user

    body = read(db_app(postgresql_engine, view))
    assert [u['id'] for u in json.loads(body)] == list(range(1, COUNT + 1))
    assert cursors == [1, 1]  # a named (server-side) cursor, open while streaming


# -- a returned Result, ScalarResult or Query streams like stream_query -----------


RETURNED = {
    'result': lambda s: s.execute(select(User.id, User.name).order_by(User.id)),
    'result-yield-per': lambda s: s.execute(
        select(User.id, User.name).order_by(User.id).execution_options(yield_per=7)),
    'orm-result': lambda s: s.execute(select(User).order_by(User.id)),
    'scalars': lambda s: s.scalars(select(User).order_by(User.id)),
    'mappings': lambda s: s.execute(select(User.id, User.name).order_by(User.id)).mappings(),
    'query': lambda s: s.query(User).order_by(User.id),
    'query-columns': lambda s: s.query(User.id, User.name).order_by(User.id),
}


@pytest.mark.parametrize('kind, renderer', [
    (kind, renderer) for kind in sorted(RETURNED) for renderer in ('json', 'ndjson', 'csv')
    if renderer != 'csv' or kind not in ('orm-result', 'scalars', 'query')  # objects
])
def test_returned_result_streams_in_batches_with_the_same_bytes(engine, kind, renderer,
                                                                 monkeypatch):
    from tgstream import query as query_module

    partitions = []
    original = query_module._partitions

    def spy(result, query, *form):
        for batch in original(result, query, *form):
            partitions.append(len(batch))
            yield batch

    def returned(request):
        return RETURNED[kind](request.dbsession)

    def one_by_one(request):
        yield from RETURNED[kind](request.dbsession)

    expected = read(db_app(engine, one_by_one, renderer))
    assert partitions == []
    monkeypatch.setattr(query_module, '_partitions', spy)
    assert read(db_app(engine, returned, renderer)) == expected
    assert sum(partitions) == COUNT and len(partitions) >= 1  # batch by batch
    if renderer == 'json' and kind != 'orm-result':
        rows = json.loads(expected)
        assert [r['id'] for r in rows] == list(range(1, COUNT + 1))


def test_returned_query_with_eager_collections_runs_without_yield_per(engine):
    from sqlalchemy.orm import joinedload

    def view(request):
        return request.dbsession.query(User).options(joinedload(User.notes)).order_by(User.id)

    rows = json.loads(read(db_app(engine, view)))
    assert [r['id'] for r in rows] == list(range(1, COUNT + 1))  # each user once


def test_other_iterables_are_not_taken_for_results(engine):
    def view(request):
        return [{'a': 1}]

    assert json.loads(read(db_app(engine, view))) == [{'a': 1}]
    assert query_module_result_batches([1, 2]) is None


def query_module_result_batches(value):
    from tgstream.query import result_batches

    return result_batches(value)


@pytest.mark.postgresql
@pytest.mark.parametrize('kind', ['query', 'result-yield-per'])
def test_postgresql_returned_result_uses_a_server_side_cursor(postgresql_engine, kind):
    from sqlalchemy import event

    seed_users(postgresql_engine, COUNT)
    cursors = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if 'FROM users' in statement:
            cursors.append(type(cursor).__name__)

    def view(request):
        return RETURNED[kind](request.dbsession)

    event.listen(postgresql_engine, 'after_cursor_execute', record)
    try:
        rows = json.loads(read(db_app(postgresql_engine, view)))
    finally:
        event.remove(postgresql_engine, 'after_cursor_execute', record)
    assert [r['id'] for r in rows] == list(range(1, COUNT + 1))
    assert cursors == ['ServerCursor']


@pytest.mark.postgresql
@pytest.mark.parametrize('how', ['stream_query', 'result'])
def test_postgresql_rows_are_fetched_a_thousand_per_round_trip(postgresql_engine, how,
                                                              monkeypatch):
    import psycopg

    seed_users(postgresql_engine, 2500)
    fetches = []
    original = psycopg.ServerCursor.fetchmany

    def fetchmany(self, size=0):
        rows = original(self, size)
        fetches.append(len(rows))
        return rows

    monkeypatch.setattr(psycopg.ServerCursor, 'fetchmany', fetchmany)
    statement = select(User.id, User.name).order_by(User.id)

    def view(request):
        if how == 'result':
            return request.dbsession.execute(statement.execution_options(yield_per=1000))
        return tgstream.stream_query(request.dbsession, statement)

    rows = json.loads(read(db_app(postgresql_engine, view)))
    assert [r['id'] for r in rows] == list(range(1, 2501))
    # SQLAlchemy's buffer first fetches one row, then 999, then 1 000 a time
    assert max(fetches) == 1000 and len(fetches) <= 5, fetches
