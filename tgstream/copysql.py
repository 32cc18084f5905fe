"""The SQL of :func:`tgstream.stream_copy`: PostgreSQL's ``COPY ... TO
STDOUT`` around a statement, with the CSV formula guard computed in SQL.

The guard is the csv renderer's rule (:mod:`tgstream.renderers.csvsafe`),
built from that module's own constants and patterns -- the characters that
start a formula, the separators readers split on, the numeric exemption and
the rule for a formula after a separator inside a cell -- so there is one
definition of it. ``tests/test_copy_guard.py`` proves the SQL gives, cell for
cell, what :func:`~tgstream.renderers.csvsafe.guard_cell` gives.
"""
from __future__ import annotations

import csv
import functools
import re
from typing import Any, Sequence

from .renderers import csvsafe

#: Type oids whose text can never start a formula nor hold a separator, or
#: that the csv renderer never guards (numbers): written by COPY untouched.
#: int2, int4, int8, oid, float4, float8, numeric; bool; uuid; time, timetz.
UNGUARDED_TYPES = frozenset((21, 23, 20, 26, 700, 701, 1700, 16, 2950, 1083, 1266))
#: Text types whose value is the text COPY writes (no output function).
TEXT_TYPES = frozenset((25, 1043, 19))  # text, varchar, name
#: date, timestamp, timestamptz: digits first, but for ``-infinity``.
DATE_TYPES = frozenset((1082, 1114, 1184))


def sql_literal(text: str) -> str:
    """``text`` as a PostgreSQL escape string constant (``E'...'``), the same
    whatever ``standard_conforming_strings`` says."""
    if '\0' in text:
        raise ValueError('PostgreSQL text cannot contain NUL')
    return "E'%s'" % text.replace('\\', '\\\\').replace("'", "\\'")


def _regex_class(characters: Any, negate: bool = False) -> str:
    # A bracket expression of PostgreSQL's regular expressions (AREs), each
    # character as a \u escape (no character is special inside it). NUL is
    # left out: PostgreSQL text cannot hold it.
    chars = sorted(c for c in characters if c != '\0')
    escaped = ''.join('\\u%04x' % ord(c) if ord(c) < 0x10000 else '\\U%08x' % ord(c)
                      for c in chars)
    return '[%s%s]' % ('^' if negate else '', escaped)


def _python_class(text: str) -> frozenset:
    # The characters a Python bracket expression's content matches (the
    # classes of csvsafe's patterns are short lists of characters).
    # (they name characters below U+3000, or literally)
    pattern = re.compile('[%s]' % text)
    candidates = set(text) | set(map(chr, range(0x3000)))
    return frozenset(c for c in candidates if pattern.fullmatch(c))


_INNER_SHAPE = re.compile(
    r'\(\?<=\[(?P<separators>[^\]]*)\]\)'
    r'\(\[(?P<lead>[^\]]*)\]\*\)'
    r'\(\[(?P<starts>[^\]]*)\]\[\^(?P<segment_end>[^\]]*)\]\*\)'
)


@functools.lru_cache(maxsize=1)
def guard_rule() -> dict:
    """The parts of the csv renderer's guard, read from csvsafe: the
    characters that make a cell a formula (``prefixes``), the separators
    (``separators``), and for a formula inside a cell the separators it
    follows, the characters skipped before it (``lead``) and the characters
    that start it (``starts``); ``numeric``: the exemption's pattern.

    A ``RuntimeError`` when csvsafe's rule no longer has the shape this
    module turns into SQL (a change of the rule must be made here too)."""
    # csvsafe's own patterns (tgstream's, not another library's): read, not
    # copied, so that the rule has one definition
    inner_pattern = csvsafe._INNER_FORMULA.pattern  # noqa: SLF001
    numeric = csvsafe._NUMERIC.pattern  # noqa: SLF001
    inner = _INNER_SHAPE.fullmatch(inner_pattern)
    if inner is None or not re.fullmatch(r'[-?\[\]0-9,.+\\Z]*', numeric):
        raise RuntimeError(
            'tgstream.copysql: the csv formula guard of tgstream.renderers.csvsafe '
            'changed shape (_INNER_FORMULA %r, _NUMERIC %r); update guard_sql'
            % (inner_pattern, numeric))
    separators = _python_class(inner.group('separators'))
    if _python_class(inner.group('segment_end')) != separators:
        raise RuntimeError('tgstream.copysql: a segment of csvsafe._INNER_FORMULA no '
                           'longer ends at the separators it follows')
    return {
        'prefixes': frozenset(csvsafe.DANGEROUS_PREFIXES),
        'separators': frozenset(csvsafe.SEPARATORS) | separators,
        'inner_separators': separators,
        'lead': _python_class(inner.group('lead')),
        'starts': _python_class(inner.group('starts')),
        # csvsafe matches it at the start (re.match); \Z is the same in AREs
        'numeric': '^(?:%s)' % numeric,
    }


def guard_sql(text: str) -> str:
    """A SQL expression: the text expression ``text`` passed through the
    formula guard (what ``guard_cell`` returns for it; ``NULL`` stays
    ``NULL``). ``text`` is evaluated several times: make it a column.

    Cheap for the usual cell: the first character's code and one search for
    a formula start after a separator decide whether anything else runs."""
    rule = guard_rule()
    codes = ', '.join(str(ord(c)) for c in sorted(rule['prefixes']) if c != '\0')
    inner = sql_literal(_regex_class(rule['inner_separators']) + _regex_class(rule['lead'])
                        + '*' + _regex_class(rule['starts']))
    return 'CASE WHEN ascii(%s) IN (%s) OR %s ~ %s THEN %s ELSE %s END' % (
        text, codes, text, inner, _prefix_sql(_inner_sql(text)), text)


def _inner_sql(text: str) -> str:
    # A formula after a separator inside the cell: the cell is cut before
    # each separator; a piece that is a separator, lead characters and a
    # formula start gets a ' before the start, numbers too (issue 22: a
    # reader splitting there reads on past the segment) -- csvsafe's
    # _INNER_FORMULA and _escape_segment.
    rule = guard_rule()
    separators = _regex_class(rule['inner_separators'])
    before = separators + _regex_class(rule['lead']) + '*'
    return (
        "CASE WHEN {t} ~ {any} THEN (SELECT string_agg(CASE WHEN p ~ {formula} "
        "THEN regexp_replace(p, {head}, {mark}) "
        "ELSE p END, '' ORDER BY n) FROM regexp_split_to_table({t}, {cut}) "
        "WITH ORDINALITY AS tgstream_piece(p, n)) ELSE {t} END"
    ).format(
        t=text, any=sql_literal(separators),
        formula=sql_literal('^' + before + _regex_class(rule['starts'])),
        head=sql_literal('^(%s)' % before),
        mark=sql_literal("\\1'"), cut=sql_literal('(?=%s)' % separators),
    )


def _prefix_sql(text: str) -> str:
    # A cell starting with a formula character gets a ' and its pipes
    # escaped, unless it is numeric -- guard_cell's last step.
    rule = guard_rule()
    return (
        "(SELECT CASE WHEN tgstream_cell ~ {first} AND tgstream_cell !~ {numeric} "
        "THEN '''' || replace(tgstream_cell, '|', {pipe}) ELSE tgstream_cell END "
        "FROM (SELECT {t} AS tgstream_cell) AS tgstream_guarded)"
    ).format(first=sql_literal('^' + _regex_class(rule['prefixes'])),
             numeric=sql_literal(rule['numeric']), pipe=sql_literal('\\|'), t=text)


def _row_start_sql(cell: str, names: Sequence[str]) -> str:
    # guard_row's last step (csvsafe._guard_row_start): a first cell that
    # starts with "-" keeps the numeric exemption only when every other cell
    # is NULL or made of csvsafe.NUMERIC_CHARS (a reader splitting on ";"
    # reads "-5,5+HYPERLINK(...)" as one cell); otherwise it gets a '.
    expression, _, alias = cell.rpartition(' AS ')
    if not expression:  # an unguarded column, selected as it is
        expression, alias = cell, cell.rsplit('.', 1)[-1]
    first = '(%s)::text' % expression
    others = 'concat(%s)' % ', '.join('tgstream_q.' + name for name in names[1:])
    numeric = sql_literal('^%s*$' % _regex_class(csvsafe.NUMERIC_CHARS))
    return ("CASE WHEN %s LIKE '-%%' AND %s !~ %s THEN '''' || %s ELSE %s END AS %s"
            % (first, others, numeric, first, first, alias))


def quote_identifier(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


def copy_sql(query: str, types: Sequence[int], guard: bool, options: dict) -> str:
    """``COPY (SELECT ... FROM (query)) TO STDOUT WITH (FORMAT csv, ...)``.

    ``types``: the type oid of each column of ``query`` (selected by
    position, so duplicate names are fine). With ``guard``, every column
    whose type is not in :data:`UNGUARDED_TYPES` is put through
    :func:`guard_sql` (other types as the text of their output function, as
    COPY writes them) and quoted (``FORCE_QUOTE``: PostgreSQL cannot quote
    one row the way the csv renderer quotes a row holding a separator).
    ``options``: ``delimiter``, ``quote``, ``force_quote_all``.
    """
    names = ['c%d' % index for index in range(len(types))]
    cells = []
    guarded = []
    for name, oid in zip(names, types):
        column = 'tgstream_q.' + name
        if not guard or oid in UNGUARDED_TYPES:
            cells.append(column)
            continue
        if oid in DATE_TYPES:  # (a cast to text is the output function)
            cells.append("CASE WHEN %s = '-infinity' THEN %s ELSE %s::text END AS %s" % (
                column, sql_literal(csvsafe.guard_cell('-infinity')), column, name))
            continue
        guarded.append(name)
        if oid in TEXT_TYPES:
            cells.append('%s AS %s' % (guard_sql(column), name))
        else:  # concat(): the type's output function, what COPY writes
            cells.append('CASE WHEN %s IS NULL THEN NULL ELSE %s END AS %s' % (
                column, guard_sql('concat(%s)' % column), name))
    if guard and len(cells) > 1:
        cells[0] = _row_start_sql(cells[0], names)
    with_ = ['FORMAT csv', 'HEADER false']
    if options.get('delimiter', ',') != ',':
        with_.append('DELIMITER %s' % sql_literal(options['delimiter']))
    if options.get('quote', '"') != '"':
        with_.append('QUOTE %s' % sql_literal(options['quote']))
    if options.get('force_quote_all'):
        with_.append('FORCE_QUOTE *')
    elif guarded:
        with_.append('FORCE_QUOTE (%s)' % ', '.join(guarded))
    return 'COPY (SELECT %s FROM (%s) AS tgstream_q(%s)) TO STDOUT WITH (%s)' % (
        ', '.join(cells), query, ', '.join(names), ', '.join(with_))


#: csv quoting constants COPY can honour: QUOTE_MINIMAL (COPY's default) and
#: quoting every cell (FORCE_QUOTE *; PostgreSQL writes NULL unquoted).
_QUOTE_ALL = {csv.QUOTE_ALL} | ({csv.QUOTE_NOTNULL} if hasattr(csv, 'QUOTE_NOTNULL') else set())


def copy_options(dialect: Any, fmtparams: dict) -> tuple[dict, list]:
    """The COPY options for a csv renderer's ``dialect`` and format
    parameters, and the names of the options COPY cannot honour."""
    written = csv.writer(_NullFile(), dialect, **fmtparams).dialect
    refused = []
    options: dict[str, Any] = {}
    if len(written.delimiter.encode('utf-8')) == 1 and written.delimiter not in '\r\n':
        options['delimiter'] = written.delimiter
    else:
        refused.append('delimiter=%r (COPY takes one single-byte character)'
                       % written.delimiter)
    quote = written.quotechar
    if quote is not None and len(quote.encode('utf-8')) == 1 and quote != written.delimiter:
        options['quote'] = quote
    else:
        refused.append('quotechar=%r' % (quote,))
    if written.quoting in _QUOTE_ALL:
        options['force_quote_all'] = True
    elif written.quoting != csv.QUOTE_MINIMAL:
        refused.append('quoting=%r (COPY quotes as QUOTE_MINIMAL or every cell, '
                       'QUOTE_ALL)' % written.quoting)
    if not written.doublequote:
        refused.append('doublequote=False')
    if written.escapechar is not None:
        refused.append('escapechar=%r' % written.escapechar)
    if written.skipinitialspace:
        refused.append('skipinitialspace=True')
    if fmtparams.get('lineterminator', '\n') != '\n':
        refused.append("lineterminator=%r (COPY ends every line with '\\n')"
                       % fmtparams['lineterminator'])
    return options, refused


class _NullFile:
    def write(self, data: str) -> None:  # pragma: no cover - never written
        pass
