"""The demo app (``pserve development.ini``): every endpoint, through WebTest.

Each test builds the demo with ``tgstream.demo.main`` on a SQLite file of its
own (250 seeded users, no pauses) -- the same wiring ``development.ini``
gets, with pyramid_tm, pyramid_retry and zope.sqlalchemy really running.
"""
from __future__ import annotations

import csv
import io
import json
import logging

import pytest
import webtest
from pyramid.exceptions import ConfigurationError
from sqlalchemy import select

from tgstream.demo import main
from tgstream.demo.models import Permission, User
from tgstream.demo.routes import ENDPOINTS
from tgstream.testing import open_stream

SEEDED = 250
MAX_BYTES = 20_000


def demo_settings(url, **extra):
    settings = {
        'sqlalchemy.url': url,
        'demo.seed_users': str(SEEDED),
        'demo.pause': '0',
        'demo.import.max_bytes': str(MAX_BYTES),
        'demo.import.batch': '50',
    }
    settings.update(extra)
    return settings


@pytest.fixture
def db_url(tmp_path):
    return 'sqlite:///%s' % (tmp_path / 'demo.sqlite')


@pytest.fixture
def app(db_url):
    app = main({}, **demo_settings(db_url))
    yield app
    app.registry['dbengine'].dispose()


@pytest.fixture
def testapp(app):
    return webtest.TestApp(app)


def table_state(app, model=User):
    """(row count, every name) of a table, read outside any request."""
    with app.registry['dbengine'].connect() as conn:
        names = conn.execute(select(model.name).order_by(model.id)).scalars().all()
    return len(names), names


def count(app, model=User) -> int:
    return table_state(app, model)[0]


# -- startup -------------------------------------------------------------------

def test_first_start_seeds_with_a_log_line_and_never_reseeds(db_url, caplog):
    caplog.set_level(logging.INFO, logger='tgstream.demo')
    app = main({}, **demo_settings(db_url))
    assert count(app) == SEEDED
    assert 'seeded %d users' % SEEDED in caplog.text
    first = table_state(app)
    app.registry['dbengine'].dispose()

    caplog.clear()
    again = main({}, **demo_settings(db_url, **{'demo.seed_users': '400'}))
    assert table_state(again) == first
    assert 'already has users: not seeding' in caplog.text
    again.registry['dbengine'].dispose()


def test_seeding_can_be_turned_off(db_url):
    app = main({}, **demo_settings(db_url, **{'demo.seed_users': '0'}))
    assert count(app) == 0
    app.registry['dbengine'].dispose()


@pytest.mark.parametrize('key, value, message', [
    ('demo.pause', 'slow', "demo.pause = 'slow' is not valid"),
    ('demo.import.max_bytes', '0', "demo.import.max_bytes = '0' is not valid"),
    ('demo.seeds', '3', 'unknown setting(s) demo.seeds'),
])
def test_bad_demo_settings_are_named(db_url, key, value, message):
    with pytest.raises(ConfigurationError) as info:
        main({}, **demo_settings(db_url, **{key: value}))
    assert message in str(info.value)


@pytest.mark.postgresql
def test_postgresql_url_just_works(pg_engine):
    """``sqlalchemy.url = postgresql+psycopg://...``: seeded, exported and
    imported into (the sequence follows the seeded ids)."""
    with pg_engine.connect() as conn:
        schema = conn.exec_driver_sql('SELECT current_schema()').scalar()
    url = pg_engine.url.set(query={'options': '-csearch_path=%s' % schema})
    app = main({}, **demo_settings(url.render_as_string(hide_password=False)))
    try:
        testapp = webtest.TestApp(app)
        assert len(testapp.get('/users.json').json) == SEEDED
        res = post_upload(testapp, b'name,email\npg1,pg1@example.com\n')
        assert json.loads(res.text.splitlines()[-1])['status'] == 'written'
        assert count(app) == SEEDED + 1
    finally:
        app.registry['dbengine'].dispose()


# -- pages ---------------------------------------------------------------------

def test_index_explains_and_links_every_endpoint(app, testapp):
    res = testapp.get('/', status=200)
    assert res.content_type == 'text/html'
    for endpoint in ENDPOINTS:
        assert endpoint.pattern in res.text, endpoint
        assert endpoint.summary.split(' (')[0][:30] in res.text, endpoint
    links = {a.attrs['href'].split('?')[0] for a in res.html.find_all('a')}
    forms = {f.attrs['action'] for f in res.html.find_all('form')}
    for endpoint in ENDPOINTS:
        url = 'http://localhost' + endpoint.pattern
        assert url in (links if endpoint.method == 'GET' else forms), endpoint


def test_index_shows_a_curl_command_per_endpoint(testapp):
    text = testapp.get('/').text
    for command in ('curl -N -X POST http://localhost/tg/stream_write',
                    'curl -N -F file=@users.csv -F existing=update http://localhost/users/import',
                    'curl -N &#39;http://localhost/events?count=3&#39;',
                    'curl -N http://localhost/users.csv'):
        assert '<code>%s</code>' % command in text


def test_every_route_is_on_the_index(app):
    from pyramid.interfaces import IRoutesMapper

    routes = {r.name for r in app.registry.getUtility(IRoutesMapper).get_routes()}
    assert routes == {e.name for e in ENDPOINTS} | {'favicon'}  # the tab icon is no endpoint


def test_live_page_consumes_streams(testapp):
    res = testapp.get('/live', status=200)
    assert 'max="%d"' % SEEDED in res.text
    for needle in ("fetch('/users.ndjson')", "new EventSource('/events", 'getReader()',
                   "fetch('/users/import'"):
        assert needle in res.text


def test_pages_have_an_icon(testapp):
    """Browsers ask every page for /favicon.ico: no 404 in the log."""
    for page in ('/', '/live'):
        assert '<link rel="icon" href="/favicon.ico"' in testapp.get(page).text
    res = testapp.get('/favicon.ico', status=200)
    assert res.content_type == 'image/svg+xml' and res.body.startswith(b'<svg')


# -- TurboGears --------------------------------------------------------------

def test_tg_stream_list(testapp):
    res = testapp.get('/tg/stream_list', status=200)
    assert res.content_type == 'application/json'
    assert res.text == '[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]'
    assert res.json == list(range(1, 11))


def test_tg_stream_reads_the_request_inside_the_stream(testapp):
    res = testapp.get('/tg/stream', status=200)
    assert res.text.splitlines() == ['/tg/stream/%d' % n for n in range(1, 11)]


def test_tg_stream_db_reads_users_while_streaming(testapp):
    res = testapp.get('/tg/stream_db', status=200)
    assert res.json == ['user%06d' % n for n in range(1, 11)]


def test_tg_stream_write_commits_when_the_stream_ends(app, testapp):
    res = testapp.post('/tg/stream_write', status=200)
    assert res.text.splitlines()[:9] == ['added perm_%d' % n for n in range(9)]
    assert 'committed when this response ends' in res.text
    assert table_state(app, Permission) == (9, ['perm_%d' % n for n in range(9)])
    listed = testapp.get('/permissions', status=200).json
    assert [p['name'] for p in listed] == ['perm_%d' % n for n in range(9)]


def test_tg_stream_write_left_early_commits_nothing(app):
    with open_stream(app, '/tg/stream_write', method='POST') as response:
        assert response.next_chunk() == b'added perm_0\n'
    assert count(app, Permission) == 0


def test_post_only_routes_say_so(testapp):
    for path in ('/tg/stream_write', '/users/import'):
        res = testapp.get(path, status=405)
        assert res.headers['Allow'] == 'POST'
        assert 'takes a POST' in res.text


# -- CherryPy ------------------------------------------------------------------

def test_cherrypy_thing_not_found_before_the_stream(testapp):
    res = testapp.get('/cherrypy/thing', status=404)
    assert 'Hello' not in res.text


def test_cherrypy_thing(testapp):
    res = testapp.get('/cherrypy/thing', {'user': 'alice'}, status=200)
    assert res.headers['Content-Type'].startswith('text/plain')
    assert res.text == 'Hello, world'


def test_cherrypy_howto(testapp):
    res = testapp.get('/cherrypy/howto', status=200)
    assert res.text.splitlines() == [
        'First line. Sleeping 0 seconds ...',
        'Second line. Sleeping 0 seconds ...',
        'Third and last line',
    ]


# -- Flask ---------------------------------------------------------------------

def test_flask_large_csv(testapp):
    res = testapp.get('/flask/large.csv', {'rows': '5'}, status=200)
    assert res.content_type == 'text/csv'
    assert res.headers['Content-Disposition'].startswith('attachment')
    assert 'large.csv' in res.headers['Content-Disposition']
    rows = list(csv.reader(io.StringIO(res.text)))
    assert rows == [['n', 'label', 'square']] + [
        [str(n), 'row %d' % n, str(n * n)] for n in range(1, 6)
    ]


def test_flask_large_csv_default_size(testapp):
    res = testapp.get('/flask/large.csv', status=200)
    lines = res.body.splitlines()
    assert len(lines) == 100_001
    assert lines[-1] == b'100000,row 100000,10000000000'


@pytest.mark.parametrize('query', ['rows=many', 'rows=-1', 'rows=99999999999'])
def test_flask_large_csv_bad_rows_is_a_400(testapp, query):
    res = testapp.get('/flask/large.csv?' + query, status=400)
    assert '?rows=' in res.text and 'expected a whole number' in res.text


def test_flask_streamed_template(testapp):
    res = testapp.get('/flask/large_page.html', {'limit': '3'}, status=200)
    assert res.content_type == 'text/html'
    assert [td.text for td in res.html.select('tr td:nth-of-type(2)')] == [
        'user000001', 'user000002', 'user000003',
    ]
    assert res.text.rstrip().endswith('</html>')


def test_flask_hello_reads_params_in_the_stream(testapp):
    assert testapp.get('/flask/hello', {'name': 'Zoë'}).text == 'Hello Zoë!\n'
    assert testapp.get('/flask/hello').text == 'Hello World!\n'


# -- exports -------------------------------------------------------------------

def test_export_json(testapp):
    res = testapp.get('/users.json', status=200)
    assert res.content_type == 'application/json'
    assert 'attachment' in res.headers['Content-Disposition']
    assert 'users.json' in res.headers['Content-Disposition']
    users = res.json
    assert len(users) == SEEDED
    assert [u['id'] for u in users] == list(range(1, SEEDED + 1))
    assert set(users[0]) == {'id', 'name', 'fullname', 'email', 'joined'}
    assert users[0]['name'] == 'user000001'
    assert users[0]['joined'] == '2015-01-02'


def test_export_ndjson(testapp):
    res = testapp.get('/users.ndjson', status=200)
    assert res.content_type == 'application/x-ndjson'
    assert 'users.ndjson' in res.headers['Content-Disposition']
    users = [json.loads(line) for line in res.text.splitlines()]
    assert len(users) == SEEDED
    assert users[-1]['email'] == 'user%06d@example.com' % SEEDED


def test_export_csv(testapp):
    res = testapp.get('/users.csv', status=200)
    assert res.content_type == 'text/csv'
    assert 'users.csv' in res.headers['Content-Disposition']
    rows = list(csv.DictReader(io.StringIO(res.body.decode('utf-8'))))
    assert len(rows) == SEEDED
    assert list(rows[0]) == ['id', 'name', 'fullname', 'email', 'joined']
    assert {r['fullname'].split()[0] for r in rows} >= {'Zoë', 'Łukasz'}


def test_export_is_a_stream(app):
    """The export arrives in several writes, not as one buffered body."""
    with open_stream(app, '/users.ndjson') as response:
        first = response.next_chunk()
        assert first.startswith((b'{"id":1,', b'{"id": 1,'))
        response.read()
    assert len(response.body.splitlines()) == SEEDED


# -- import --------------------------------------------------------------------

def post_upload(testapp, data: bytes, **kw):
    return testapp.post('/users/import', upload_files=[('file', 'users.csv', data)], **kw)


def new_users(n: int, start: int = 1) -> bytes:
    lines = ['name,email,fullname,joined']
    lines += ['new%d,new%d@example.com,Néw Üser %d,2024-02-%02d' % (i, i, i, 1 + i % 28)
              for i in range(start, start + n)]
    return ('\n'.join(lines) + '\n').encode('utf-8')


def progress(res) -> list[dict]:
    assert res.content_type == 'application/x-ndjson'
    return [json.loads(line) for line in res.text.splitlines()]


def test_import_streams_progress_and_commits_every_row(app, testapp):
    res = post_upload(testapp, new_users(120), status=200)
    lines = progress(res)
    assert lines[0] == {'status': 'started', 'rows': 120, 'written': 0}
    assert [line['written'] for line in lines[1:-1]] == [50, 100, 120]
    assert lines[-1]['status'] == 'written' and lines[-1]['written'] == 120
    total, names = table_state(app)
    assert total == SEEDED + 120
    assert names[-1] == 'new120'
    exported = testapp.get('/users.json').json[-1]
    assert exported['fullname'] == 'Néw Üser 120' and exported['joined'] == '2024-02-09'


def test_import_takes_a_text_csv_body_too(app, testapp):
    res = testapp.post('/users/import', new_users(3), content_type='text/csv', status=200)
    assert progress(res)[-1]['written'] == 3
    assert count(app) == SEEDED + 3


def test_import_an_edited_export_ignores_ids(app, testapp):
    data = 'id,name,email\n999999,edited,edited@example.com\n'.encode()
    post_upload(testapp, data, status=200)
    exported = testapp.get('/users.json').json[-1]
    assert exported['name'] == 'edited' and exported['id'] == SEEDED + 1


def test_an_export_imports_back_with_existing_update(app, testapp):
    """The index's round trip: download users.csv, edit it (or not), import
    it with existing=update: the users are updated, none added."""
    exported = testapp.get('/users.csv').body
    edited = exported.replace(b'user000007@example.com', b'seven@example.net')
    res = testapp.post('/users/import', upload_files=[('file', 'users.csv', edited)],
                       params={'existing': 'update'}, status=200)
    lines = progress(res)
    assert lines[-1]['status'] == 'written' and lines[-1]['written'] == SEEDED
    assert count(app) == SEEDED
    users = {u['name']: u for u in testapp.get('/users.json').json}
    assert users['user000007']['email'] == 'seven@example.net'
    assert testapp.get('/users.csv').body == edited  # nothing else changed
    # without it, the first existing name aborts everything
    res = post_upload(testapp, exported, status=200)
    assert progress(res)[-1]['error'] == "line 2: a user named 'user000001' already exists"
    res = testapp.post('/users/import?existing=maybe', exported, content_type='text/csv',
                       status=400)
    assert "existing='maybe' is not valid" in res.text


def test_the_default_limit_takes_the_export_of_the_seeded_users(testapp):
    """demo.import.max_bytes (default) is above the export of the default
    number of seeded users, extrapolated from this one, with a margin."""
    from tgstream.demo.settings import DemoSettings

    defaults = DemoSettings()
    exported = len(testapp.get('/users.csv').body)
    assert exported / SEEDED * defaults.seed_users * 1.5 < defaults.import_max_bytes


BAD_FILES = [
    pytest.param('name,email\nJosé,jose@example.com\n'.encode('latin-1'),
                 'not UTF-8 text: byte 0xe9 at offset 14 (line 2)', id='wrong-encoding'),
    pytest.param(b'name,email\na,a@example.com\nb\nc,c@example.com\n',
                 'line 3 has 1 field(s) but the header has 2', id='ragged-short'),
    pytest.param(b'name,email\na,a@example.com,extra\n',
                 'line 2 has 3 field(s) but the header has 2', id='ragged-long'),
    pytest.param(b'name,email\n' + b'x' * 51 + b',x@example.com\n',
                 'line 2, column name: 51 characters; at most 50', id='oversized-field'),
    pytest.param(b'name,email\n"' + b'y' * 200_000 + b'",y@example.com\n',
                 'larger than %d bytes (setting demo.import.max_bytes)' % MAX_BYTES,
                 id='file-too-large'),
    pytest.param(b'name,email\n' + b'z,z@example.com\n' * 1600,
                 'larger than %d bytes (setting demo.import.max_bytes)' % MAX_BYTES,
                 id='file-slightly-too-large'),
    pytest.param(b'name\na\n', 'the header lacks the column(s) email', id='missing-column'),
    pytest.param(b'name,email,password\na,a@example.com,x\n', "unknown column 'password'",
                 id='unknown-column'),
    pytest.param(b'name,email,email\na,a@example.com,b\n', "column 'email' appears twice",
                 id='duplicate-column'),
    pytest.param(b'name,email,joined\na,a@example.com,yesterday\n',
                 "column joined: 'yesterday' is not a date", id='bad-date'),
    pytest.param(b'name,email\na,not-an-address\n', 'is not an e-mail address', id='bad-email'),
    pytest.param(b'name,email\na,a@example.com\na,b@example.com\n',
                 "line 3: name 'a' is also on line 2", id='duplicate-in-file'),
    pytest.param(b'name,email\n"a,a@example.com\n', 'is not valid CSV', id='unclosed-quote'),
    pytest.param(b'name,email\na\x00,a@example.com\n', 'column name: control character U+0000',
                 id='nul-byte'),
    pytest.param(b'name,email\n"a"b,c@example.com\n', 'line 2 is not valid CSV', id='stray-quote'),
    pytest.param(b'name,email\n', 'a header but no rows', id='no-rows'),
    pytest.param(b'', 'the file is empty', id='empty'),
]


@pytest.mark.parametrize('data, message', BAD_FILES)
def test_import_rejects_bad_files_before_writing(app, testapp, data, message):
    before = table_state(app)
    res = post_upload(testapp, data, status=400)
    assert res.content_type == 'text/plain'
    assert res.text.startswith('import rejected, nothing was written: ')
    assert message in res.text
    assert table_state(app) == before


def test_import_rejects_an_oversized_body_from_its_length(app, testapp):
    before = table_state(app)
    res = testapp.post('/users/import', b'name,email\n' + b'a' * MAX_BYTES,
                       content_type='text/csv', status=400)
    assert 'demo.import.max_bytes' in res.text
    assert table_state(app) == before


@pytest.mark.parametrize('kwargs, message', [
    ({'params': {'nofile': 'x'}, 'content_type': 'multipart/form-data'}, "no file: send the CSV as the multipart field 'file'"),
    ({'params': b'x', 'content_type': 'application/json'},
     "unsupported content type 'application/json'"),
])
def test_import_without_a_file_is_a_400(app, testapp, kwargs, message):
    before = table_state(app)
    res = testapp.post('/users/import', status=400, **kwargs)
    assert message in res.text
    assert table_state(app) == before


def test_import_conflict_mid_stream_commits_nothing_and_says_so(app, testapp):
    """Row 80 names an existing user: the first 50 rows were already
    written (flushed) when the second batch finds it; all are rolled back."""
    lines = new_users(120).decode().splitlines()
    lines[80] = 'user000005,dup@example.com,,'
    before = table_state(app)
    res = post_upload(testapp, ('\n'.join(lines) + '\n').encode(), status=200)
    report = progress(res)
    assert [line['status'] for line in report] == ['started', 'writing', 'aborted']
    assert report[1]['written'] == 50
    assert report[-1]['error'] == "line 81: a user named 'user000005' already exists"
    assert report[-1]['committed'] == 0
    assert table_state(app) == before


def test_import_left_early_commits_nothing(app):
    before = table_state(app)
    with open_stream(app, '/users/import', method='POST', body=new_users(200),
                     content_type='text/csv') as response:
        assert response.status_code == 200
        first = json.loads(response.next_chunk().splitlines()[0])
        assert first['status'] == 'started'
    assert table_state(app) == before


# -- server-sent events --------------------------------------------------------

def parse_events(text: str) -> list[dict]:
    events = []
    for block in text.split('\n\n'):
        fields: dict = {}
        for line in block.splitlines():
            if line and not line.startswith(':'):
                key, _, value = line.partition(':')
                fields[key] = value[1:] if value.startswith(' ') else value
        if fields:
            events.append(fields)
    return events


def test_events(testapp):
    res = testapp.get('/events', {'count': '3'}, status=200)
    assert res.content_type == 'text/event-stream'
    assert res.headers['Cache-Control'] == 'no-cache'
    assert res.headers['X-Accel-Buffering'] == 'no'
    events = parse_events(res.text)
    assert [(e['event'], e.get('id')) for e in events] == [
        ('tick', '1'), ('tick', '2'), ('tick', '3'), ('end', None),
    ]
    assert [json.loads(e['data'])['users'] for e in events[:3]] == [SEEDED] * 3
    assert json.loads(events[-1]['data']) == {'ticks': 3}


def test_events_bad_count_is_a_400(testapp):
    res = testapp.get('/events', {'count': 'lots'}, status=400)
    assert '?count=lots is not valid' in res.text


def test_the_demo_extra_installs_orjson(monkeypatch):
    """The demo's curl tour (docs/demo.rst) shows orjson's output: the demo extra has it."""
    import pathlib
    import runpy

    import setuptools

    extras = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kw: extras.update(kw['extras_require']))
    monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[1])
    runpy.run_path('setup.py')
    assert any(r.startswith('orjson') for r in extras['demo'])
