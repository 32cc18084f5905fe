"""The formula guard as a property (docs/security.rst, "The guard's property").

For every dialect the guard accepts, no cell of the file -- read back by
the writer's own dialect, by a ``;`` reader, by a ``,`` reader, and line by
line after ``str.splitlines()`` by each of those -- begins (after tabs and
carriage returns) with a formula starter ``= + - @`` unless it is made of
numbers only (digits, ``-``, ``.``, ``,``, quotes, the writer's delimiter:
no reference or function can be written with those). Escaped cells begin
with ``'``. Dialects it cannot make safe are refused with a
ConfigurationError naming the option.
"""
from __future__ import annotations

import csv
import decimal
import io

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyramid.exceptions import ConfigurationError

from tgstream.items import TupleRows
from tgstream.renderers.csv import CSVEncoder
from tgstream.renderers.csvsafe import LINE_BREAKS, NUMERIC_CHARS, unsafe_dialect

STARTERS = '=+-@'
ALPHABET = ('=+-@|%\t\r\n,;:"\'\\ 0123456789.eEaH()'
            '\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e')

TEXT = st.text(alphabet=st.sampled_from(ALPHABET), max_size=10)
CELL = st.one_of(
    TEXT, st.none(), st.integers(-10**6, 10**6),
    st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False),
    st.sampled_from(['-5', '-1,234.50', '5+HYPERLINK("x")', '=1+1', '-5,5+HYPERLINK("x")']),
)
DIALECT = st.fixed_dictionaries({
    'delimiter': st.sampled_from([',', ';', '\t', '|', ':', ' ', '!', '"', '\u2028', '\x0b']),
    'quotechar': st.sampled_from(['"'] * 5 + ["'"]),
    'escapechar': st.sampled_from([None, '\\', '0', '"', ':']),
    'lineterminator': st.sampled_from(['\r\n', '\n', '\r'] * 3 + ['\u2028']),
    'quoting': st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC] * 3
                               + [csv.QUOTE_NONE]),
    'doublequote': st.sampled_from([True] * 5 + [False]),
    'skipinitialspace': st.booleans(),
})


def violations(text: str, fmtparams: dict) -> list:
    """The cells some reader sees that begin a formula (see the module docstring)."""
    delimiter = fmtparams['delimiter']
    numeric = NUMERIC_CHARS | {'"', ' ', delimiter}
    own = {k: v for k, v in fmtparams.items() if k not in ('quoting', 'lineterminator')}
    readers = {'own': own, 'semicolon': {'delimiter': ';'}, 'comma': {'delimiter': ','}}
    found = []

    def check(name, rows):
        for row in rows:
            for cell in row:
                start = cell.lstrip('\t\r')
                if start[:1] in tuple(STARTERS) and not numeric.issuperset(start):
                    found.append((name, cell))

    for name, kwargs in readers.items():
        check(name, csv.reader(io.StringIO(text, newline=''), **kwargs))
        check(name + '-splitlines', csv.reader(text.splitlines(), **kwargs))
    return found


def write(rows, fmtparams, batch: bool) -> str:
    encoder = CSVEncoder(fmtparams=fmtparams, header=False)
    if batch:
        data = encoder.encode_batch(TupleRows([tuple(r) for r in rows],
                                              ['c%d' % i for i in range(len(rows[0]))]))
    else:
        data = b''.join(encoder.encode(row) for row in rows)
    return (data + encoder.end()).decode('utf-8')


@settings(max_examples=400, deadline=None)
@given(rows=st.integers(1, 4).flatmap(lambda width: st.lists(
    st.lists(CELL, min_size=width, max_size=width), min_size=1, max_size=4)),
    fmtparams=DIALECT, batch=st.booleans())
@example(rows=[['', -1, ':']], fmtparams={
    'delimiter': '\t', 'quotechar': '"', 'escapechar': None, 'lineterminator': '\r\n',
    'quoting': csv.QUOTE_MINIMAL, 'doublequote': True, 'skipinitialspace': False}, batch=False)
@example(rows=[['', -1, ':']], fmtparams={
    'delimiter': '\t', 'quotechar': '"', 'escapechar': None, 'lineterminator': '\r\n',
    'quoting': csv.QUOTE_MINIMAL, 'doublequote': True, 'skipinitialspace': False}, batch=True)
@example(rows=[[-5, '5+HYPERLINK("x")']], fmtparams={
    'delimiter': ',', 'quotechar': '"', 'escapechar': None, 'lineterminator': '\r\n',
    'quoting': csv.QUOTE_MINIMAL, 'doublequote': True, 'skipinitialspace': False},
    batch=False)
@example(rows=[['-5', '5+HYPERLINK("x")']], fmtparams={
    'delimiter': ',', 'quotechar': '"', 'escapechar': None, 'lineterminator': '\r\n',
    'quoting': csv.QUOTE_ALL, 'doublequote': True, 'skipinitialspace': False},
    batch=True)
@example(rows=[['a', 'b;-5', '5+HYPERLINK("x")']], fmtparams={
    'delimiter': ',', 'quotechar': '"', 'escapechar': None, 'lineterminator': '\r\n',
    'quoting': csv.QUOTE_MINIMAL, 'doublequote': True, 'skipinitialspace': False},
    batch=False)
@example(rows=[['x\u2028=1+1', 'y']], fmtparams={
    'delimiter': ',', 'quotechar': '"', 'escapechar': None, 'lineterminator': '\r\n',
    'quoting': csv.QUOTE_MINIMAL, 'doublequote': True, 'skipinitialspace': False},
    batch=True)
def test_no_reader_sees_a_formula(rows, fmtparams, batch):
    if unsafe_dialect('excel', **fmtparams) is not None:
        return  # refused (test_unsafe_dialects_are_refused)
    ACCEPTED.append(1)
    try:
        csv.writer(io.StringIO(), **fmtparams)
    except (TypeError, csv.Error):
        return
    text = write(rows, fmtparams, batch)
    assert violations(text, fmtparams) == [], text


ACCEPTED: list = []


def test_the_property_ran_on_accepted_dialects():
    # (after the property test, in file order): it was not vacuous
    assert len(ACCEPTED) >= 100


def test_the_line_breaks_are_those_of_splitlines():
    breaks = {chr(c) for c in range(0x3000) if len(('a%sb' % chr(c)).splitlines()) == 2}
    assert breaks == LINE_BREAKS


@pytest.mark.parametrize('fmtparams, option', [
    ({'delimiter': '"'}, 'delimiter'),
    ({'delimiter': '\u2028'}, 'delimiter'),
    ({'delimiter': '\x1e'}, 'delimiter'),
    ({'escapechar': '"'}, 'escapechar'),
    ({'delimiter': ':', 'escapechar': ':'}, 'escapechar'),
    ({'escapechar': '\x85'}, 'escapechar'),
])
def test_unsafe_dialects_are_refused(make_app, fmtparams, option):
    assert unsafe_dialect('excel', **fmtparams).startswith(option)

    def report(request):
        yield ['a']

    def setup(config):
        config.add_route('r', '/r')
        config.add_view(report, route_name='r', stream=True, renderer='csv',
                        stream_options=dict(fmtparams))

    with pytest.raises(ConfigurationError, match=r'report.*%s=' % option):
        make_app(setup)


@pytest.mark.parametrize('row, line', [
    # the first cell of a row starts what a ;-reader of a ,-file reads as one cell
    ([-5, '5+HYPERLINK("x")'], '\'-5,"5+HYPERLINK(""x"")"'),
    (['-5', 'a'], "'-5,a"),
    ([-5, 3, None, '-1.5'], '-5,3,,-1.5'),       # numbers only: left as they are
    ([decimal.Decimal('-1.25'), 'x'], "'-1.25,x"),
    ([1, -5, 'x'], '1,-5,x'),                      # not a first cell: a number
    (['x;-5', 'y'], '"x;\'-5","y"'),              # inside a cell: always escaped
    (['x\u2028=1+1', 'y'], '"x\u2028\'=1+1","y"'),  # splitlines() breaks the line there
])
def test_guarded_rows(row, line):
    assert write([row], {'lineterminator': '\n'}, batch=False) == line + '\n'
    assert write([row], {'lineterminator': '\n'}, batch=True) == line + '\n'
