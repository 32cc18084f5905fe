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


def writer_app(engine):
    def writer(request):
        request.dbsession.execute(
            update(User).where(User.id == 1).values(name='w-' + uuid.uuid4().hex[:6]))
        request.response.headers['X-Echo'] = request.params.get('echo', 'ok')
        yield 'written\n'

    def setup(config):
        config.add_route('w', '/w')
        config.add_view(writer, route_name='w', stream=True)

    return build_db_app(engine, setup)


def make_gunicorn_app():
    """gunicorn's app factory (configured through the environment)."""
    import os

    engine = sqlalchemy.create_engine(os.environ['I18_PG_URL'], connect_args={
        'options': '-csearch_path=%s' % os.environ['I18_SCHEMA'],
        'application_name': os.environ['I18_APP_NAME'],
    })
    return writer_app(engine)


def idle_in_transaction(url, app_name, timeout=5.0) -> int:
    admin = sqlalchemy.create_engine(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with admin.connect() as conn:
                idle = conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :n "
                    "AND state LIKE 'idle in transaction%'"), {'n': app_name}).scalar()
            if idle == 0 or time.monotonic() > deadline:
                return idle
            time.sleep(0.05)
    finally:
        admin.dispose()


def test_gunicorn_bad_headers_leave_no_transaction_open(pg_engine):
    import os

    from tgstream.testing.servers import serve_gunicorn

    pytest.importorskip('gunicorn')
    app_name = 'tgstream-i18-' + uuid.uuid4().hex[:8]
    seed_users(pg_engine)
    env = {'I18_PG_URL': pg_engine.url.render_as_string(hide_password=False),
           'I18_SCHEMA': _schema_of(pg_engine), 'I18_APP_NAME': app_name}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with serve_gunicorn('tests.live.test_handover_wire:make_gunicorn_app()', threads=2,
                        env=env, cwd=root, ready_path='/w') as server:
        with httpx.Client(timeout=10) as client:
            for _ in range(3):
                try:
                    client.get(server.url + '/w', params={'echo': 'a\r\nX-Evil: 1'})
                except httpx.HTTPError:
                    pass  # gunicorn may drop the connection
            assert client.get(server.url + '/w').text == 'written\n'
        assert idle_in_transaction(pg_engine.url, app_name) == 0


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
    url = live(writer_app(engine), threads=2)
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
        idle = idle_in_transaction(pg_engine.url, app_name)
        assert idle == 0, '%d session(s) left idle in transaction' % idle
    finally:
        gc.enable()
        gc.collect()  # (if the test failed: end the leaked transaction)
        engine.dispose()


def _schema_of(engine) -> str:
    with engine.connect() as conn:
        return conn.exec_driver_sql('SHOW search_path').scalar()
