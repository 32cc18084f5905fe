"""Every fast path of the export renderers writes the regular path's bytes
(the differential oracle of tests/renderers/oracle.py), on SQLite and
PostgreSQL, for json, ndjson and csv, every kind of dialect, the result's
own filters, batch edges and adversarial values."""
from __future__ import annotations

import csv
import datetime
import decimal
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
)
from sqlalchemy.orm import Session

import tgstream
from tests.renderers.oracle import assert_identical, export_paths, make_registry
from tgstream.items import TupleRows
from tgstream.query import TextRows

#: texts that have broken one path or another: formulas, separators, the
#: line breaks str.splitlines() knows, numeric-looking text, quotes, escapes
ADVERSARIAL = [
    'plain', '=HYPERLINK("http://x/?"&A1,"y")', '-5', '-1,234.50', '5+HYPERLINK("x")',
    '+1', '@SUM(A1)', 'a,b', 'a;b', 'a:b', 'a|b', 'tab\there', 'line\nbreak', 'cr\rx',
    '\u2028=1+1', 'x\u2029=1+1', 'x\x85=1', 'x\x0b=1', 'x\x0c=1', 'x\x1c=1', 'x\x1d-1',
    'x\x1e@a', ' lead', '', None, '100', '10', '0', '"quoted"', "'", '\\', 'caf\u00e9',
    '2024-01-02 03:04:05', '1e5',
]

BASE_DAY = datetime.date(2024, 1, 2)


def make_rows(count: int) -> list[dict]:
    rows = []
    for n in range(1, count + 1):
        rows.append({
            'id': n,
            'n': (-1) ** n * n * 10,  # negative integers, with digits 0
            'name': ADVERSARIAL[n % len(ADVERSARIAL)],
            'day': BASE_DAY + datetime.timedelta(days=n) if n % 5 else None,
            'at': datetime.datetime(2024, 1, 2, 3, 4, n % 60) if n % 4 else None,
            'amount': decimal.Decimal('-%d.25' % n) if n % 3 else None,
            'ratio': n / 4 if n % 6 else None,
        })
    rows[3]['at'] = datetime.datetime(2024, 1, 2, 3, 4, 5, 678)  # an unusual length
    return rows


def make_table(engine, count: int = 80) -> Table:
    metadata = MetaData()
    table = Table(
        'oracle', metadata,
        Column('id', Integer, primary_key=True), Column('n', Integer),
        Column('name', String), Column('day', Date), Column('at', DateTime),
        Column('amount', Numeric(10, 2)), Column('ratio', Float),
    )
    metadata.create_all(engine)
    with Session(engine) as session:
        session.execute(insert(table), make_rows(count))
        session.commit()
    return table


@pytest.fixture
def table(any_engine):
    return make_table(any_engine)


CSV_DIALECTS = [
    {},
    {'delimiter': ';'},
    {'delimiter': '\t', 'lineterminator': '\n'},
    {'delimiter': ':'},
    {'delimiter': ' '},
    {'escapechar': '0'},
    {'escapechar': '\\'},
    {'quoting': csv.QUOTE_ALL},
    {'quoting': csv.QUOTE_NONNUMERIC},
    {'lineterminator': '\r'},
    {'formula_guard': False},
    {'formula_guard': False, 'delimiter': '-'},
    {'formula_guard': False, 'delimiter': '2', 'escapechar': '0'},
    {'formula_guard': False, 'quoting': csv.QUOTE_NONE, 'escapechar': '\\'},
    {'formula_guard': False, 'doublequote': False, 'escapechar': '\\'},
    {'formula_guard': False, 'quotechar': "'"},
]


def _values(session, table, shape: str, yield_per: int = 7):
    """A maker of fresh values of this ``shape`` for the oracle."""
    statement = select(table).order_by(table.c.id)
    streaming = statement.execution_options(yield_per=yield_per)

    def make():
        if shape == 'stream_query':
            return tgstream.stream_query(session, statement, 4)
        if shape == 'stream_query_negative_first':
            return tgstream.stream_query(
                session, select(table.c.n, table.c.name, table.c.id).order_by(table.c.id), 5)
        if shape == 'clean':  # no text column: the verbatim batches
            return tgstream.stream_query(session, select(
                table.c.id, table.c.n, table.c.day, table.c.at, table.c.ratio,
            ).order_by(table.c.id), 6)
        if shape == 'clean_dates':  # integers, dates, timestamps (text on PostgreSQL)
            return tgstream.stream_query(session, select(
                table.c.id, table.c.n, table.c.day, table.c.at).order_by(table.c.id), 6)
        if shape == 'result':
            return session.execute(streaming)
        if shape == 'result_buffered':
            return session.execute(statement)
        if shape == 'columns_swapped':
            return session.execute(streaming).columns('name', 'id')
        if shape == 'columns_fewer':
            return session.execute(streaming).columns('at', 'name')
        if shape == 'unique':
            return session.execute(
                select(table.c.name, table.c.day).order_by(table.c.id)
                .execution_options(yield_per=yield_per)).unique()
        if shape == 'mappings':
            return session.execute(streaming).mappings()
        if shape == 'partly_consumed':
            result = session.execute(streaming)
            result.fetchone()
            result.fetchone()
            return result
        raise AssertionError(shape)
    return make


SHAPES = ['stream_query', 'clean', 'clean_dates', 'stream_query_negative_first', 'result', 'result_buffered',
          'columns_swapped', 'columns_fewer', 'unique', 'mappings', 'partly_consumed']


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('options', CSV_DIALECTS, ids=repr)
def test_csv_paths_are_identical(any_engine, table, fetch_small, shape, options):
    with Session(any_engine) as session:
        paths, kinds = export_paths('csv', options, _values(session, table, shape))
    data = assert_identical(paths)
    assert data.count(b'plain') >= 2 or shape.startswith('clean')
    postgres = any_engine.dialect.name == 'postgresql'
    filtered = shape in ('columns_swapped', 'columns_fewer', 'unique', 'mappings')
    # the fast paths are taken where they can be, and only there
    if shape in ('stream_query', 'clean', 'clean_dates', 'result') and options.get('quoting') != csv.QUOTE_NONNUMERIC:
        assert (TextRows if postgres else TupleRows) in kinds
    if filtered:
        assert not kinds & {TextRows, TupleRows}


@pytest.mark.parametrize('adapter', [False, True])
@pytest.mark.parametrize('shape', SHAPES + ['scalars'])
@pytest.mark.parametrize('name', ['json', 'ndjson'])
def test_json_paths_are_identical(any_engine, table, fetch_small, json_impl, name, shape,
                                  adapter):
    adapters = {}
    if adapter:
        adapters = {datetime.datetime: lambda obj, request: obj.isoformat(),
                    datetime.date: lambda obj, request: obj.isoformat()}
    adapters[decimal.Decimal] = lambda obj, request: str(obj)
    registry = make_registry(adapters)
    with Session(any_engine) as session:
        if shape == 'scalars':
            def make():
                return session.scalars(select(table.c.name).order_by(table.c.id)
                                       .execution_options(yield_per=7))
        else:
            make = _values(session, table, shape)
        paths, kinds = export_paths(name, {}, make, registry)
    assert_identical(paths)
    if shape in ('stream_query', 'result'):
        assert TupleRows in kinds
    if shape in ('columns_swapped', 'columns_fewer', 'unique', 'mappings', 'scalars'):
        assert TupleRows not in kinds


def test_rows_logged_by_echo_debug_keep_the_regular_path(any_engine, table, caplog):
    engine = create_engine(any_engine.url, echo='debug',
                           connect_args=_connect_args(any_engine))
    try:
        with Session(engine) as session, caplog.at_level(logging.DEBUG, 'sqlalchemy.engine'):
            paths, kinds = export_paths('csv', {}, _values(session, table, 'result'))
    finally:
        engine.dispose()
    assert_identical(paths)
    assert not kinds & {TextRows, TupleRows}
    logged = [r for r in caplog.records if r.getMessage().startswith('Row ')]
    # the regular path and the renderer's each logged every row
    assert len(logged) >= 2 * 80


def _connect_args(engine):
    # the test's own PostgreSQL schema (conftest.pg_engine)
    if engine.dialect.name != 'postgresql':
        return {}
    with engine.connect() as connection:
        schema = connection.exec_driver_sql('SHOW search_path').scalar()
    return {'options': '-csearch_path=%s' % schema}


@pytest.mark.postgresql
@pytest.mark.parametrize('setting', [
    "SET DateStyle = 'German, DMY'", "SET DateStyle = 'ISO, DMY'",
    "SET TimeZone = 'Asia/Kathmandu'", 'SET extra_float_digits = 0',
])
def test_odd_postgresql_session_settings(pg_engine, fetch_small, setting):
    table = make_table(pg_engine, 30)
    with Session(pg_engine) as session:
        session.connection().exec_driver_sql(setting)
        paths, kinds = export_paths('csv', {}, _values(session, table, 'stream_query'))
    assert_identical(paths)
    assert (TextRows in kinds) is ('German' not in setting)


TEXT = st.one_of(st.none(), st.text(
    alphabet=st.sampled_from('=+-@|%\t\r\n,;:"\'\\ 0123456789.eE ab\u2028\u2029\x85\x0b\x0c'
                             '\x1c\x1d\x1e'),
    max_size=10))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(TEXT, min_size=1, max_size=12),
       numbers=st.lists(st.one_of(st.none(), st.integers(-10**6, 10**6)), min_size=12,
                        max_size=12),
       options=st.sampled_from(CSV_DIALECTS))
def test_hypothesis_csv_paths_are_identical(any_engine, table, fetch_small, names, numbers,
                                            options):
    with Session(any_engine) as session:
        session.execute(delete(table))
        session.execute(insert(table), [
            {'id': i + 1, 'n': numbers[i], 'name': name,
             'day': BASE_DAY if i % 2 else None,
             'at': datetime.datetime(2024, 1, 2, 3, 4, i) if i % 3 else None}
            for i, name in enumerate(names)])
        session.flush()
        for shape in ('stream_query', 'stream_query_negative_first', 'result'):
            paths, _ = export_paths('csv', options, _values(session, table, shape))
            assert_identical(paths)
        session.rollback()


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({
    'a': st.one_of(st.none(), st.integers(-10**3, 10**3)), 'b': TEXT,
    'c': st.one_of(st.none(), st.integers(-99, 99))}), min_size=1, max_size=25),
    options=st.sampled_from(CSV_DIALECTS))
def test_generated_dicts_coalesced_or_not(rows, options):
    # a generator of dicts: quick (encoded in runs) or slow (one by one)
    paths, _ = export_paths('csv', options, lambda: list(rows))
    assert_identical(paths)


@pytest.mark.parametrize('adapter', [False, True])
@pytest.mark.parametrize('name', ['json', 'ndjson'])
def test_datetime_keys_agree_across_codecs(monkeypatch, name, adapter):
    pytest.importorskip('orjson')
    from tgstream.renderers import jsonrules

    offset = datetime.timezone(datetime.timedelta(hours=1, seconds=30))
    items = [{datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=offset): 1,
              datetime.time(1, 2, 3, 4): 2, 'n': datetime.datetime(2024, 1, 2)}] * 3
    adapters = ({datetime.datetime: lambda obj, request: obj.isoformat()}
                if adapter else {})
    orjson_paths, _ = export_paths(name, {}, lambda: list(items), make_registry(adapters))
    monkeypatch.setattr(jsonrules, 'orjson', None)
    stdlib_paths, _ = export_paths(name, {}, lambda: list(items), make_registry(adapters))
    fast, slow = assert_identical(orjson_paths), assert_identical(stdlib_paths)
    assert b'"2024-01-02T03:04:05+01:00:30"' in fast
    assert fast.replace(b',', b'').replace(b':', b'').replace(b' ', b'') == slow.replace(
        b',', b'').replace(b':', b'').replace(b' ', b'')


def _clean_rows(count):
    return [{'id': n, 'n': -n, 'name': 'user %d' % n, 'day': BASE_DAY} for n in range(count)]


@pytest.mark.parametrize('special_at', [0, 6, 7, 7 * 16, 7 * 17 + 3, 7 * 30 - 1])
@pytest.mark.parametrize('special', ['=1+1', 'a,b', 'x\u2028=1', -5])
@pytest.mark.parametrize('options', [{}, {'delimiter': ';'}, {'escapechar': '0'}], ids=repr)
def test_batch_edges_and_the_back_off_window(special_at, special, options):
    # the special row first, at a batch edge (runs of 7), inside and after
    # the 15 batches written without the verbatim check
    rows = _clean_rows(7 * 30)
    rows[special_at] = dict(rows[special_at], id=special, name=special)
    paths, _ = export_paths('csv', options, lambda: list(rows))
    assert_identical(paths)


def test_mixed_type_sqlite_columns(sqlite_engine):
    from sqlalchemy import column, func, table, text

    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql('CREATE TABLE mixed (id INTEGER PRIMARY KEY, v, w NUMERIC)')
        values = [1, '=1+1', -5, '-5', 2.5, None, b'bytes', '2024-01-02 03:04:05', '10', 'a;b']
        connection.execute(text('INSERT INTO mixed (v, w) VALUES (:v, :w)'),
                           [{'v': v, 'w': v} for v in values * 3])
    mixed = table('mixed', column('id'), column('v'), column('w'))
    for options in ({}, {'escapechar': '0'}, {'formula_guard': False}):
        with Session(sqlite_engine) as session:
            def make():
                return tgstream.stream_query(
                    session, select(mixed.c.v, mixed.c.id, mixed.c.w).order_by(mixed.c.id), 4)
            paths, kinds = export_paths('csv', options, make)
            assert_identical(paths)
            assert TupleRows in kinds
    for name in ('json', 'ndjson'):
        with Session(sqlite_engine) as session:
            def make():
                return session.execute(select(mixed.c.id, mixed.c.v, mixed.c.w).where(
                    func.typeof(mixed.c.v) != 'blob').order_by(mixed.c.id)
                    .execution_options(yield_per=5))
            paths, kinds = export_paths(name, {}, make)
            assert_identical(paths)
            assert TupleRows in kinds
