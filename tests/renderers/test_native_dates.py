"""orjson formats the dates of checked batches of rows itself when the app's
rule for them is ``isoformat()`` -- and only where that writes exactly what
the app's adapter would (see ``OrjsonCodec.native_option``)."""
from __future__ import annotations

import datetime
import decimal
import uuid
import zoneinfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.renderers.test_batch_identity import Money, Stamp, request_for
from tgstream.items import ResultRows, TupleRows
from tgstream.renderers import jsonrules
from tgstream.renderers.json import JSONArrayEncoder
from tgstream.renderers.jsonrules import JSONEncoding

orjson = pytest.importorskip('orjson')

ISO = [(datetime.datetime, lambda obj, request: obj.isoformat())]
#: UTC offsets orjson writes to the minute: isoformat() writes the seconds
ODD = datetime.timezone(datetime.timedelta(hours=5, seconds=15))
LMT = zoneinfo.ZoneInfo('Europe/Amsterdam')  # +00:19:32 before 1937
KEYS = ['id', 'at', 'name']


def encoder_for(adapters):
    return JSONArrayEncoder(JSONEncoding(request_for(adapters)))


def one_by_one(adapters, rows):
    # each row as a dict, one dumps call each: the default hook, so the
    # app's adapter, sees every datetime
    encoder = encoder_for(adapters)
    return b''.join(encoder.encode(dict(zip(KEYS, row))) for row in rows) + encoder.end()


def as_tuples(adapters, rows, cut):
    encoder = encoder_for(adapters)
    keys = list(KEYS)
    return (encoder.encode_batch(TupleRows(rows[:cut], keys))
            + encoder.encode_batch(TupleRows(rows[cut:], keys)) + encoder.end())


def test_native_option_only_for_isoformat_adapters():
    def native(adapters):
        return JSONEncoding(request_for(adapters)).native_dates

    assert native(ISO)
    assert native(ISO + [(datetime.date, lambda obj, request: obj.isoformat())])
    # no date adapter at all: orjson formats every date natively anyway
    assert not native([])
    assert not native([(datetime.datetime, lambda obj, request: obj.isoformat() + 'Z')])
    assert not native(ISO + [(datetime.date, lambda obj, request: obj.strftime('%d/%m/%Y'))])
    assert not native([(datetime.datetime, lambda obj, request, *a: obj.isoformat())])
    # an adapter for a subclass: orjson hands subclasses to the default hook
    assert native(ISO + [(Stamp, lambda obj, request: obj.year)])


values = st.one_of(
    st.none(), st.integers(-10, 10), st.text(max_size=3), st.floats(allow_nan=False),
    st.datetimes(), st.datetimes(timezones=st.sampled_from(
        [datetime.timezone.utc, ODD, LMT, datetime.timezone(-datetime.timedelta(hours=3))])),
    st.dates(), st.times(), st.uuids(), st.decimals(places=2, allow_nan=False,
                                                   allow_infinity=False),
    st.datetimes().map(lambda d: Stamp(d.year, d.month, d.day)),
    st.integers(0, 100).map(Money), st.lists(st.datetimes(timezones=st.just(ODD)), max_size=2),
)
usual = st.tuples(st.integers(), st.datetimes(), st.text(max_size=4))
rows = st.lists(st.one_of(usual, st.tuples(values, values, values)), min_size=1, max_size=20)


@given(rows, st.integers(0, 20))
@example([(1, datetime.datetime(2024, 1, 1, tzinfo=ODD), 'x')], 0)
@example([(1, datetime.datetime(1900, 1, 1, tzinfo=LMT), 'x')], 1)
@example([(1, None, 'x'), (2, datetime.datetime(2024, 1, 1, tzinfo=ODD), 'y')], 0)
@example([(1, datetime.datetime(2024, 1, 1), 'x'), (2, 'text', [datetime.datetime(
    2024, 1, 1, tzinfo=ODD)])], 2)
def test_tuple_rows_write_what_the_adapter_writes(rows, cut):
    for adapters in (ISO, ISO + [(Money, lambda obj, request: obj.cents)]):
        assert as_tuples(adapters, rows, cut) == one_by_one(adapters, rows)


def test_checked_batches_are_native_and_others_are_not(monkeypatch):
    calls = []
    dumps = orjson.dumps

    def spy(value, default=None, option=None):
        calls.append(bool(option & orjson.OPT_PASSTHROUGH_DATETIME))
        return dumps(value, default, option)

    monkeypatch.setattr(jsonrules.orjson, 'dumps', spy)
    stamp = datetime.datetime(2024, 5, 6, 7, 8, 9, 10)

    def passthrough(rows):
        encoder = encoder_for(ISO)  # its codec captured the spy
        calls.clear()
        encoder.encode_batch(TupleRows(rows, list(KEYS)))
        return calls

    # naive datetimes, numbers, text: orjson formats the dates
    assert passthrough([(1, stamp, 'a'), (2, None, None)]) == [False]
    # an aware datetime is converted by isoformat(): still native
    assert passthrough([(1, stamp, 'a'), (2, stamp.replace(tzinfo=ODD), 'b')]) == [False]
    # a value that may hold a datetime orjson would write otherwise
    assert passthrough([(1, stamp, 'a'), (2, stamp, ['x'])]) == [True]
    assert passthrough([(1, stamp, {'at': stamp})]) == [True]
    assert passthrough([(1, stamp, decimal.Decimal('1.5')), (2, stamp, uuid.uuid4())]) == [False]


def test_result_rows_are_checked_too():
    from sqlalchemy import create_engine, text

    engine = create_engine('sqlite://')
    with engine.connect() as conn:
        result = conn.execute(text(
            "SELECT 1 AS id, 'x' AS name UNION ALL SELECT 2, 'y'"))
        got = result.all()
    encoder = encoder_for(ISO)
    assert encoder.encode_batch(ResultRows(got)) + encoder.end() == (
        b'[{"id":1,"name":"x"},{"id":2,"name":"y"}]')


class Note:
    """An object with __json__: its dicts are checked like dicts."""

    def __init__(self, data):
        self.data = data

    def __json__(self, request):
        return self.data


keys = st.one_of(st.sampled_from(KEYS), st.integers(0, 3),
                 st.dates(min_value=datetime.date(2024, 1, 1),
                          max_value=datetime.date(2024, 1, 3)))
dicts = st.lists(st.one_of(
    st.fixed_dictionaries({'id': st.integers(), 'at': st.datetimes()}),
    st.dictionaries(keys, values, max_size=3),
), min_size=1, max_size=12)


@given(dicts, st.integers(0, 12), st.booleans())
@example([{'id': 1, 'at': datetime.datetime(2024, 1, 1)},
          {'id': 2, 'at': datetime.datetime(2024, 1, 1, tzinfo=ODD)}], 0, False)
@example([{'id': 1, 'at': datetime.datetime(2024, 1, 1)},
          {'id': 2, 'at': [datetime.datetime(2024, 1, 1, tzinfo=LMT)]}], 0, True)
def test_dicts_write_what_the_adapter_writes(items, cut, objects):
    if objects:
        items = [Note(item) for item in items]
    encoder = encoder_for(ISO)
    expected = b''.join(encoder.encode(item) for item in items) + encoder.end()
    encoder = encoder_for(ISO)
    assert (encoder.encode_batch(items[:cut]) + encoder.encode_batch(items[cut:])
            + encoder.end()) == expected


def test_dicts_with_naive_datetimes_are_native(monkeypatch):
    calls = []
    dumps = orjson.dumps

    def spy(value, default=None, option=None):
        calls.append(bool(option & orjson.OPT_PASSTHROUGH_DATETIME))
        return dumps(value, default, option)

    monkeypatch.setattr(jsonrules.orjson, 'dumps', spy)
    stamp = datetime.datetime(2024, 5, 6, 7, 8, 9)

    def passthrough(items):
        encoder = encoder_for(ISO)
        calls.clear()
        encoder.encode_batch(items)
        return calls

    assert passthrough([{'at': stamp, 'n': 1}, {'at': None, 'n': 2.5}]) == [False]
    assert passthrough([Note({'at': stamp})] * 3) == [False]
    # no datetime in the first: nothing to gain, nothing checked
    assert passthrough([{'n': 1}, {'at': stamp}]) == [True]
    for other in (stamp.replace(tzinfo=ODD), [stamp], {'at': stamp}, Stamp(2024, 1, 1),
                  datetime.time(1, 2)):
        assert passthrough([{'at': stamp}, {'at': other}]) == [True], other
    # keys that are not str: made strings by string_keys (never formatted
    # by orjson, issue 22 #7), then one call for the batch again
    assert passthrough([{'at': stamp}, {1: stamp, stamp: 2}]) == [False, False]
