"""The formula guard in SQL (``tgstream.copysql``) is the csv renderer's:
cell for cell the same text as ``csvsafe.guard_cell``, and the COPY output
passes the csv renderer's oracle (tests/renderers/test_csv_dialects.py)."""
from __future__ import annotations

import csv
import io
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.renderers.test_csv_dialects import assert_safe
from tests.renderers.test_csvsafe import DANGEROUS, looks_numeric
from tgstream import copysql
from tgstream.renderers import csvsafe
from tgstream.renderers.csvsafe import guard_cell, guard_row

pytestmark = pytest.mark.postgresql


def _alphabet() -> str:
    rule = copysql.guard_rule()
    special = set(rule['prefixes'] | rule['separators'] | rule['lead'] | rule['starts'])
    return ''.join(sorted(special - {'\0'})) + 'ab1-5.,"\\\' '


# the characters the rule looks at, often; any text, sometimes (PostgreSQL
# text cannot hold NUL)
TEXTS = st.one_of(
    st.text(alphabet=_alphabet(), max_size=12),
    st.text(alphabet=st.characters(blacklist_characters='\0', blacklist_categories=('Cs',)), max_size=12),
)


@pytest.fixture(scope='module')
def pg(pg_url):
    import psycopg

    with psycopg.connect(pg_url.replace('+psycopg', ''), autocommit=True) as conn:
        yield conn


def sql_guard(pg, texts: list) -> list:
    query = 'SELECT %s FROM unnest(%%s::text[]) WITH ORDINALITY AS x(t, n) ORDER BY n' % (
        copysql.guard_sql('t'))
    return [row[0] for row in pg.execute(query, (texts,)).fetchall()]


CELLS = ['=1+1', "=cmd|' /C calc'!A0", '@SUM(A1:A9)', '+1', '-1e5', '-', '\tx', '\r=1',
         'x;=cmd', 'x, -5', '%0A', '-5', '-1,234.50', '-5\n', '5-', ' =1+1', '', 'a,,=b',
         ',=a', ';-5', 'x;-', 'x; "=1|2', 'a|b', '|=x', '-5;=1', 'x\u2028=1', None]


def test_known_cells(pg):
    assert sql_guard(pg, CELLS) == [None if c is None else guard_cell(c) for c in CELLS]


@settings(max_examples=300)
@given(st.lists(TEXTS, min_size=1, max_size=20))
@example(['-5,5+HYPERLINK("x")', 'x\x0b=1', 'x\u2029=1', 'x\x85=1', 'x\x1e=1'])
def test_same_cells_as_guard_cell(pg, texts):
    assert sql_guard(pg, texts) == [guard_cell(t) for t in texts]


def copy_text(pg, columns: list[list], delimiter=',', quote_all=False, guard=True) -> str:
    width = len(columns)
    import psycopg

    query = psycopg.ClientCursor(pg).mogrify(
        'SELECT * FROM unnest(%s) AS u(%s)' % (
            ', '.join(['%s::text[]'] * width), ', '.join('u%d' % i for i in range(width))),
        columns)
    sql = copysql.copy_sql(query, [25] * width, guard,
                           {'delimiter': delimiter, 'force_quote_all': quote_all})
    out = bytearray()
    with pg.cursor().copy(sql) as copy:
        for data in copy:
            out += data
    return out.decode('utf-8')


@settings(max_examples=150)
@given(rows=st.lists(st.lists(TEXTS | st.none(), min_size=3, max_size=3), min_size=1, max_size=4),
       # (no tab: a guarded tab-separated stream_copy takes the csv renderer's path)
       delimiter=st.sampled_from([',', ';', '|']), quote_all=st.booleans())
def test_every_reader_sees_only_judged_cells(pg, rows, delimiter, quote_all):
    """The csv renderer's oracle, on PostgreSQL's output."""
    text = copy_text(pg, [list(column) for column in zip(*rows)], delimiter, quote_all)
    guarded = [guard_row(row) for row in rows]  # (None stays None)
    own = list(csv.reader(io.StringIO(text, newline=''), delimiter=delimiter))
    assert len(own) == len(rows), 'a cell started a new row: %r' % text
    for read, row in zip(own, guarded):
        # every cell comes back whole, as the guard judged it (NULL: empty)
        assert read == ['' if c is None else c for c in row], text
        for cell in read:
            assert guard_cell(cell) == cell, 'formula cell %r in %r' % (cell, text)
            assert cell == '' or cell[0] not in DANGEROUS or looks_numeric(cell)
    judged = [c for row in guarded for c in row if c]
    for name, kwargs in (('excel', {}), ('semicolon', {'delimiter': ';'})):
        for read in csv.reader(io.StringIO(text, newline=''), **kwargs):
            assert_safe(read, judged, name, strip=delimiter)


def test_guard_off_is_copy_as_it_is(pg):
    assert copy_text(pg, [['=1', 'a;b']], guard=False) == '=1\na;b\n'


# -- other types: guarded as the text COPY writes (their output function) --------

TYPED = [
    # (SQL value, unguarded COPY text, guarded COPY text)
    ("'-1 day'::interval", '-1 days', '"\'-1 days"'),
    ("'1 day'::interval", '1 day', '"1 day"'),
    ("'ab'::char(4)", 'ab  ', '"ab  "'),
    ("'192.168.1.5'::inet", '192.168.1.5', '"192.168.1.5"'),
    ("'{\"a\": \"=1\"}'::jsonb", '"{""a"": ""=1""}"', '"{""a"": ""=1""}"'),
    ("ARRAY['=1', 'b']", '"{=1,b}"', '"{=1,b}"'),
    ("'-infinity'::date", '-infinity', "'-infinity"),
    ("'infinity'::timestamp", 'infinity', 'infinity'),
    ("'2024-01-02 03:04:05.5'::timestamp", '2024-01-02 03:04:05.5', '2024-01-02 03:04:05.5'),
    ("'-5.5'::numeric", '-5.5', '-5.5'),
    ("'-Infinity'::float8", '-Infinity', '-Infinity'),
    ('true', 't', 't'),
    ('NULL::text', '', ''),
    ("''::text", '""', '""'),
    ("'-$5.00'::money", '-$5.00', '"\'-$5.00"'),
]


@pytest.mark.parametrize('value, plain, guarded', [t for t in TYPED if t[1] is not None])
def test_other_types(pg, value, plain, guarded):
    pg.execute("SET lc_monetary = 'C'")
    query = 'SELECT %s AS v' % value
    oid = pg.execute(query + ' LIMIT 0').description[0].type_code
    for guard, expected in ((False, plain), (True, guarded)):
        out = bytearray()
        with pg.cursor().copy(copysql.copy_sql(query, [oid], guard, {})) as copy:
            for data in copy:
                out += data
        assert out.decode() == expected + '\n', (value, guard)


@pytest.mark.parametrize('first, others, expected', [
    ("-5", "'5+HYPERLINK(\"x\")'::text", '\'-5,"5+HYPERLINK(""x"")"'),
    ("-5", "'-7'::text, NULL::text, '1,5'::text", '-5,"-7",,"1,5"'),
    ("5", "'5+HYPERLINK(\"x\")'::text", '5,"5+HYPERLINK(""x"")"'),
    ("NULL::int", "'x'::text", ',"x"'),
    ("-5.5", "'2024-01-02'::date", '-5.5,2024-01-02'),
    ("-5.5", "'2024-01-02 03:04:05'::timestamp", "'-5.5,2024-01-02 03:04:05"),
])
def test_a_negative_first_cell_keeps_the_exemption_only_beside_numbers(pg, first, others, expected):
    """guard_row's first-cell rule: a reader splitting on ";" reads
    ``-5,5+HYPERLINK(...)`` as one cell starting with "-"."""
    query = 'SELECT %s AS a, %s' % (first, others)
    oids = [d.type_code for d in pg.execute(query + ' LIMIT 0').description]
    out = bytearray()
    with pg.cursor().copy(copysql.copy_sql(query, oids, True, {})) as copy:
        for data in copy:
            out += data
    assert out.decode() == expected + '\n'


def test_a_changed_rule_fails_loudly(monkeypatch):
    copysql.guard_rule.cache_clear()
    monkeypatch.setattr(csvsafe, '_INNER_FORMULA', re.compile(r'(?<=;)(=.*)'))
    try:
        with pytest.raises(RuntimeError, match='changed shape'):
            copysql.guard_rule()
    finally:
        copysql.guard_rule.cache_clear()
