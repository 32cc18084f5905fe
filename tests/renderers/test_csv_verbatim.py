"""The csv renderer writes a batch whose cells need nothing (no quoting, no
guard) by joining them: exactly what the csv module writes, which still
writes every other batch."""
from __future__ import annotations

import csv
import datetime
import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tgstream.items import TupleRows
from tgstream.query import TextRows
from tgstream.renderers import csv as csv_renderer
from tgstream.renderers import csvsafe
from tgstream.renderers.csv import CSVEncoder, verbatim_text

DIALECTS = [
    {},
    {'delimiter': ';'},
    {'delimiter': '\t'},
    {'lineterminator': '\n'},
    {'escapechar': '\\'},
    {'dialect': 'excel-tab'},
    {'dialect': 'unix'},  # QUOTE_ALL: never verbatim
    {'quoting': csv.QUOTE_NONNUMERIC},
]

cell = st.one_of(
    st.none(), st.integers(-10 ** 20, 10 ** 20),
    st.text(alphabet='ab 1-=@+%|,;\t\r\n"\\\0é', max_size=5),
    st.text(alphabet='abcxyz0123456789._', max_size=8),
    st.sampled_from(['', ' lead', 'trail ', 'plain', '-5', 'a"b']),
)
batches = st.integers(1, 4).flatmap(
    lambda width: st.lists(st.tuples(*[cell] * width), min_size=1, max_size=12))


def encode(rows, options, guard, verbatim=True):
    options = dict(options)
    dialect = options.pop('dialect', 'excel')
    encoder = CSVEncoder(header=False, dialect=dialect, fmtparams=options,
                         guard=csvsafe.guard_row if guard else None)
    if not verbatim:
        encoder._verbatim = (None, None, None)
    return encoder.encode_batch(TupleRows(rows, ['c%d' % n for n in range(len(rows[0]))]))


@pytest.mark.parametrize('options', DIALECTS, ids=repr)
@pytest.mark.parametrize('guard', [True, False])
@given(batches)
@example([('a', 'b'), ('', None)])
@example([(None, None)])
@example([('',)])
def test_verbatim_is_what_the_csv_module_writes(options, guard, rows):
    if guard and csvsafe.unsafe_dialect(**options) is not None:
        return
    assert encode(rows, options, guard) == encode(rows, options, guard, verbatim=False)


def test_plain_batches_are_joined():
    rows = [('1', 'user 1', 'u1@example.com', None), ('2', 'user 2', 'u2@example.com', '')]
    special = csv_renderer._verbatim_special(csv.writer(io.StringIO()).dialect)
    assert verbatim_text(rows, special, ',', '\r\n') == (
        '1,user 1,u1@example.com,\r\n2,user 2,u2@example.com,\r\n')
    assert verbatim_text([(1, 'x'), (None, 'y')], special, ',', '\n') == (
        '1,x\n,y\n')
    assert verbatim_text([('2024-01-01', 'x', 1.5, True)], special, ',', '\n') == (
        '2024-01-01,x,1.5,True\n')


@pytest.mark.parametrize('options, rows', [
    # every cell is checked, integers and the text of dates included (issue 22 #3)
    ({'escapechar': '0'}, [(1, 10, 'a')]),
    ({'delimiter': ':'}, [('2024-01-02 03:04:05', 'a')]),
    ({'delimiter': ':'}, [(datetime.datetime(2024, 1, 2, 3, 4, 5), 'a')]),
    ({'formula_guard': False, 'delimiter': '-'}, [(2, -5, 'a')]),
])
def test_every_cell_is_checked_against_the_dialect(options, rows):
    options = dict(options)
    guard = options.pop('formula_guard', True)
    assert encode(rows, options, guard) == encode(rows, options, guard, verbatim=False)
    dialect = csv.writer(io.StringIO(), **options).dialect
    assert verbatim_text(rows, csv_renderer._verbatim_special(dialect),
                         dialect.delimiter, '\n') is None


@pytest.mark.parametrize('rows', [
    [('a,b', 'x')], [('a"b', 'x')], [('a\nb', 'x')], [('=1+1', 'x')], [(' a', 'x')],
    [('a;b', 'x')], [('a', 'x'), ('b',)], [('only',)], [(-1, 'x')], [(object(), 'x')],
    [(1, '-5')],
])
def test_anything_else_goes_to_the_csv_module(rows):
    special = csv_renderer._verbatim_special(csv.writer(io.StringIO()).dialect)
    assert verbatim_text(rows, special, ',', '\r\n') is None


def test_quoting_other_than_minimal_is_never_verbatim():
    for quoting in (csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, csv.QUOTE_NONE):
        writer = csv.writer(io.StringIO(), quoting=quoting, escapechar='\\')
        assert csv_renderer._verbatim_special(writer.dialect) is None
    writer = csv.writer(io.StringIO(), delimiter=' ', skipinitialspace=True)
    assert csv_renderer._verbatim_special(writer.dialect) is None


def test_text_rows_with_nulls():
    rows = TextRows([('1', 'a', None), (None, 'b', '2024-01-01')], ['i', 'n', 'd'],
                    frozenset({0, 2}))
    fast = CSVEncoder(header=False)
    slow = CSVEncoder(header=False)
    slow._verbatim = (None, None, None)
    assert fast.encode_batch(rows) == slow.encode_batch(rows) == b'1,a,\r\n,b,2024-01-01\r\n'


def test_after_a_batch_that_needs_the_csv_module_the_check_waits(monkeypatch):
    calls = []
    check = csv_renderer.verbatim_text

    def spy(*args):
        text = check(*args)
        calls.append(text is not None)
        return text

    monkeypatch.setattr(csv_renderer, 'verbatim_text', spy)
    plain, quoted = [('a', 'b')], [('a,1', 'b')]
    batches = [plain, quoted] + [plain] * (csv_renderer._VERBATIM_BACKOFF + 2)
    encoder = CSVEncoder(header=False)
    body = b''.join(encoder.encode_batch(TupleRows(rows, ['x', 'y'])) for rows in batches)
    # the same bytes, whichever wrote them
    assert body == b'a,b\r\n"a,1",b\r\n' + b'a,b\r\n' * (csv_renderer._VERBATIM_BACKOFF + 2)
    assert calls == [True, False, True, True]  # 15 batches without the check
