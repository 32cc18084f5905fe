"""The CSV formula guard holds for every dialect the csv renderer accepts.

The output is read back with csv.reader in the writer's own dialect, in the
excel dialect and with delimiter=';' (Excel's list separator in much of
Europe): no cell may begin with a formula trigger unless it begins with a
cell the guard judged (escaped with ' or a number).
"""
from __future__ import annotations

import csv
import enum
import io
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyramid.exceptions import ConfigurationError

from tgstream.renderers.csv import CSVEncoder
from tgstream.renderers.csvsafe import (
    BLANK_DELIMITERS,
    cell_text,
    guard_blank_row_start,
    guard_cell,
    guard_row,
    unsafe_dialect,
)


class Color(str, enum.Enum):
    BAD = '=cmd|\' /C calc\'!A0'
    SNEAKY = 'harmless'

    def __str__(self):  # what str() says differs from what csv writes
        return 'Color.' + self.name


class Liar(str):
    def __str__(self):
        return 'safe'


TEXT = st.text(alphabet='=+-@|%\t\r\n,;"\\\' ab1.', max_size=12)
CELL = st.one_of(
    TEXT, st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.none(),
    st.sampled_from([Color.BAD, Color.SNEAKY, Liar('=1+1'), Liar('x;=cmd')]),
)
DIALECT = st.fixed_dictionaries({
    'delimiter': st.sampled_from([',', ';', '\t', '|']),
    'lineterminator': st.sampled_from(['\r\n', '\n', '\r']),
    'quoting': st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    'escapechar': st.sampled_from([None, '\\']),
})


def write(rows, fmtparams):
    encoder = CSVEncoder(fmtparams=fmtparams)
    data = b''.join([encoder.encode(row) for row in rows]) + encoder.end()
    return data.decode('utf-8')


def guarded(row, delimiter=','):
    """What the csv renderer's guard makes of ``row`` for ``delimiter``."""
    row = guard_row(row)
    return guard_blank_row_start(row) if delimiter in BLANK_DELIMITERS else row


def judged_starts(rows, delimiter=','):
    """The texts the guard produced: a foreign reader's cell may begin with one."""
    starts = []
    for row in rows:
        for cell in guarded(row, delimiter):
            if cell is not None:
                starts.append(cell_text(cell))
    return [s for s in starts if s]


FORMULA_STARTS = '=+-@'


def assert_safe(cells, judged, reader_name, strip=''):
    # A foreign reader may glue or split cells; what must never happen is a
    # cell (after white space, quotes and separators a spreadsheet skips)
    # that starts a formula which is not the start of a cell the guard
    # judged (a number such as -5; escaped cells start with ').
    for cell in cells:
        text = cell.lstrip(strip + '\t\r\n\0')
        if not text or text[0] not in FORMULA_STARTS:
            continue
        # a number the guard lets through inside a cell (";-1"), as a reader
        # splitting there sees it: up to the writer's closing quote ('-1"')
        # or the next separator, where the guard judged the next segment
        # ('-1\t"', "-1,'=\"")
        number = re.split('[",;|\t\r\n]', text)[0].rstrip(' \0')
        if guard_cell(number) == number:
            continue
        assert any(text.startswith(j) for j in judged if j[0] == text[0]), (
            '%s reader sees a formula cell %r' % (reader_name, cell))


@settings(max_examples=300)
@given(rows=st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=4),
       fmtparams=DIALECT)
@example(rows=[[None, -1, ';']], fmtparams={  # a tab file: the line starts at -1
    'delimiter': '\t', 'lineterminator': '\r\n', 'quoting': csv.QUOTE_MINIMAL,
    'escapechar': None})
@example(rows=[['', '', ';-1']], fmtparams={  # a semicolon reader sees '-1"'
    'delimiter': ',', 'lineterminator': '\r\n', 'quoting': csv.QUOTE_MINIMAL,
    'escapechar': None})
@example(rows=[['', '', ''], ['', '', ';-1\t']], fmtparams={  # sees '-1\t"'
    'delimiter': ',', 'lineterminator': '\r\n', 'quoting': csv.QUOTE_MINIMAL,
    'escapechar': None})
@example(rows=[['', '', ''], ['', '', ';-1,=']], fmtparams={  # sees "-1,'=\""
    'delimiter': ',', 'lineterminator': '\r\n', 'quoting': csv.QUOTE_MINIMAL,
    'escapechar': None})
def test_every_reader_sees_only_judged_cells(rows, fmtparams):
    if fmtparams['quoting'] == csv.QUOTE_NONNUMERIC:
        # the writer's reader turns unquoted cells into floats
        pass
    text = write(rows, fmtparams)
    judged = judged_starts(rows, fmtparams['delimiter'])
    own = list(csv.reader(io.StringIO(text, newline=''), **{
        k: v for k, v in fmtparams.items() if k != 'quoting'}))
    assert len(own) == len(rows), 'a cell started a new row: %r' % text
    for read, row in zip(own, rows):
        # every cell comes back whole, as the text the guard judged
        expected = ['' if c is None else cell_text(c) for c in guarded(row, fmtparams['delimiter'])]
        assert read == expected, text
        for cell, value in zip(read, row):
            assert guard_cell(cell) == cell or isinstance(value, (int, float)), (
                'formula cell %r in %r' % (cell, text))
    delimiter = fmtparams['delimiter']
    for name, kwargs in (('excel', {}), ('semicolon', {'delimiter': ';'})):
        for read in csv.reader(io.StringIO(text, newline=''), **kwargs):
            assert_safe(read, judged, name, strip=delimiter)


def test_str_subclasses_are_judged_and_written_as_the_same_text():
    text = write([[Color.BAD, Liar('=1+1'), Color.SNEAKY]], {})
    # (the escaped pipe is a separator for some readers: the row is quoted)
    assert text == '"\'=cmd\\|\' /C calc\'!A0","\'=1+1","harmless"\r\n'


@pytest.mark.parametrize('cell, line', [
    ("x\r=cmd|' /C calc'!A0", '"x\r\'=cmd|\' /C calc\'!A0"\n'),
    ('x;=cmd', '"x;\'=cmd"\n'),
    ('x;-5', '"x;\'-5"\n'),
    ('x\n=1', '"x\n\'=1"\n'),
])
def test_line_breaks_and_separators_are_quoted(cell, line):
    assert write([[cell]], {'lineterminator': '\n'}) == line


@pytest.mark.parametrize('fmtparams, reason', [
    ({'quoting': csv.QUOTE_NONE, 'escapechar': '\\'}, 'QUOTE_NONE'),
    ({'doublequote': False, 'escapechar': '\\'}, 'doublequote'),
    ({'quotechar': "'"}, 'quotechar'),
    ({'lineterminator': ';'}, 'lineterminator'),
    ({'delimiter': '='}, 'delimiter'),
])
def test_unsafe_dialects_are_refused_while_the_guard_is_on(make_app, fmtparams, reason):
    assert reason in unsafe_dialect('excel', **fmtparams)

    def report(request):
        yield ['a']

    def setup(config, guard=True):
        config.add_route('r', '/r')
        config.add_view(report, route_name='r', stream=True, renderer='csv',
                        stream_options=dict(fmtparams, formula_guard=guard))

    with pytest.raises(ConfigurationError, match=r'report.*' + reason):
        make_app(setup)
    with pytest.raises(ConfigurationError, match=r'report.*' + reason):
        make_app(lambda c: setup(c, guard=None) if False else _setup_default(c, report, fmtparams))
    make_app(lambda c: setup(c, guard=False))  # the guard off: accepted
    make_app(lambda c: _setup_default(c, report, fmtparams),
             settings={'tgstream.csv.formula_guard': 'false'})


def _setup_default(config, report, fmtparams):
    config.add_route('r', '/r')
    config.add_view(report, route_name='r', stream=True, renderer='csv',
                    stream_options=dict(fmtparams))
