"""The measured failure: a header value waitress rejects must not leave the
stream's transaction open (PostgreSQL, waitress with 2 threads)."""
from __future__ import annotations

import gc
import time
import uuid

import httpx
import pytest
import sqlalchemy
from sqlalchemy import text, update

from tests.dbapp import User, build_db_app, seed_users

pytestmark = pytest.mark.live


def test_bad_header_then_two_writers_of_the_same_row(pg_engine, live):
    app_name = 'tgstream-i18-' + uuid.uuid4().hex[:8]
    engine = sqlalchemy.create_engine(
        pg_engine.url,
        connect_args={
            'options': '-csearch_path=%s' % _schema_of(pg_engine),
            'application_name': app_name,
        },
        pool_size=2, max_overflow=0, pool_timeout=5,
    )
    seed_users(engine)

    def writer(request):
        request.dbsession.execute(
            update(User).where(User.id == 1).values(name='w-' + uuid.uuid4().hex[:6]))
        request.response.headers['X-Echo'] = request.params.get('echo', 'ok')
        yield 'written\n'

    def setup(config):
        config.add_route('w', '/w')
        config.add_view(writer, route_name='w', stream=True)

    url = live(build_db_app(engine, setup), threads=2)
    gc.disable()  # the stream must be closed by tgstream, not by the collector
    try:
        with httpx.Client(timeout=10) as client:
            bad = client.get(url + '/w', params={'echo': 'a\r\nX-Evil: 1'})
            assert bad.status_code == 500
            started = time.monotonic()
            for _ in range(2):
                response = client.get(url + '/w')
                assert response.status_code == 200 and response.text == 'written\n'
            assert time.monotonic() - started < 8
        admin = sqlalchemy.create_engine(pg_engine.url)
        try:
            deadline = time.monotonic() + 5
            while True:
                with admin.connect() as conn:
                    idle = conn.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n "
                        "AND state LIKE 'idle in transaction%'"), {'n': app_name}).scalar()
                if idle == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert idle == 0, '%d session(s) left idle in transaction' % idle
        finally:
            admin.dispose()
    finally:
        gc.enable()
        gc.collect()  # (if the test failed: end the leaked transaction)
        engine.dispose()


def _schema_of(engine) -> str:
    with engine.connect() as conn:
        return conn.exec_driver_sql('SHOW search_path').scalar()
