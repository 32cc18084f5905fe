"""Shared fixtures: apps built with real Pyramid, servers on 127.0.0.1.

``make_app(setup, settings=None, includes=('tgstream',))`` builds a WSGI app:
``setup(config)`` adds routes and views. ``testapp`` wraps such an app in
WebTest; ``live`` (from ``tgstream.testing``) serves it on waitress.
"""
from __future__ import annotations

import logging
import os

import pytest
import webtest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from pyramid.config import Configurator
from pyramid.threadlocal import manager

# the testing kit's fixtures: tgstream_server, tgstream_recorder
pytest_plugins = ['tgstream.testing']

# hypothesis is a test dependency (the testing extra). No per-example
# deadline: on a loaded two-core CI machine a deadline is a timing assertion
# in disguise. Speed belongs in benchmarks/.
hypothesis_settings.register_profile(
    'tgstream', deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile('tgstream')


def build_app(setup=None, settings=None, includes=('tgstream',)):
    with Configurator(settings=dict(settings or {})) as config:
        for name in includes:
            config.include(name)
        if setup is not None:
            setup(config)
        return config.make_wsgi_app()


@pytest.fixture
def make_app():
    return build_app


@pytest.fixture
def make_testapp():
    def make(setup=None, settings=None, includes=('tgstream',), **kw):
        return webtest.TestApp(build_app(setup, settings, includes), **kw)

    return make


@pytest.fixture(autouse=True)
def no_threadlocal_leak():
    """Every test must leave Pyramid's thread-local stack as it found it."""
    before = list(manager.stack)
    yield
    assert manager.stack == before, 'a request was left pushed on the thread'


@pytest.fixture
def tgstream_log(caplog):
    caplog.set_level(logging.ERROR, logger='tgstream')
    return caplog


PG_URL = os.environ.get(
    'TGSTREAM_TEST_PG_URL', 'postgresql+psycopg://postgres@127.0.0.1:5432/test'
)


def _postgres_available(url):
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope='session')
def pg_url():
    """The PostgreSQL URL; skips without a server unless TGSTREAM_REQUIRE_PG
    is set (CI sets it: there, PostgreSQL tests must run, not skip)."""
    if not _postgres_available(PG_URL):
        if os.environ.get('TGSTREAM_REQUIRE_PG'):
            pytest.fail('PostgreSQL is required (TGSTREAM_REQUIRE_PG) but %s '
                        'does not answer' % PG_URL)
        pytest.skip('PostgreSQL not available at %s' % PG_URL)
    return PG_URL


@pytest.fixture
def pg_engine(pg_url):
    """An engine on a fresh PostgreSQL schema of its own (dropped after the
    test), so tests and concurrent runs never see each other's tables."""
    import uuid

    import sqlalchemy

    schema = 't_' + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(pg_url, isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE SCHEMA %s' % schema)
    # application_name = the schema: a test can find its own sessions in
    # pg_stat_activity while other runs share the database.
    engine = sqlalchemy.create_engine(
        pg_url,
        connect_args={'options': '-csearch_path=%s' % schema, 'application_name': schema},
    )
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql('DROP SCHEMA %s CASCADE' % schema)
        admin.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    """An engine on a SQLite file database (the embedded default)."""
    from tests.dbapp import make_engine

    engine = make_engine('sqlite:///%s' % (tmp_path / 'test.sqlite'))
    yield engine
    engine.dispose()


@pytest.fixture(params=['sqlite', 'postgresql'])
def any_engine(request):
    """Each test using it runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue(request.param + '_engine')


@pytest.fixture
def postgresql_engine(pg_engine):
    return pg_engine


@pytest.fixture(params=['orjson', 'stdlib'])
def json_impl(request, monkeypatch):
    """Run the test with orjson, then with the standard library alone."""
    from tgstream.renderers import jsonrules

    if request.param == 'stdlib':
        monkeypatch.setattr(jsonrules, 'orjson', None)
    else:
        pytest.importorskip('orjson')
    return request.param


@pytest.fixture
def fetch_small(monkeypatch):
    """stream_query fetches 7 rows at a time: several fetches of the cursor
    even for a small table, batches cut from them."""
    from tgstream import query

    monkeypatch.setattr(query, 'FETCH_ROWS', 7)


# -- test tiers (docs/development.rst, "Tests") --------------------------------

#: differential, identity and property modules: many examples each, minutes
#: in all; they run in the full suite, not in the ``unit`` inner loop.
THOROUGH_MODULES = frozenset((
    'tests/renderers/test_batch_identity.py',
    'tests/renderers/test_csv_verbatim.py',
    'tests/renderers/test_csvsafe.py',
    'tests/renderers/test_native_dates.py',
    'tests/test_invisible.py',
    'tests/test_demo.py',
    'tests/test_demo_import_scale.py',
    'tests/test_scaffold.py',
    # the live listener's teardowns (a 1 s poll, issue 25)
    'tests/test_live.py',
))
#: single tests of the same kind (a fresh interpreter each, or many examples)
THOROUGH_TESTS = frozenset((
    'tests/test_api.py::test_an_app_pays_only_for_the_add_ons_it_uses',
    'tests/renderers/test_renderers.py::test_the_package_imports_no_format_module',
    'tests/renderers/test_templates.py::test_works_without_pyramid_jinja2_installed',
    'tests/renderers/test_csv_dialects.py::test_every_reader_sees_only_judged_cells',
    'tests/test_otel_import.py::test_with_opentelemetry_the_integration_loads',
    'tests/test_otel_import.py::test_without_opentelemetry_nothing_is_imported',
    'tests/test_otel_demo.py::test_the_demo_prints_its_spans_with_one_setting',
))
PG_FIXTURES = frozenset(('pg_url', 'pg_engine', 'postgresql_engine'))
NOT_UNIT = frozenset(('live', 'postgresql', 'slow', 'browser', 'thorough'))


def pytest_collection_modifyitems(config, items):
    """Mark every test using PostgreSQL ``postgresql`` (``any_engine``'s
    PostgreSQL case too), the thorough modules ``thorough``, and what is
    left ``unit``: ``pytest -m unit`` is the inner loop."""
    root = str(config.rootpath)
    for item in items:
        callspec = getattr(item, 'callspec', None)
        params = callspec.params.values() if callspec is not None else ()
        if PG_FIXTURES & set(getattr(item, 'fixturenames', ())) or any(
            isinstance(value, str) and value == 'postgresql' for value in params
        ):
            item.add_marker(pytest.mark.postgresql)
        path = os.path.relpath(str(item.path), root).replace(os.sep, '/')
        if path in THOROUGH_MODULES or '%s::%s' % (path, item.originalname) in THOROUGH_TESTS:
            item.add_marker(pytest.mark.thorough)
        if not NOT_UNIT & {mark.name for mark in item.iter_markers()}:
            item.add_marker(pytest.mark.unit)
