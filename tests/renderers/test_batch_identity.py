"""Encoding in batches gives the bytes of encoding item by item.

Items a view yields one by one are encoded in runs (one ``encode_batch``
call), the app's JSON adapters are applied to whole columns, and the CSV
formula guard works column by column: all of this must write exactly the
bytes of the per-item path, for every renderer, with orjson and with the
standard library alone.
"""
from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyramid.config import Configurator
from pyramid.renderers import JSON
from pyramid.testing import DummyRequest
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    select,
)

import tgstream
from tests.renderers.test_jsonrules import add
from tgstream.items import ResultRows
from tgstream.renderers import csvsafe
from tgstream.renderers.csv import CSVEncoder
from tgstream.renderers.json import JSONArrayEncoder, NDJSONEncoder
from tgstream.renderers.jsonrules import JSONEncoding
from tgstream.stream import StreamIterator
from tgstream.testing import open_stream


class Money:
    """No __dict__: an adapter for it applies per column."""

    __slots__ = ('cents',)

    def __init__(self, cents):
        self.cents = cents

    def __repr__(self):
        return '=M%d' % self.cents  # csv: judged by str(), a formula


class Tag:
    """Has a __dict__: each value goes through the adapter lookup."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return 'T' + self.text


class Stamp(datetime.datetime):
    """A datetime subclass: the built-in conversion, unless adapted."""


ADAPTERS = {
    'none': [],
    'datetime': [(datetime.datetime, lambda obj, request: obj.isoformat())],
    'date': [(datetime.date, lambda obj, request: 'D' + obj.isoformat())],
    'decimal': [(decimal.Decimal, lambda obj, request: float(obj))],
    'stamp': [(Stamp, lambda obj, request: obj.year)],
}
ALWAYS = [(Money, lambda obj, request: obj.cents / 100),
          (Tag, lambda obj, request: 'tag:' + obj.text)]

TZ = datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))
cells = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63), st.floats(allow_nan=False),
    st.text(max_size=6), st.sampled_from(['=1+1', '-5', '+5', '@a', '|x', '\tx', 'a,b', 'q"q']),
    st.datetimes(), st.datetimes(timezones=st.just(TZ)), st.dates(), st.times(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3), st.uuids(),
    st.integers(0, 10 ** 6).map(Money), st.text(max_size=3).map(Tag),
    st.datetimes().map(lambda d: Stamp(d.year, d.month, d.day, d.hour)),
)
KEYS = ('a', 'b', 'c')
json_items = st.lists(st.one_of(
    cells,
    st.fixed_dictionaries(dict.fromkeys(KEYS, cells)),
    st.lists(cells, max_size=3),
), max_size=30)
csv_rows = st.integers(1, 4).flatmap(
    lambda width: st.lists(st.lists(cells, min_size=width, max_size=width), max_size=30))


def request_for(adapters):
    config = Configurator()
    renderer = JSON()
    for cls, adapter in adapters + ALWAYS:
        renderer.add_adapter(cls, adapter)
    config.add_renderer('json', renderer)
    config.commit()
    request = DummyRequest()
    request.registry = config.registry
    return request


def one_by_one(encoder, items):
    return b''.join([encoder.encode(item) for item in items]) + encoder.end()


def in_batches(encoder, items, cut):
    return (encoder.encode_batch(items[:cut]) + encoder.encode_batch(items[cut:])
            + encoder.end())


ENCODERS = {
    'json': lambda request: JSONArrayEncoder(JSONEncoding(request)),
    'ndjson': lambda request: NDJSONEncoder(JSONEncoding(request, one_line=True)),
}


@pytest.mark.parametrize('adapters', sorted(ADAPTERS))
@pytest.mark.parametrize('renderer', sorted(ENCODERS))
def test_json_batches_are_byte_identical(json_impl, renderer, adapters):
    request = request_for(ADAPTERS[adapters])
    make = ENCODERS[renderer]

    @given(json_items, st.integers(0, 30))
    def check(items, cut):
        assert in_batches(make(request), items, cut) == one_by_one(make(request), items)

    check()


def rows_of_one_result(count):
    engine = create_engine('sqlite://')
    table = Table('t', MetaData(), Column('id', Integer), Column('name', String),
                  Column('at', DateTime), Column('amount', Numeric(10, 2)),
                  Column('score', Float))
    table.metadata.create_all(engine)
    names = ['=cmd', None, '-1,234.5', '', 'plain', '@x', 'é 漢字']
    with engine.begin() as conn:
        conn.execute(table.insert(), [
            {'id': n, 'name': names[n % len(names)],
             'at': None if n % 5 == 0 else datetime.datetime(2024, 1, 1, 0, 0, n % 60, n % 3),
             'amount': decimal.Decimal(n) / 4 if n % 4 else None, 'score': n / 7}
            for n in range(count)
        ])
        return conn.execute(select(table).order_by(table.c.id)).all()


ROWS = rows_of_one_result(200)


@pytest.mark.parametrize('adapters', sorted(ADAPTERS))
@pytest.mark.parametrize('renderer', ['json', 'ndjson', 'csv'])
@pytest.mark.parametrize('cut', [0, 1, 77])
def test_rows_of_one_result_are_byte_identical(json_impl, renderer, adapters, cut):
    request = request_for(ADAPTERS[adapters])
    make = ENCODERS.get(renderer, lambda request: CSVEncoder())
    expected = one_by_one(make(request), ROWS)
    assert in_batches(make(request), ROWS, cut) == expected
    # as stream_query and a returned Result give them
    encoder = make(request)
    batched = (encoder.encode_batch(ResultRows(ROWS[:cut]))
               + encoder.encode_batch(ResultRows(ROWS[cut:])) + encoder.end())
    assert batched == expected


@pytest.mark.parametrize('guard', [True, False])
@given(csv_rows, st.integers(0, 30))
def test_csv_batches_are_byte_identical(guard, rows, cut):
    def make():
        return CSVEncoder(guard=csvsafe.guard_row if guard else None)

    assert in_batches(make(), rows, cut) == one_by_one(make(), rows)


@given(csv_rows)
def test_guard_rows_is_guard_row_on_each_row(rows):
    assert [list(row) for row in csvsafe.guard_rows(rows)] == [
        csvsafe.guard_row(row) for row in rows]


def test_guard_rows_leaves_a_harmless_batch_as_it_is():
    rows = [[1, 'a', None, datetime.date(2024, 1, 1)], [2, 'b', 2.5, datetime.date(2024, 1, 2)]]
    assert csvsafe.guard_rows(rows) is rows
    assert csvsafe.guard_rows([[1, '=x'], [2, 'y']]) == [(1, "'=x"), (2, 'y')]


def test_a_failed_batch_leaves_the_csv_encoder_as_it_was():
    encoder = CSVEncoder()
    with pytest.raises(ValueError, match='csv row has 1 cells'):
        encoder.encode_batch([['a', 'b'], ['c']])
    assert encoder.encode(['a', 'b']) == b'a,b\r\n'


# -- through the stream: items yielded one by one -------------------------------------


def stream(make_app, view, renderer, **settings):
    app = make_app(lambda config: add(config, 'v', view, renderer),
                   settings={'tgstream.%s' % k: v for k, v in settings.items()})
    with open_stream(app, '/v') as response:
        response.read()
    return response


@pytest.mark.parametrize('renderer', ['json', 'ndjson', 'csv'])
def test_items_yielded_one_by_one_give_the_bytes_of_one_write_each(make_app, json_impl,
                                                                    renderer, monkeypatch):
    # every pull counts as fast: after the first fast_run items, one run
    monkeypatch.setattr(StreamIterator, 'fast_pull', 60.0)

    def view(request):
        yield from ROWS

    per_item = stream(make_app, view, renderer, chunk_size=1)
    runs = stream(make_app, view, renderer, flush_interval=60)
    assert len(per_item.chunks) >= len(ROWS)
    assert len(runs.chunks) < 5 + StreamIterator.fast_run
    assert b''.join(runs.chunks) == b''.join(per_item.chunks)


def test_a_failing_item_in_a_run_is_named_by_its_index(make_app, tgstream_log):
    def view(request):
        for n in range(300):
            yield {'n': n} if n != 250 else object()

    app = make_app(lambda config: add(config, 'v', view, 'ndjson'),
                   settings={'tgstream.flush_interval': 60})
    with open_stream(app, '/v') as response:
        with pytest.raises(tgstream.StreamEncodeError, match=r'item 250 \(builtins.object\)'):
            response.read()
    assert 'item 250 (builtins.object) could not be encoded' in tgstream_log.text
    lines = response.body.splitlines()
    assert lines == [b'{"n":%d}' % n for n in range(len(lines))]


def test_column_conversions_are_decided_once_per_class(json_impl):
    request = request_for(ADAPTERS['datetime'])
    encoding = JSONEncoding(request)
    assert encoding.conversion(int) is None and encoding.conversion(str) is None
    money = encoding.conversion(Money)
    assert money is not None and money(Money(250)) == 2.5
    assert encoding.conversion(Tag) is None  # instances may provide interfaces
    # the usual ``lambda obj, request: obj.isoformat()``: the C method itself
    assert encoding.conversion(datetime.datetime) is datetime.datetime.isoformat
    assert encoding.conversion(Stamp) is None or json_impl == 'stdlib'
    assert encoding.conversion(uuid.UUID) is (None if json_impl == 'orjson' else str)
    assert encoding.conversion(Money) is money  # cached


def test_stdlib_only_path_streams_rows(make_app, json_impl):
    def view(request):
        yield from ROWS[:3]

    body = stream(make_app, view, 'json').body
    assert body.startswith(b'[{"id"') and body.endswith(b'}]')
    assert tgstream.Batch  # the public name the runs are built on


def test_other_adapters_are_called_for_each_value(json_impl):
    calls = []

    def adapter(obj, request):
        calls.append(obj)
        return obj.isoformat()

    request = request_for([(datetime.datetime, adapter)])
    encoder = JSONArrayEncoder(JSONEncoding(request))
    stamps = [datetime.datetime(2024, 1, n) for n in range(1, 4)]
    assert encoder.encode_batch([{'at': at} for at in stamps]) == (
        b'[{"at":"2024-01-01T00:00:00"},{"at":"2024-01-02T00:00:00"},'
        b'{"at":"2024-01-03T00:00:00"}' if json_impl == 'orjson' else
        b'[{"at": "2024-01-01T00:00:00"}, {"at": "2024-01-02T00:00:00"}, '
        b'{"at": "2024-01-03T00:00:00"}')
    assert calls == stamps
