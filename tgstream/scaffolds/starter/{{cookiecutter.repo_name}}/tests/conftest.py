"""Fixtures: the real app over a fresh SQLite file per test.

Unlike the Pyramid cookiecutter's ``testapp``, this one does *not* set
``tm.active``: pyramid_tm manages each request as in production, so a
streamed response is tested with the transaction it really streams in.
"""
import pytest
import transaction
import webtest

from {{ cookiecutter.repo_name }} import main, models


@pytest.fixture
def app_settings(tmp_path):
    return {
        'sqlalchemy.url': 'sqlite:///%s' % (tmp_path / 'test.sqlite'),
        # write each batch of rows at once, so that tests see a stream arrive in pieces
        'tgstream.chunk_size': '256',
    }


@pytest.fixture
def dbengine(app_settings):
    engine = models.get_engine(app_settings)
    models.Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def app(app_settings, dbengine):
    return main({}, dbengine=dbengine, **app_settings)


@pytest.fixture
def testapp(app):
    return webtest.TestApp(app)


@pytest.fixture
def add_items(app):
    """``add_items(n)``: commit ``n`` items (as a script would)."""
    session_factory = app.registry['dbsession_factory']

    def add(count):
        tm = transaction.TransactionManager(explicit=True)
        with tm:
            dbsession = models.get_tm_session(session_factory, tm)
            dbsession.add_all(
                models.Item(name='item %d' % n, value=n) for n in range(1, count + 1)
            )

    return add
