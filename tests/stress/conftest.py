"""Fixtures of the fault and load suite: a database (SQLite file or a
PostgreSQL schema of its own) and the stress app on a real server."""
from __future__ import annotations

import configparser
import contextlib
import dataclasses
import os
import uuid

import httpx
import pytest
import sqlalchemy

from tgstream.testing import serve, serve_gunicorn

from . import app as stress_app

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



def demo_server_settings() -> dict[str, int]:
    """The waitress settings of the demo's development.ini that matter for
    streams (the values the README recommends)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(ROOT, 'development.ini'))
    section = parser['server:main']
    return {name: int(section[name])
            for name in ('outbuf_high_watermark', 'channel_request_lookahead')}


#: waitress as the suite runs it: 8 threads, the demo's stream settings
WAITRESS = {'threads': 8, **demo_server_settings()}
POOL = {'pool_size': 5, 'max_overflow': 0}


@dataclasses.dataclass
class Database:
    kind: str
    url: str
    schema: str | None
    app_name: str

    def engine(self, **pool):
        return stress_app.create_engine(
            self.url, self.schema, self.app_name, **{**POOL, 'pool_timeout': 10, **pool})

    def env(self, **pool) -> dict[str, str]:
        pool = {**POOL, **pool}
        return {
            'STRESS_URL': self.url,
            'STRESS_SCHEMA': self.schema or '',
            'STRESS_APP_NAME': self.app_name,
            'STRESS_POOL_SIZE': str(pool['pool_size']),
            'STRESS_MAX_OVERFLOW': str(pool['max_overflow']),
        }

    def idle_in_transaction(self) -> int:
        """Sessions of the app PostgreSQL shows as 'idle in transaction'."""
        if self.kind != 'postgresql':
            return 0
        admin = sqlalchemy.create_engine(self.url)
        try:
            with admin.connect() as conn:
                return conn.scalar(sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                    "AND state LIKE 'idle in transaction%'"), {'name': self.app_name})
        finally:
            admin.dispose()


@pytest.fixture(params=['sqlite', 'postgresql'])
def database(request, tmp_path):
    app_name = 'tgstream-stress-' + uuid.uuid4().hex[:8]
    if request.param == 'sqlite':
        db = Database('sqlite', 'sqlite:///%s' % (tmp_path / 'stress.sqlite'), None, app_name)
    else:
        pg_engine = request.getfixturevalue('pg_engine')   # a schema of its own
        with pg_engine.connect() as conn:
            schema = conn.exec_driver_sql('SHOW search_path').scalar()
        db = Database('postgresql', str(pg_engine.url.render_as_string(hide_password=False)),
                      schema, app_name)
    engine = db.engine()
    stress_app.Base.metadata.create_all(engine)
    engine.dispose()
    return db


@contextlib.contextmanager
def running(kind: str, db: Database, settings=None, pool=None, **waitress):
    """The stress app on waitress (in-process) or gunicorn gthread (a
    subprocess); yields ``(url, engine, app)`` -- engine and app (the
    Diagnostics middleware) only in-process, else ``None``."""
    if kind == 'waitress':
        engine = db.engine(**(pool or {}))
        app = stress_app.make_app(engine, settings)
        try:
            with serve(app, **{**WAITRESS, **waitress}) as server:
                yield server.url, engine, app
        finally:
            engine.dispose()
    else:
        with serve_gunicorn('tests.stress.app:from_env()', threads=8, cwd=ROOT,
                            env=db.env(**(pool or {})), ready_path='/_diag/stats') as server:
            try:
                yield server.url, None, None
            except BaseException:
                print('gunicorn said:\n' + '\n'.join(server.output[-60:]))
                raise


def stats(url: str) -> dict:
    return httpx.get(url + '/_diag/stats', timeout=10).json()
