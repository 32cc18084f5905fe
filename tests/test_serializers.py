"""The ``json`` and ``ndjson`` stream renderers: framing and encoding rules.

Every encoding test runs twice: with orjson (the ``fast`` extra) and with
the standard library alone (``json_impl`` fixture).
"""
from __future__ import annotations

import datetime
import decimal
import enum
import json
import logging
import uuid

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid.renderers import JSON
from sqlalchemy import Date, DateTime, Integer, Numeric, String, Time, Uuid, create_engine
from sqlalchemy import Column, MetaData, Table, select
from zope.interface import Interface, implementer

import tgstream
from tgstream import jsonrules
from tgstream.testing import open_stream


@pytest.fixture(params=['orjson', 'stdlib'])
def json_impl(request, monkeypatch):
    """Run the test with orjson, then with the standard library alone."""
    if request.param == 'stdlib':
        monkeypatch.setattr(jsonrules, 'orjson', None)
    else:
        pytest.importorskip('orjson')
    return request.param


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


# -- JSON array framing ---------------------------------------------------------


def test_zero_items_give_an_empty_array(make_testapp, json_impl):
    response = serve_items(make_testapp, []).get('/v')
    assert response.body == b'[]'
    assert response.content_type == 'application/json'


def test_one_item(make_testapp, json_impl):
    assert json.loads(serve_items(make_testapp, [{'a': 1}]).get('/v').body) == [{'a': 1}]


def test_items_form_one_array_in_order(make_testapp, json_impl):
    items = [{'n': n, 'name': 'é ü 漢字 🎉', 'nested': {'list': [1, 2.5, None, True]}}
             for n in range(50)] + ['text', 3, None, [1, [2, [3]]]]
    body = serve_items(make_testapp, items).get('/v').body
    assert body.startswith(b'[') and body.endswith(b']')
    assert json.loads(body) == items


def test_view_may_set_another_content_type(make_testapp, json_impl):
    def view(request):
        request.response.content_type = 'application/vnd.api+json'
        yield {'a': 1}

    app = make_testapp(lambda c: add(c, 'v', view))
    assert app.get('/v').content_type == 'application/vnd.api+json'


def test_content_type_view_option(make_testapp):
    app = serve_items(make_testapp, [1], content_type='application/geo+json')
    assert app.get('/v').content_type == 'application/geo+json'


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
        with pytest.raises(tgstream.StreamEncodeError, match=r'item 3 \(tests.test_serializers.Unknown\)'):
            response.read()
    body = response.body
    assert body.startswith(b'[') and not body.endswith(b']')
    with pytest.raises(ValueError):
        json.loads(body)
    assert 'item 3 (tests.test_serializers.Unknown)' in tgstream_log.text


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


# -- coalescing and batches ----------------------------------------------------------


ITEMS = [{'n': n, 'text': 'x' * (n % 17), 'when': datetime.date(2024, 1, 1 + n % 28)}
         for n in range(2000)]


def stream_body(make_app, items, renderer='json', **settings):
    app = make_app(
        lambda c: add(c, 'v', lambda request: iter(items), renderer),
        settings={'tgstream.%s' % k: v for k, v in settings.items()},
    )
    with open_stream(app, '/v') as response:
        response.read()
    return response.chunks


@pytest.mark.parametrize('renderer', ['json', 'ndjson', 'csv'])
def test_coalescing_and_batches_keep_the_output_byte_identical(
    make_app, json_impl, renderer, monkeypatch
):
    # every pull counts as fast (a loaded machine cannot end a run early)
    monkeypatch.setattr(tgstream.StreamIterator, 'fast_pull', 60.0)
    one_by_one = stream_body(make_app, ITEMS, renderer, chunk_size=1)
    coalesced = stream_body(make_app, ITEMS, renderer, flush_interval=60)
    flushed = stream_body(make_app, [x for item in ITEMS for x in (item, tgstream.flush)],
                          renderer, flush_interval=60)
    batched = stream_body(
        make_app,
        [tgstream.Batch(ITEMS[:1]), tgstream.Batch([])]
        + [tgstream.Batch(ITEMS[n:n + 300]) for n in range(1, 2000, 300)],
        renderer, flush_interval=60,
    )
    body = b''.join(one_by_one)
    assert len(one_by_one) >= 2000
    assert len(coalesced) < 20 + tgstream.StreamIterator.fast_run
    assert b''.join(coalesced) == b''.join(flushed) == b''.join(batched) == body
    if renderer == 'json':
        assert json.loads(body) == [{**item, 'when': item['when'].isoformat()} for item in ITEMS]


def test_first_item_is_written_at_once(make_app, json_impl):
    chunks = stream_body(make_app, ITEMS, flush_interval=60)
    assert json.loads(chunks[0] + b']') == [{'n': 0, 'text': '', 'when': '2024-01-01'}]


def test_batch_counts_its_items(make_app):
    events = []

    def setup(config):
        config.add_subscriber(events.append, tgstream.StreamFinished)
        add(config, 'v', lambda request: iter(
            [tgstream.Batch([1, 2, 3]), 4, tgstream.Batch(iter([5, 6]))]))

    app = make_app(setup)
    with open_stream(app, '/v') as response:
        assert json.loads(response.read()) == [1, 2, 3, 4, 5, 6]
    assert events[0].items == 6
    assert repr(tgstream.Batch([1, 2])) == '<tgstream.Batch of 2 items>'


def test_batch_without_renderer_is_joined(make_testapp):
    def view(request):
        yield tgstream.Batch(['a', b'b'])
        yield 'c'

    app = make_testapp(lambda c: add(c, 'v', view, renderer=None))
    assert app.get('/v').body == b'abc'


# -- NDJSON ------------------------------------------------------------------------


def test_ndjson_one_document_per_line(make_testapp, json_impl, typed_rows):
    rows, narrow = typed_rows
    items = [{'a': 'line\nbreak'}, 'text', 3, None, [1, 2], narrow[0], WithJSON(5)]
    response = serve_items(make_testapp, items, 'ndjson').get('/v')
    assert response.content_type == 'application/x-ndjson'
    assert response.body.count(b'\n') == len(items)
    assert ndjson_lines(response.body) == [
        {'a': 'line\nbreak'}, 'text', 3, None, [1, 2], {'id': 1, 'label': 'n1'},
        {'value': 5, 'path': '/v'}]


def test_ndjson_zero_items_is_an_empty_body(make_testapp):
    assert serve_items(make_testapp, [], 'ndjson').get('/v').body == b''


def test_ndjson_serializer_writing_line_breaks_is_an_error(make_app, tgstream_log):
    def setup(config):
        config.add_renderer('json', JSON(serializer=lambda v, default, **kw: '{\n}'))
        add(config, 'v', lambda request: iter([{}]), renderer='ndjson')

    with pytest.raises(tgstream.StreamEncodeError) as info:
        open_stream(make_app(setup), '/v')
    assert 'one document per line' in str(info.value.__cause__)


def test_ndjson_error_marker(make_app, tgstream_log):
    def view(request):
        yield {'n': 1}
        yield tgstream.flush
        raise RuntimeError('secret detail')

    app = make_app(lambda c: add(c, 'v', view, renderer='ndjson',
                                 stream_options={'error_marker': True}))
    with open_stream(app, '/v') as response:
        assert json.loads(response.next_chunk()) == {'n': 1}
        with pytest.raises(RuntimeError):
            response.read()
    assert response.body.endswith(b'\n{"error":"stream failed"}\n')
    assert b'secret' not in response.body


# -- configuration errors ------------------------------------------------------------


@pytest.mark.parametrize('renderer, options, message', [
    ('json', {'columns': ['a']}, r"view .*counting.*stream_options columns: unknown stream option for renderer 'json'"),
    ('ndjson', {'error_marker': 'yes'}, r"view .*counting.*error_marker: 'yes' is not True or False"),
    ('ndjson', {'indent': 2, 'x': 1}, r'stream_options indent, x: unknown stream options'),
])
def test_bad_stream_options_name_the_view_and_option(make_app, renderer, options, message):
    def counting(request):
        yield 1

    with pytest.raises(ConfigurationError, match=message):
        make_app(lambda c: add(c, 'v', counting, renderer, stream_options=options))


@pytest.mark.parametrize('renderer', ['json', 'ndjson', 'sse'])
def test_json_renderer_that_is_not_pyramids_json_is_refused(make_app, renderer):
    def counting(request):
        yield 1

    def setup(config):
        config.add_renderer('json', lambda info: lambda value, system: 'custom')
        add(config, 'v', counting, renderer)

    with pytest.raises(ConfigurationError, match=r"counting.*renderer '%s' encodes with the rules "
                       r"of the app's 'json' renderer.*not a pyramid.renderers.JSON" % renderer):
        make_app(setup)


def test_renderer_that_cannot_stream_names_view_and_renderer(make_app):
    def counting(request):
        yield 1

    with pytest.raises(ConfigurationError, match=r"counting.*renderer 'string' cannot stream.*csv, json, ndjson, sse"):
        make_app(lambda c: add(c, 'v', counting, 'string'))


def test_view_config_and_expose_work_with_stream_renderers(make_testapp):
    app = make_testapp(lambda config: config.include('tests.pkgs.renderersapp'))
    assert app.get('/view_config').body == b'1\n2\n'
    assert json.loads(app.get('/expose').body) == [{'n': 1}, {'n': 2}]
    assert app.get('/expose_csv').text == 'n\r\n1\r\n'


def test_log_names_the_failed_type_and_index(make_app, caplog):
    caplog.set_level(logging.ERROR, logger='tgstream')

    def view(request):
        yield 1
        yield tgstream.flush
        yield 2
        yield {1, 2}  # a set

    app = make_app(lambda c: add(c, 'v', view))
    with open_stream(app, '/v') as response:
        with pytest.raises(tgstream.StreamEncodeError):
            response.read()
    text = caplog.text
    assert 'item 2 (builtins.set) could not be encoded' in text
