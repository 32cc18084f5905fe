"""The JSON value rules (``tgstream.renderers.jsonrules``), through the
``json`` and ``ndjson`` renderers.

Every encoding test runs twice: with orjson (the ``fast`` extra) and with
the standard library alone (``json_impl`` fixture, tests/renderers/conftest.py).
"""
from __future__ import annotations

import datetime
import decimal
import enum
import json
import uuid

import pytest
from pyramid.renderers import JSON
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
    Uuid,
    create_engine,
    select,
)
from zope.interface import Interface, implementer

import tgstream
from tgstream.renderers import jsonrules
from tgstream.testing import open_stream


def add(config, name, view, renderer='json', **options):
    config.add_route(name, '/' + name)
    config.add_view(view, route_name=name, renderer=renderer, stream=True, **options)


def serve_items(make_testapp, items, renderer='json', setup=None, **options):
    """A test app whose view ``/v`` streams ``items`` with ``renderer``."""

    def view(request):
        yield from items

    def configure(config):
        if setup is not None:
            setup(config)
        add(config, 'v', view, renderer, **options)

    return make_testapp(configure)


def ndjson_lines(body: bytes) -> list:
    assert body == b'' or body.endswith(b'\n')
    return [json.loads(line) for line in body.splitlines()]


# -- encoding rules ------------------------------------------------------------


class WithJSON:
    def __init__(self, value):
        self.value = value

    def __json__(self, request):
        return {'value': self.value, 'path': request.path_info}


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


class IShape(Interface):
    pass


@implementer(IShape)
class Square:
    side = 3


def test_dunder_json_gets_the_request(make_testapp, json_impl):
    body = serve_items(make_testapp, [WithJSON(1), {'inner': WithJSON(2)}]).get('/v').body
    assert json.loads(body) == [{'value': 1, 'path': '/v'},
                                {'inner': {'value': 2, 'path': '/v'}}]


def test_adapters_of_the_apps_json_renderer(make_testapp, json_impl):
    def setup(config):
        renderer = JSON(adapters=[(Point, lambda obj, request: [obj.x, obj.y])])
        renderer.add_adapter(IShape, lambda obj, request: {'side': obj.side})
        config.add_renderer('json', renderer)

    app = serve_items(make_testapp, [Point(1, 2), {'s': Square()}], setup=setup)
    assert json.loads(app.get('/v').body) == [[1, 2], {'s': {'side': 3}}]


def test_renderer_registered_after_the_view_is_used(make_testapp, json_impl):
    def configure(config):
        add(config, 'v', lambda request: iter([Point(1, 2)]))
        config.add_renderer('json', JSON(adapters=[(Point, lambda o, r: o.x + o.y)]))

    assert json.loads(make_testapp(configure).get('/v').body) == [3]


def test_builtin_types_need_no_adapter(make_testapp, json_impl):
    value = {
        'datetime': datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
        'aware': datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        'date': datetime.date(2024, 5, 6),
        'time': datetime.time(7, 8, 9),
        'decimal': decimal.Decimal('12.3400'),
        'uuid': uuid.UUID('12345678-1234-5678-1234-567812345678'),
    }
    assert json.loads(serve_items(make_testapp, [value]).get('/v').body) == [{
        'datetime': '2024-05-06T07:08:09.123456',
        'aware': '2024-05-06T07:08:09+00:00',
        'date': '2024-05-06',
        'time': '07:08:09',
        'decimal': '12.3400',
        'uuid': '12345678-1234-5678-1234-567812345678',
    }]


def test_app_adapter_takes_precedence_over_builtins(make_testapp, json_impl):
    def setup(config):
        config.add_renderer('json', JSON(adapters=[
            (datetime.date, lambda obj, request: obj.strftime('%d/%m/%Y')),
            (uuid.UUID, lambda obj, request: obj.hex),
            (decimal.Decimal, lambda obj, request: float(obj)),
        ]))

    value = {'d': datetime.date(2024, 5, 6), 'dt': datetime.datetime(2024, 5, 6, 1, 2),
             'u': uuid.UUID(int=1), 'n': decimal.Decimal('1.5')}
    body = serve_items(make_testapp, [value], setup=setup).get('/v').body
    # the date adapter also covers datetime, a subclass of date
    assert json.loads(body) == [{'d': '06/05/2024', 'dt': '06/05/2024',
                                 'u': '0' * 31 + '1', 'n': 1.5}]


class Color(enum.Enum):
    RED = 1


class Moment(datetime.datetime):
    pass


class Key(uuid.UUID):
    pass


def test_adapters_for_subclasses_of_types_orjson_knows(make_testapp, json_impl):
    def setup(config):
        config.add_renderer('json', JSON(adapters=[
            (Color, lambda obj, request: obj.name.lower()),
            (Moment, lambda obj, request: 'moment'),
            (Key, lambda obj, request: 'key'),
        ]))

    items = [{'c': Color.RED, 'm': Moment(2024, 1, 1), 'k': Key(int=1),
              'plain': datetime.datetime(2024, 1, 1)}]
    assert json.loads(serve_items(make_testapp, items, setup=setup).get('/v').body) == [
        {'c': 'red', 'm': 'moment', 'k': 'key', 'plain': '2024-01-01T00:00:00'}]


def test_serializer_option_and_its_keyword_arguments(make_testapp):
    calls = []

    def serializer(value, default, **kw):
        calls.append(sorted(kw))
        return json.dumps(value, default=default, **kw)

    def setup(config):
        config.add_renderer('json', JSON(serializer=serializer, sort_keys=True))

    body = serve_items(make_testapp, [{'b': 1, 'a': WithJSON(2)}], setup=setup).get('/v').body
    assert body == b'[{"a": {"path": "/v", "value": 2}, "b": 1}]'
    assert calls == [['sort_keys']]


def test_indent_option_gives_valid_json_and_ndjson_stays_one_line(make_testapp, json_impl):
    def setup(config):
        config.add_renderer('json', JSON(indent=2))
        add(config, 'nd', lambda request: iter([{'a': [1, 2]}, {'b': 2}]), renderer='ndjson')

    app = serve_items(make_testapp, [{'a': [1, 2]}, {'b': 2}], setup=setup)
    body = app.get('/v').body
    assert b'\n  ' in body
    assert json.loads(body) == [{'a': [1, 2]}, {'b': 2}]
    assert ndjson_lines(app.get('/nd').body) == [{'a': [1, 2]}, {'b': 2}]


def test_orjson_falls_back_to_the_standard_library(make_testapp):
    pytest.importorskip('orjson')
    items = [{'big': 2 ** 70}, tgstream.Batch([2 ** 80, 1])]
    assert json.loads(serve_items(make_testapp, items).get('/v').body) == [
        {'big': 2 ** 70}, 2 ** 80, 1]


# -- SQLAlchemy rows and ORM objects --------------------------------------------------


@pytest.fixture
def typed_rows():
    """Core rows of a table with the usual column types (SQLite)."""
    metadata = MetaData()
    table = Table(
        'typed', metadata,
        Column('id', Integer, primary_key=True),
        Column('name', String(20)),
        Column('price', Numeric(10, 2)),
        Column('created', DateTime),
        Column('day', Date),
        Column('at', Time),
        Column('key', Uuid),
    )
    engine = create_engine('sqlite://')
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [
            {'id': n, 'name': 'n%d' % n, 'price': decimal.Decimal('%d.50' % n),
             'created': datetime.datetime(2024, 1, n, 12, 30), 'day': datetime.date(2024, 1, n),
             'at': datetime.time(n, 15), 'key': uuid.UUID(int=n)}
            for n in range(1, 4)
        ])
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.id)).all()
        narrow = conn.execute(select(table.c.id, table.c.name.label('label'))).all()
    engine.dispose()
    return rows, narrow


def expected_row(n):
    return {'id': n, 'name': 'n%d' % n, 'price': '%d.50' % n,
            'created': '2024-01-0%dT12:30:00' % n, 'day': '2024-01-0%d' % n,
            'at': '%02d:15:00' % n, 'key': str(uuid.UUID(int=n))}


def test_core_rows_are_objects_keyed_by_column(make_testapp, json_impl, typed_rows):
    rows, narrow = typed_rows
    items = [rows[0], rows[1]._mapping, {'nested': rows[2]}, tgstream.Batch(narrow)]
    body = serve_items(make_testapp, items).get('/v').body
    assert json.loads(body) == [
        expected_row(1), expected_row(2), {'nested': expected_row(3)},
        {'id': 1, 'label': 'n1'}, {'id': 2, 'label': 'n2'}, {'id': 3, 'label': 'n3'},
    ]


def test_batch_of_rows_with_nulls_first(make_testapp, json_impl):
    # Cell conversions are planned from a result's first row: a NULL there
    # must not leave later dates or decimals unconverted.
    metadata = MetaData()
    table = Table('t', metadata, Column('id', Integer, primary_key=True),
                  Column('created', DateTime), Column('price', Numeric(10, 2)))
    engine = create_engine('sqlite://')
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [
            {'id': 1, 'created': None, 'price': None},
            {'id': 2, 'created': datetime.datetime(2024, 2, 3), 'price': decimal.Decimal('9.99')},
        ])
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.id)).all()
        reversed_rows = conn.execute(select(table).order_by(table.c.id.desc())).all()
    engine.dispose()
    body = serve_items(make_testapp, [tgstream.Batch(rows), tgstream.Batch(reversed_rows)]).get('/v').body
    expected = [{'id': 1, 'created': None, 'price': None},
                {'id': 2, 'created': '2024-02-03T00:00:00', 'price': '9.99'}]
    assert json.loads(body) == expected + expected[::-1]


def test_batches_of_rows_from_several_results(make_testapp, json_impl, typed_rows):
    rows, narrow = typed_rows
    items = [tgstream.Batch([rows[0], narrow[0], rows[1], {'plain': 1}])]
    assert json.loads(serve_items(make_testapp, items).get('/v').body) == [
        expected_row(1), {'id': 1, 'label': 'n1'}, expected_row(2), {'plain': 1}]


def test_adapter_for_rows_takes_precedence(make_testapp, json_impl, typed_rows):
    from sqlalchemy.engine import Row

    rows, narrow = typed_rows

    def setup(config):
        config.add_renderer('json', JSON(adapters=[(Row, lambda row, request: list(row))]))

    body = serve_items(make_testapp, [tgstream.Batch(narrow), narrow[0]], setup=setup).get('/v').body
    assert json.loads(body) == [[1, 'n1'], [2, 'n2'], [3, 'n3'], [1, 'n1']]


def test_orm_instance_without_json_is_a_clear_error(make_app, tgstream_log, json_impl):
    from tests.dbapp import Note, User

    def view(request):
        yield User(id=1, name='a')         # has __json__
        yield tgstream.flush
        yield {'ok': True}
        yield Note(id=7, text='no __json__')

    app = make_app(lambda c: add(c, 'v', view))
    with open_stream(app, '/v') as response:
        assert json.loads(response.next_chunk() + b']') == [{'id': 1, 'name': 'a'}]
        with pytest.raises(tgstream.StreamEncodeError) as info:
            response.read()
    assert not response.body.endswith(b']')
    assert info.value.index == 2
    assert 'item 2 (tests.dbapp.Note)' in str(info.value)
    cause = str(info.value.__cause__)
    assert 'tests.dbapp.Note is an SQLAlchemy ORM instance' in cause
    assert '__json__(request)' in cause and 'add_adapter' in cause
    assert 'item 2 (tests.dbapp.Note)' in tgstream_log.text


def test_unencodable_first_item_reaches_exception_views(make_testapp, json_impl):
    # Before the first byte, an encoding error is a normal view error.
    def error_view(exc, request):
        request.response.status = 500
        return {'error': type(exc).__name__, 'index': exc.index}

    def setup(config):
        config.add_exception_view(error_view, context=tgstream.StreamEncodeError,
                                  renderer='json')

    app = serve_items(make_testapp, [object()], setup=setup)
    assert app.get('/v', status=500).json == {'error': 'StreamEncodeError', 'index': 0}


# -- mid-stream errors ---------------------------------------------------------------


class Unknown:
    pass


def test_error_mid_stream_leaves_the_array_unclosed(make_app, tgstream_log, json_impl):
    def view(request):
        yield {'n': 1}
        yield tgstream.Batch([{'n': 2}, {'n': 3}, Unknown(), {'n': 5}])

    app = make_app(lambda c: add(c, 'v', view))
    with open_stream(app, '/v') as response:
        with pytest.raises(tgstream.StreamEncodeError, match=r'item 3 \(tests.renderers.test_jsonrules.Unknown\)'):
            response.read()
    body = response.body
    assert body.startswith(b'[') and not body.endswith(b']')
    with pytest.raises(ValueError):
        json.loads(body)
    assert 'item 3 (tests.renderers.test_jsonrules.Unknown)' in tgstream_log.text


def test_failed_commit_keeps_the_closing_bracket_back(sqlite_engine, tgstream_log):
    # ``]`` is produced only after the transaction committed: a commit that
    # fails (here a unique constraint, checked at the final flush) cuts the
    # response before it.
    from tests.dbapp import User, build_db_app, count_users, seed_users

    seed_users(sqlite_engine, 2)

    def view(request):
        request.dbsession.add(User(id=10, name='user1'))  # duplicate name
        yield {'n': 1}
        yield tgstream.flush
        yield {'n': 2}

    app = build_db_app(sqlite_engine, lambda c: add(c, 'v', view))
    with open_stream(app, '/v') as response:
        with pytest.raises(Exception, match='UNIQUE'):
            response.read()
    assert response.body.startswith(b'[{') and not response.body.endswith(b']')
    assert count_users(sqlite_engine) == 2


def test_ndjson_one_document_per_line(make_testapp, json_impl, typed_rows):
    rows, narrow = typed_rows
    items = [{'a': 'line\nbreak'}, 'text', 3, None, [1, 2], narrow[0], WithJSON(5)]
    response = serve_items(make_testapp, items, 'ndjson').get('/v')
    assert response.content_type == 'application/x-ndjson'
    assert response.body.count(b'\n') == len(items)
    assert ndjson_lines(response.body) == [
        {'a': 'line\nbreak'}, 'text', 3, None, [1, 2], {'id': 1, 'label': 'n1'},
        {'value': 5, 'path': '/v'}]


# -- one rule for both encoders (issue 18) ----------------------------------------


class _Plain(enum.Enum):
    RED = 1
    BLUE = 'blue'


def _rule_items():
    import datetime as dt
    import uuid as uuid_

    return [
        {'color': _Plain.RED, 'other': _Plain.BLUE, 'list': [_Plain.RED]},
        {dt.date(2024, 1, 2): 1, dt.datetime(2024, 1, 2, 3, 4, 5): 2, dt.time(1, 2): 3},
        {uuid_.UUID(int=5): 'u', _Plain.RED: 'enum key', 7: 'int', None: 'none'},
        {'nested': [{dt.date(2020, 5, 6): [_Plain.BLUE]}]},
        # orjson would cut the offset's seconds (issue 22 #7)
        {dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1, seconds=30))):
         'offset with seconds'},
    ]


@pytest.mark.parametrize('renderer', ['json', 'ndjson', 'sse'])
def test_orjson_and_stdlib_give_identical_bytes(make_testapp, monkeypatch, renderer):
    pytest.importorskip('orjson')
    bodies = []
    for impl in ('orjson', 'stdlib'):
        if impl == 'stdlib':
            monkeypatch.setattr(jsonrules, 'orjson', None)
        bodies.append(serve_items(make_testapp, _rule_items(), renderer).get('/v').body)
    # The stdlib keeps json.dumps' own separators (", " and ": "): the same
    # documents, byte for byte once written compactly.
    fast, stdlib = bodies
    assert _compact(stdlib, renderer) == fast
    if renderer == 'ndjson':
        assert ndjson_lines(bodies[0])[0] == {'color': 1, 'other': 'blue', 'list': [1]}
        assert ndjson_lines(bodies[0])[1] == {
            '2024-01-02': 1, '2024-01-02T03:04:05': 2, '01:02:00': 3}


def _compact(body: bytes, renderer: str) -> bytes:
    def dump(text):
        return json.dumps(json.loads(text), separators=(',', ':'), ensure_ascii=False)

    if renderer == 'json':
        return dump(body).encode()
    if renderer == 'ndjson':
        return b''.join(dump(line).encode() + b'\n' for line in body.splitlines())
    return b''.join(b'data: ' + dump(part[6:]).encode() + b'\n\n'
                    for part in body.split(b'\n\n') if part)


def test_unencodable_keys_are_still_an_error(make_testapp, json_impl, tgstream_log):
    from decimal import Decimal

    app = serve_items(make_testapp, [{'a': 1}, {Decimal('1.5'): 'x'}], 'ndjson')
    with pytest.raises(tgstream.StreamEncodeError) as info:
        app.get('/v')
    assert isinstance(info.value.__cause__, TypeError)
