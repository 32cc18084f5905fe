"""Bad input, property-based: arbitrary items for every stream renderer,
and views that return non-iterables.

Every case ends in one of two ways, and the test knows in advance which:

- correct output: the whole body parses back to the items, the stream
  reports completed/committed and its database row exists;
- a clean abort: an exception (naming the item's index and type when it
  could not be encoded), a log line with the stream's facts, a body that
  never looks complete, an aborted transaction (no row) -- or, when the
  first item is already bad, a normal error response before any byte.

Never a hang (each example runs under a time bound), never a leaked
connection or thread-local request.
"""
from __future__ import annotations

import csv
import datetime
import decimal
import io
import itertools
import json
import logging
import math
import re
import sys
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from pyramid.threadlocal import manager
from sqlalchemy import func, select

from tests.dbapp import build_db_app
from tgstream.stream import StreamEncodeError
from tgstream.testing import open_stream, record_streams

from .app import Base, Row, create_engine

pytestmark = pytest.mark.slow

RENDERERS = ('raw', 'json', 'ndjson', 'csv', 'sse')
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
BOUND = 30.0   # seconds one example may take: anything longer is a hang


class Unencodable:
    def __repr__(self) -> str:
        return '<Unencodable>'


class WithJSON:
    def __init__(self, value):
        self.value = value

    def __json__(self, request):
        return {'value': self.value}


# -- the app -------------------------------------------------------------------


def stream_items(request):
    request.dbsession.add(Row(stream=request.environ['test.marker'], n=-1))
    if 'test.result' in request.environ:
        return request.environ['test.result']   # a non-iterable, as the view's value
    return iter(request.environ['test.items'])


def setup(config):
    for name in RENDERERS:
        config.add_route(name, '/' + name)
        config.add_view(stream_items, route_name=name, stream=True,
                        renderer=None if name == 'raw' else name)


@pytest.fixture(scope='module')
def engine(tmp_path_factory):
    path = tmp_path_factory.mktemp('bad-input') / 'db.sqlite'
    engine = create_engine('sqlite:///%s' % path)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope='module')
def app(engine):
    settings = {'tgstream.csv.formula_guard': 'false'}   # compare cells as written
    return build_db_app(engine, setup, settings)


markers = itertools.count(1)


def available(app, name: str) -> None:
    from tgstream.renderers import IStreamRendererFactory

    if name != 'raw' and app.registry.queryUtility(IStreamRendererFactory, name=name) is None:
        pytest.skip('the %r stream renderer is not registered (issue 5 not merged yet)' % name)


# -- running one case ------------------------------------------------------------


class Outcome:
    def __init__(self):
        self.status = None      # 'complete', 'cut' or 'refused' (before any byte)
        self.body = b''
        self.error: BaseException | None = None
        self.events = []
        self.logs: list[logging.LogRecord] = []
        self.row = False
        self.stack = 0


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


NOTHING = object()


def run_case(app, engine, path: str, items=(), result=NOTHING) -> Outcome:
    """Request ``path`` in-process on another thread, bounded by BOUND."""
    outcome = Outcome()
    marker = next(markers)
    handler = ListHandler()
    logger = logging.getLogger('tgstream')

    def case():
        environ = {'test.items': items, 'test.marker': marker}
        if result is not NOTHING:
            environ['test.result'] = result
        try:
            response = open_stream(app, path, environ=environ)
        except Exception as exc:
            outcome.status, outcome.error = 'refused', exc
        else:
            try:
                response.read()
                outcome.status = 'complete'
            except Exception as exc:
                outcome.status, outcome.error = 'cut', exc
            finally:
                outcome.body = response.body
                response.close()
        outcome.stack = len(manager.stack)

    logger.addHandler(handler)
    try:
        with record_streams(app) as streams:
            worker = threading.Thread(target=case, daemon=True)
            worker.start()
            worker.join(BOUND)
            assert not worker.is_alive(), 'hang: %s did not end within %ss' % (path, BOUND)
            outcome.events = streams.find()
    finally:
        logger.removeHandler(handler)
    outcome.logs = handler.records
    with engine.connect() as conn:
        outcome.row = bool(conn.scalar(
            select(func.count()).select_from(Row).where(Row.stream == marker)))
    assert engine.pool.checkedout() == 0, 'a connection leaked'
    assert outcome.stack == 0, 'a request was left on the thread'
    return outcome


def check(outcome: Outcome, encodable: bool, parse) -> None:
    """The invariants of every case (see the module docstring)."""
    hypothesis_event(outcome.status)   # (--hypothesis-show-statistics: how cases ended)
    if encodable:
        assert outcome.status == 'complete', outcome.error
        (event,) = outcome.events
        assert (event.outcome, event.transaction) == ('completed', 'committed')
        assert outcome.row
        parse(outcome.body)
        return
    assert outcome.status in ('cut', 'refused'), 'a bad item was sent as if it were fine'
    assert not outcome.row, 'the transaction of a failed stream was committed'
    if outcome.status == 'refused':
        # the first item: a normal error response, no stream ever started
        assert outcome.events == [] and outcome.body == b''
    else:
        (event,) = outcome.events
        assert (event.outcome, event.transaction) == ('error', 'aborted')
        (record,) = outcome.logs
        assert 'outcome=error transaction=aborted' in record.getMessage()
        assert record.exc_info[1] is outcome.error
    if isinstance(outcome.error, StreamEncodeError):
        assert re.search(r'item \d+ \(\S+\) could not be encoded', str(outcome.error))


# -- value strategies ------------------------------------------------------------

HUGE = st.sampled_from(['x' * 1_000_000, 'é\u2028' * 200_000, '\n' * 100_000 + '"'])
# one lone surrogate (a pair in one string would come back as one character)
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.text() | HUGE | SURROGATE
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
INTS = st.integers() | st.integers(min_value=-2 ** 100, max_value=2 ** 100)
JSONABLE_SCALARS = (st.none() | st.booleans() | INTS | FLOATS | TEXT
                    | st.datetimes() | st.dates() | st.decimals() | st.uuids())
UNENCODABLE = (st.binary(max_size=20) | st.builds(Unencodable) | st.builds(set)
               | st.complex_numbers(allow_nan=False, max_magnitude=10))


def containers(leaves):
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
        | st.builds(WithJSON, children),
        max_leaves=8,
    )


JSON_VALUES = containers(JSONABLE_SCALARS)
ANY_VALUES = containers(JSONABLE_SCALARS | UNENCODABLE)


SURROGATE_RE = re.compile('[\ud800-\udfff]')


def utf8_text(value) -> bool:
    """A str that UTF-8 can encode (no lone surrogate). JSON escapes those;
    text sent as it is (raw, CSV cells, SSE data) cannot carry them."""
    return not (isinstance(value, str) and SURROGATE_RE.search(value))


def is_encodable(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(is_encodable(v) for v in value)
    if isinstance(value, dict):
        return all(is_encodable(v) for v in value.values())
    if isinstance(value, WithJSON):
        return is_encodable(value.value)
    return not isinstance(value, (bytes, Unencodable, set, complex))


def as_json(value):
    """What ``value`` is after a JSON round trip under tgstream's rules."""
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, WithJSON):
        return {'value': as_json(value.value)}
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value


def same(parsed, expected) -> bool:
    """Equality where a non-finite float may also come back as null
    (orjson writes NaN and infinities as null, the standard library as
    NaN/Infinity, which Python's parser reads back)."""
    if isinstance(expected, float) and not math.isfinite(expected):
        return parsed is None or (isinstance(parsed, float) and (
            math.isnan(parsed) if math.isnan(expected) else parsed == expected))
    if isinstance(expected, list):
        return isinstance(parsed, list) and len(parsed) == len(expected) and all(
            same(p, e) for p, e in zip(parsed, expected))
    if isinstance(expected, dict):
        return isinstance(parsed, dict) and parsed.keys() == expected.keys() and all(
            same(parsed[k], expected[k]) for k in expected)
    return type(parsed) is type(expected) and parsed == expected


def expect_json(items):
    def parse(body):
        assert same(json.loads(body), as_json(list(items)))
    return parse


def expect_ndjson(items):
    def parse(body):
        lines = body.split(b'\n')
        assert lines.pop() == b''
        assert same([json.loads(line) for line in lines], as_json(list(items)))
    return parse


# -- the renderers -------------------------------------------------------------


@pytest.mark.parametrize('renderer, expect', [('json', expect_json), ('ndjson', expect_ndjson)])
@given(items=st.lists(ANY_VALUES, max_size=6))
@EXAMPLES
def test_json_and_ndjson(app, engine, renderer, expect, items):
    available(app, renderer)
    encodable = all(is_encodable(item) for item in items)
    outcome = run_case(app, engine, '/' + renderer, items)
    check(outcome, encodable, expect(items))
    if renderer == 'json' and not encodable:
        with pytest.raises(ValueError):
            json.loads(outcome.body)   # never a complete-looking array


SSE_LINE = re.compile('\r\n|\r|\n')


def expect_sse(items):
    def parse(body):
        blocks = body.decode('utf-8').split('\n\n')
        assert blocks.pop() == ''
        assert len(blocks) == len(items)
        for block, item in zip(blocks, items):
            data = '\n'.join(line[len('data: '):] for line in block.split('\n'))
            if isinstance(item, str):
                assert data == '\n'.join(SSE_LINE.split(item))
            else:
                assert same(json.loads(data), as_json(item))
    return parse


@given(items=st.lists(ANY_VALUES | st.binary(max_size=8), max_size=6))
@EXAMPLES
def test_sse(app, engine, items):
    available(app, 'sse')

    def sse_encodable(item):
        if isinstance(item, bytes):   # sent as UTF-8 text
            try:
                item.decode('utf-8')
            except UnicodeDecodeError:
                return False
            return True
        return is_encodable(item) and utf8_text(item)

    encodable = all(sse_encodable(item) for item in items)
    outcome = run_case(app, engine, '/sse', items)
    if encodable:
        items = [i.decode('utf-8') if isinstance(i, bytes) else i for i in items]
    check(outcome, encodable, expect_sse(items))


CELLS = st.none() | st.booleans() | INTS | FLOATS | TEXT | st.binary(max_size=8)
BAD_ROWS = (st.text(max_size=5) | st.binary(max_size=5) | st.integers() | st.none()
            | st.builds(Unencodable))


@st.composite
def csv_items(draw):
    """Rows of one width; sometimes one bad item: not a row, or ragged."""
    width = draw(st.integers(0, 4))
    rows = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width)
                         | st.tuples(*[CELLS] * width), max_size=5))
    if draw(st.booleans()):
        bad = draw(BAD_ROWS | st.lists(CELLS, min_size=width + 1, max_size=width + 2))
        rows.insert(draw(st.integers(0, len(rows))), bad)
    return rows


def csv_encodable(items) -> bool:
    """Sequences of cells, all as wide as the first, in UTF-8 text."""
    return (all(isinstance(item, (list, tuple)) for item in items)
            and len({len(item) for item in items}) <= 1
            and all(utf8_text(cell) for item in items for cell in item))


def cell_text(cell) -> str:
    return '' if cell is None else str(cell)


@given(items=csv_items())
@EXAMPLES
def test_csv(app, engine, items):
    available(app, 'csv')
    encodable = csv_encodable(items)

    def parse(body):
        csv.field_size_limit(sys.maxsize)   # huge cells
        rows = list(csv.reader(io.StringIO(body.decode('utf-8'), newline='')))
        assert rows == [[cell_text(c) for c in item] for item in items]

    check(run_case(app, engine, '/csv', items), encodable, parse)


@given(items=st.lists(TEXT | st.binary(max_size=20) | ANY_VALUES, max_size=6))
@EXAMPLES
def test_raw(app, engine, items):
    encodable = all(isinstance(item, (str, bytes)) for item in items)

    def parse(body):
        assert body == b''.join(i if isinstance(i, bytes) else i.encode('utf-8')
                                for i in items)

    encodable = encodable and all(utf8_text(item) for item in items)
    check(run_case(app, engine, '/raw', items), encodable, parse)


# -- views that return non-iterables ------------------------------------------


@pytest.mark.parametrize('renderer', RENDERERS)
@pytest.mark.parametrize('result', [None, 42, 'text', b'bytes', Unencodable(), 1.5])
def test_a_non_iterable_result_is_a_clear_error_before_any_byte(app, engine, renderer, result):
    available(app, renderer)
    outcome = run_case(app, engine, '/' + renderer, result=result)
    assert outcome.status == 'refused'
    assert isinstance(outcome.error, TypeError)
    message = str(outcome.error)
    returned = 'None' if result is None else type(result).__name__
    assert 'stream_items' in message and 'returned %s;' % returned in message
    assert outcome.events == [] and not outcome.row
