"""stream_query's tuple fast path (rows read from the driver's cursor as
plain tuples, put through SQLAlchemy's own result processors) writes exactly
the bytes of the regular path (SQLAlchemy Rows), for every renderer that
asks for it, on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime
import logging

import pytest
from pyramid.config import Configurator
from pyramid.renderers import JSON
from pyramid.testing import DummyRequest
from sqlalchemy import Integer, MetaData, insert, literal_column, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import tgstream
from tests.test_query_text import filled_table, make_table, render, rows
from tgstream import query
from tgstream.items import TupleRows
from tgstream.query import TextRows
from tgstream.renderers.csv import CSVEncoder
from tgstream.renderers.json import JSONArrayEncoder, NDJSONEncoder
from tgstream.renderers.jsonrules import JSONEncoding


def json_request(adapter: bool):
    config = Configurator()
    renderer = JSON()
    if adapter:  # the usual adapter: orjson may format the dates itself
        renderer.add_adapter(datetime.datetime, lambda obj, request: obj.isoformat())
    config.add_renderer('json', renderer)
    config.commit()
    request = DummyRequest()
    request.registry = config.registry
    return request


ENCODERS = {
    'json': lambda request: JSONArrayEncoder(JSONEncoding(request)),
    'ndjson': lambda request: NDJSONEncoder(JSONEncoding(request, one_line=True)),
    'csv': lambda request: CSVEncoder(),
}


@pytest.mark.parametrize('adapter', [False, True])
@pytest.mark.parametrize('renderer', sorted(ENCODERS))
@pytest.mark.parametrize('decorated', [False, True])
def test_tuple_path_is_byte_identical(any_engine, fetch_small, json_impl, renderer,
                                      decorated, adapter):
    table = filled_table(any_engine, 40, decorated)
    request = json_request(adapter)
    with Session(any_engine) as session:
        statement = select(table).order_by(table.c.id)
        regular, regular_kinds = render(tgstream.stream_query(session, statement, 4),
                                        ENCODERS[renderer](request))
        fast, fast_kinds = render(tgstream.stream_query(session, statement, 4),
                                  ENCODERS[renderer](request), tuples=True)
    assert fast == regular
    assert (regular.count(b'\n') > 40 if renderer == 'csv'
            else regular.count(b'"id"') == 40)
    # every column kind, processors included (Enum, TypeDecorator, JSON,
    # SQLite's dates stored as text): the fast path is taken
    assert fast_kinds == {TupleRows}
    assert TupleRows not in regular_kinds


def test_processors_are_sqlalchemys(sqlite_engine):
    # SQLite keeps dates as text: the tuples hold what the Row holds
    table = filled_table(sqlite_engine, 9, decorated=True)
    with Session(sqlite_engine) as session:
        statement = select(table).order_by(table.c.id)
        expected = [tuple(row) for row in session.execute(statement)]
        got = [row for batch in tgstream.stream_query(session, statement, 4).batches(tuples=True)
               for row in batch.items]
    assert got == expected
    assert {type(row) for row in got} == {tuple}
    assert isinstance(got[1][table.c.keys().index('at')], datetime.datetime)


def test_csv_text_path_falls_back_to_tuples(sqlite_engine, fetch_small):
    # not PostgreSQL: the csv renderer gets tuples (not text) where it can
    table = filled_table(sqlite_engine, 20)
    with Session(sqlite_engine) as session:
        statement = select(table).order_by(table.c.id)
        regular, _ = render(tgstream.stream_query(session, statement), CSVEncoder())
        fast, kinds = render(tgstream.stream_query(session, statement), CSVEncoder(), text=True)
    assert fast == regular
    assert kinds == {TupleRows}


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = 'thing'
    id: Mapped[int] = mapped_column(Integer, primary_key=True)

    def __json__(self, request):
        return {'id': self.id}


def test_where_the_tuple_path_is_not_taken(sqlite_engine, caplog):
    Base.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add_all([Thing(id=n) for n in range(1, 6)])
        session.commit()

        def kinds(statement, **kw):
            stream = tgstream.stream_query(session, statement, **kw)
            return {type(batch.items) for batch in stream.batches(tuples=True)}

        # ORM entities and ORM-enabled column selects: SQLAlchemy's own loading
        assert TupleRows not in kinds(select(Thing))
        assert TupleRows not in kinds(select(Thing.id))
        assert TupleRows not in kinds(select(Thing.id), scalars=True)
        # Core: taken, textual SQL included
        assert kinds(select(Thing.__table__)) == {TupleRows}
        assert kinds(text('SELECT id FROM thing').columns(
            literal_column('id', Integer))) == {TupleRows}
    # echo='debug' logs each row: the rows come through SQLAlchemy
    caplog.set_level(logging.DEBUG, 'sqlalchemy.engine')
    sqlite_engine.echo = 'debug'
    try:
        with Session(sqlite_engine) as session:
            stream = tgstream.stream_query(session, select(Thing.__table__))
            assert TupleRows not in {type(b.items) for b in stream.batches(tuples=True)}
    finally:
        sqlite_engine.echo = False
    assert 'Row (1,)' in caplog.text


def test_empty_and_single_row_results(any_engine):
    metadata = MetaData()
    table = make_table(metadata)
    metadata.create_all(any_engine)
    request = json_request(True)
    with Session(any_engine) as session:
        statement = select(table).order_by(table.c.id)
        for count in (0, 1):
            for renderer in ENCODERS:
                assert render(tgstream.stream_query(session, statement),
                              ENCODERS[renderer](request), tuples=True)[0] == render(
                    tgstream.stream_query(session, statement), ENCODERS[renderer](request))[0]
            if not count:
                session.execute(insert(table), rows(1))
                session.flush()


@pytest.mark.parametrize('returns', ['stream_query', 'result'])
def test_views_returning_rows_take_the_tuple_path(any_engine, make_testapp, monkeypatch,
                                                  returns):
    # through the renderers: the same body as the rows yielded one by one
    table = filled_table(any_engine, 30)
    statement = select(table).order_by(table.c.id)
    seen = []
    cut = query._cut

    def spy(partitions, fetch, size):
        for batch in cut(partitions, fetch, size):
            seen.append(type(batch.items))
            yield batch

    monkeypatch.setattr(query, '_cut', spy)

    def setup(config):
        def returned(request):
            session = Session(any_engine)
            request.add_finished_callback(lambda request: session.close())
            if returns == 'result':  # the documented way: a server-side cursor
                return session.execute(statement.execution_options(yield_per=7))
            return tgstream.stream_query(session, statement)

        def yielded(request):
            with Session(any_engine) as session:
                yield from session.execute(statement)

        for renderer in ('json', 'ndjson', 'csv'):
            config.add_route('r' + renderer, '/r/' + renderer)
            config.add_route('y' + renderer, '/y/' + renderer)
            config.add_view(returned, route_name='r' + renderer, renderer=renderer, stream=True)
            config.add_view(yielded, route_name='y' + renderer, renderer=renderer, stream=True)

    app = make_testapp(setup)
    for renderer in ('json', 'ndjson', 'csv'):
        del seen[:]
        assert app.get('/r/' + renderer).body == app.get('/y/' + renderer).body
        expected = TextRows if renderer == 'csv' and any_engine.dialect.name == 'postgresql' \
            else TupleRows
        assert set(seen) == {expected}
        assert len(seen) == 1  # 30 rows: one batch


def test_a_result_read_from_keeps_the_regular_path(sqlite_engine):
    # rows already taken from it: its buffer no longer holds exactly the row
    # read ahead, so the rest comes through SQLAlchemy
    table = filled_table(sqlite_engine, 20)
    with Session(sqlite_engine) as session:
        statement = select(table).order_by(table.c.id).execution_options(yield_per=5)
        for taken in (0, 1, 3):
            result = session.execute(statement)
            first = [tuple(row) for row in result.fetchmany(taken)] if taken else []
            batches = list(query.result_batches(result, tuples=True))
            got = first + [tuple(row) for batch in batches for row in batch.items]
            assert got == [tuple(row) for row in session.execute(statement)]
            kinds = {type(batch.items) for batch in batches}
            assert kinds == ({TupleRows} if taken == 0 else {query.ResultRows})
