"""The ``csv`` stream renderer: header, quoting, dialects, rows, errors."""
from __future__ import annotations

import csv
import io

import pytest
from pyramid.exceptions import ConfigurationError
from sqlalchemy import select

import tgstream
from tgstream.testing import open_stream


def csv_app(make_testapp, items, settings=None, **options):
    def view(request):
        yield from items

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer='csv', stream=True, **options)

    return make_testapp(setup, settings)


def parse(body: bytes, **fmtparams) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode('utf-8'), newline=''), **fmtparams))


TRICKY = ['comma, inside', 'quote " inside', 'line\nbreak', 'crlf\r\nbreak', 'é 漢字 🎉', '', ' padded ']


def test_dict_items_header_from_first_keys(make_testapp):
    response = csv_app(make_testapp, [{'id': 1, 'name': 'a'}, {'id': 2, 'name': 'b'}]).get('/v')
    assert response.body == b'id,name\r\n1,a\r\n2,b\r\n'
    assert response.headers['Content-Type'] == 'text/csv; charset=utf-8'


def test_quoting_round_trips_through_the_csv_module(make_testapp):
    items = [{'n': n, 'text': text} for n, text in enumerate(TRICKY)]
    body = csv_app(make_testapp, items).get('/v').body
    assert b'"comma, inside"' in body and b'"quote "" inside"' in body
    assert parse(body) == [['n', 'text']] + [[str(n), text] for n, text in enumerate(TRICKY)]


def test_sequences_have_no_header_unless_columns_are_given(make_testapp):
    rows = [(1, 'a,b'), [2, None], (3, 4.5)]
    assert csv_app(make_testapp, rows).get('/v').body == b'1,"a,b"\r\n2,\r\n3,4.5\r\n'
    with_columns = csv_app(make_testapp, rows, stream_options={'columns': ['id', 'value']})
    assert parse(with_columns.get('/v').body) == [
        ['id', 'value'], ['1', 'a,b'], ['2', ''], ['3', '4.5']]


def test_columns_select_and_order_mapping_keys(make_testapp):
    items = [{'b': 2, 'a': 1, 'secret': 'x'}, {'a': 3}]
    app = csv_app(make_testapp, items, stream_options={'columns': ['a', 'b']})
    assert app.get('/v').body == b'a,b\r\n1,2\r\n3,\r\n'


def test_header_false_and_zero_items(make_testapp):
    app = csv_app(make_testapp, [{'a': 1}], stream_options={'header': False})
    assert app.get('/v').body == b'1\r\n'
    assert csv_app(make_testapp, []).get('/v').body == b''
    empty = csv_app(make_testapp, [], stream_options={'columns': ['a', 'b']})
    assert empty.get('/v').body == b'a,b\r\n'


def test_dialect_and_format_parameters(make_testapp):
    items = [{'a': 'x\ty', 'b': 'semi;colon'}]
    tab = csv_app(make_testapp, items, stream_options={'dialect': 'excel-tab'})
    assert parse(tab.get('/v').body, dialect='excel-tab') == [['a', 'b'], ['x\ty', 'semi;colon']]
    semi = csv_app(make_testapp, items, stream_options={
        'delimiter': ';', 'lineterminator': '\n', 'quoting': csv.QUOTE_ALL})
    assert semi.get('/v').body == b'"a";"b"\n"x\ty";"semi;colon"\n'

    class Pipes(csv.Dialect):
        delimiter = '|'
        quotechar = '"'
        lineterminator = '\n'
        quoting = csv.QUOTE_MINIMAL

    pipes = csv_app(make_testapp, items, stream_options={'dialect': Pipes, 'formula_guard': False})
    assert pipes.get('/v').body == b'a|b\nx\ty|semi;colon\n'


def test_bom_for_excel(make_testapp):
    app = csv_app(make_testapp, [{'a': 'é'}, {'a': 'b'}], stream_options={'bom': True})
    assert app.get('/v').body == '\ufeffa\r\né\r\nb\r\n'.encode('utf-8')


def test_download_name(make_testapp):
    app = csv_app(make_testapp, [{'a': 1}], stream_filename='users.csv')
    assert 'users.csv' in app.get('/v').headers['Content-Disposition']


def test_download_name_per_request(make_testapp):
    def view(request):
        request.response.content_disposition = tgstream.content_disposition(
            'export-%s.csv' % request.params['day'])
        yield {'a': 1}

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer='csv', stream=True)

    response = make_testapp(setup).get('/v?day=2024-01-02')
    assert 'export-2024-01-02.csv' in response.headers['Content-Disposition']


def test_formula_guard_applies_by_default_and_can_be_turned_off(make_testapp):
    items = [{'cell': '=HYPERLINK("http://x")', 'n': -5}]
    guarded = parse(csv_app(make_testapp, items).get('/v').body)[1]
    assert not guarded[0].startswith('=') and guarded[1] == '-5'
    raw = csv_app(make_testapp, items, stream_options={'formula_guard': False})
    assert parse(raw.get('/v').body)[1] == ['=HYPERLINK("http://x")', '-5']
    setting_off = csv_app(make_testapp, items, settings={'tgstream.csv.formula_guard': 'false'})
    assert parse(setting_off.get('/v').body)[1][0] == '=HYPERLINK("http://x")'


def test_sqlalchemy_rows_and_mappings(make_testapp, sqlite_engine):
    from tests.dbapp import User, seed_users

    seed_users(sqlite_engine, 3)
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(User.id, User.name).order_by(User.id)).all()
    items = [rows[0], rows[1]._mapping, tgstream.Batch(rows[2:])]
    assert csv_app(make_testapp, items).get('/v').body == (
        b'id,name\r\n1,user1\r\n2,user2\r\n3,user3\r\n')
    picked = csv_app(make_testapp, [tgstream.Batch(rows)], stream_options={'columns': ['name']})
    assert picked.get('/v').body == b'name\r\nuser1\r\nuser2\r\nuser3\r\n'


def test_batches_and_single_items_give_the_same_bytes(make_app):
    items = [{'n': n, 'text': TRICKY[n % len(TRICKY)]} for n in range(100)]

    def body(stream_items):
        def setup(config):
            config.add_route('v', '/v')
            config.add_view(lambda request: iter(stream_items), route_name='v',
                            renderer='csv', stream=True)

        with open_stream(make_app(setup), '/v') as response:
            return response.read()

    assert body(items) == body([tgstream.Batch(items[:7]), tgstream.Batch(items[7:])])


@pytest.mark.parametrize('items, message', [
    (['a string'], 'csv items must be mappings.*not builtins.str'),
    ([object()], 'not builtins.object'),
    ([{'a': 1}, {'a': 2, 'b': 3}], r"keys not in the header \['a'\]: \['b'\]"),
    ([{'a': 1, 'b': 2}, (3,)], 'csv row has 1 cells, the header has 2'),
    ([(1, 2), (3,)], 'csv row has 1 cells, the first row has 2'),
    ([(1, 2), {'a': 1}], 'csv item builtins.dict has named columns but the stream has no header'),
])
def test_bad_items_abort_the_stream(make_app, tgstream_log, items, message):
    def view(request):
        yield from items[:-1]
        yield tgstream.flush
        yield items[-1]

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer='csv', stream=True)

    app = make_app(setup)
    with pytest.raises(tgstream.StreamEncodeError) as info:
        with open_stream(app, '/v') as response:
            response.read()
    assert info.value.index == len(items) - 1
    with pytest.raises((TypeError, ValueError), match=message):
        raise info.value.__cause__


@pytest.mark.parametrize('options, message', [
    ({'columns': 'a,b'}, r"stream_options columns: 'a,b' is not a non-empty list of column names"),
    ({'columns': []}, 'columns'),
    ({'dialect': 'nope'}, r"dialect='nope'.*not a valid csv dialect"),
    ({'delimiter': 'ab'}, r'not a valid csv dialect'),
    ({'header': 'yes'}, r"header: 'yes' is not True or False"),
    ({'formula_guard': 0}, r'formula_guard: 0 is not True or False'),
    ({'encoding': 'latin-1'}, r"encoding: unknown stream option for renderer 'csv'"),
])
def test_bad_options_are_configuration_errors(make_app, options, message):
    def export(request):
        yield {'a': 1}

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(export, route_name='v', renderer='csv', stream=True,
                        stream_options=options)

    with pytest.raises(ConfigurationError, match=r'view tests.renderers.test_csv.*export.*' + message):
        make_app(setup)
