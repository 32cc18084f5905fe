"""Models and the database wiring of the Pyramid cookiecutter.

``request.dbsession`` is joined to the request's transaction (``request.tm``,
pyramid_tm): it commits when the request succeeds and aborts when it fails.
With ``config.include('tgstream')`` a streamed response keeps that
transaction open while it streams and commits it when the stream ends.
"""
import zope.sqlalchemy
from sqlalchemy import engine_from_config
from sqlalchemy.orm import configure_mappers, sessionmaker

# Import or define all models here so that they are mapped before
# configure_mappers() runs.
from .item import Item  # noqa: F401
from .meta import Base  # noqa: F401

configure_mappers()


def get_engine(settings, prefix='sqlalchemy.'):
    return engine_from_config(settings, prefix)


def get_session_factory(engine):
    factory = sessionmaker()
    factory.configure(bind=engine)
    return factory


def get_tm_session(session_factory, transaction_manager, request=None):
    """A SQLAlchemy session joined to ``transaction_manager``.

    In a request, ``request.dbsession`` is one (with ``request.tm``). In a
    script, pass a manager of your own::

        import transaction

        tm = transaction.TransactionManager(explicit=True)
        with tm:
            dbsession = get_tm_session(session_factory, tm)
            dbsession.add(Item(name='one', value=1))
    """
    dbsession = session_factory(info={'request': request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def includeme(config):
    """``request.dbsession`` for the app (``config.include('.models')``).

    ``settings['dbengine']`` (an engine) replaces ``sqlalchemy.*``; an
    ``app.dbsession`` in the WSGI environ replaces the request's session.
    """
    settings = config.get_settings()
    settings['tm.manager_hook'] = 'pyramid_tm.explicit_manager'

    # Use pyramid_tm to hook the transaction lifecycle to the request, and
    # pyramid_retry to retry a request that failed with a transient error.
    config.include('pyramid_tm')
    config.include('pyramid_retry')

    dbengine = settings.get('dbengine')
    if not dbengine:
        dbengine = get_engine(settings)

    session_factory = get_session_factory(dbengine)
    config.registry['dbsession_factory'] = session_factory

    def dbsession(request):
        dbsession = request.environ.get('app.dbsession')
        if dbsession is None:
            dbsession = get_tm_session(session_factory, request.tm, request=request)
        return dbsession

    config.add_request_method(dbsession, reify=True)
