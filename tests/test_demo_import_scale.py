"""Demo import at scale (issue 18): no per-batch read of the growing table,
memory not a multiple of the upload."""
from __future__ import annotations

import json
import tracemalloc

import pytest
import webtest
from sqlalchemy import event

from tests.test_demo import demo_settings, new_users
from tgstream.demo import main
from tgstream.demo.views import imports


@pytest.mark.postgresql
def test_postgresql_import_does_not_read_the_table_per_batch(pg_engine):
    # Before: a SELECT ... WHERE name IN (...) per batch, planned inside the
    # importing transaction as a sequential scan of the whole (growing)
    # table -- quadratic, 2.5 s per 1000 rows. Now: one INSERT ... ON
    # CONFLICT DO NOTHING per batch, checked against the unique index.
    with pg_engine.connect() as conn:
        schema = conn.exec_driver_sql('SELECT current_schema()').scalar()
    url = pg_engine.url.set(query={'options': '-csearch_path=%s' % schema})
    app = main({}, **demo_settings(url.render_as_string(hide_password=False), **{
        'demo.import.max_bytes': '5000000', 'demo.import.batch': '100'}))
    engine = app.registry['dbengine']
    statements = []
    event.listen(engine, 'before_cursor_execute',
                 lambda conn, cur, stmt, *a: statements.append(stmt))
    try:
        testapp = webtest.TestApp(app)
        res = testapp.post('/users/import', upload_files=[('file', 'u.csv', new_users(2000))])
        assert json.loads(res.text.splitlines()[-1])['status'] == 'written'
        reads = [s for s in statements if s.lstrip().upper().startswith('SELECT')
                 and 'users' in s]
        # one count at the end, for the /live page's users button; none per batch
        assert [s.split()[1] for s in reads] == ['count(*)'], 'the import reads the users table per batch'
        inserts = [s for s in statements if s.lstrip().upper().startswith('INSERT')]
        assert len(inserts) == 20  # one per batch of 100
        # a name that exists: nothing is committed, the line is named
        statements.clear()
        again = new_users(3, start=1999)
        res = testapp.post('/users/import', upload_files=[('file', 'u.csv', again)])
        last = json.loads(res.text.splitlines()[-1])
        assert last['status'] == 'aborted' and 'line 2' in last['error']
        with engine.connect() as conn:
            assert conn.exec_driver_sql(
                "SELECT count(*) FROM users WHERE name LIKE 'new%%'").scalar() == 2000
    finally:
        engine.dispose()


def test_checking_an_upload_does_not_hold_every_row():
    data = new_users(20000)
    tracemalloc.start()
    try:
        assert imports.check_users(data) == 20000
        rows = sum(1 for _ in imports._users(data, seen=None))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 20000
    # before: a list of 20 000 row dicts, about 15x the upload
    assert peak < 3 * len(data), (peak, len(data))
