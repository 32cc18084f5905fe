"""The demo's models and database wiring, as the Pyramid cookiecutter does it.

``includeme`` sets ``tm.manager_hook = pyramid_tm.explicit_manager``,
includes pyramid_tm and pyramid_retry, and adds a reified
``request.dbsession`` joined to ``request.tm`` by zope.sqlalchemy. Copy it:
with ``config.include('tgstream')`` the same wiring keeps working while a
response streams.
"""
from __future__ import annotations

import datetime

import zope.sqlalchemy
from sqlalchemy import Date, ForeignKey, MetaData, String, engine_from_config, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

# The cookiecutter's naming convention: constraint names alembic can diff.
NAMING_CONVENTION = {
    'ix': 'ix_%(column_0_label)s',
    'uq': 'uq_%(table_name)s_%(column_0_name)s',
    'ck': 'ck_%(table_name)s_%(constraint_name)s',
    'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s',
    'pk': 'pk_%(table_name)s',
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = 'users'

    id: Mapped[int] = mapped_column(primary_key=True)
    #: login name, unique
    name: Mapped[str] = mapped_column(String(50), unique=True)
    fullname: Mapped[str] = mapped_column(String(100), default='')
    email: Mapped[str] = mapped_column(String(100), default='')
    joined: Mapped[datetime.date | None] = mapped_column(Date, nullable=True)

    #: column limits the CSV import checks before writing anything
    LIMITS = {'name': 50, 'fullname': 100, 'email': 100}

    def __json__(self, request) -> dict:
        return {
            'id': self.id,
            'name': self.name,
            'fullname': self.fullname,
            'email': self.email,
            'joined': self.joined.isoformat() if self.joined else None,
        }


class Permission(Base):
    """What TurboGears' "Writing to Database" example adds while it streams."""

    __tablename__ = 'permissions'

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    user_id: Mapped[int | None] = mapped_column(ForeignKey('users.id'), nullable=True)

    def __json__(self, request) -> dict:
        return {'id': self.id, 'name': self.name, 'user_id': self.user_id}


def get_engine(settings, prefix: str = 'sqlalchemy.'):
    """The engine of ``sqlalchemy.*`` settings (SQLite gets WAL and a busy
    timeout so exports can read while an import writes)."""
    engine = engine_from_config(settings, prefix)
    if engine.dialect.name == 'sqlite':
        event.listen(engine, 'connect', _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute('PRAGMA journal_mode = WAL')
    cursor.execute('PRAGMA busy_timeout = 5000')
    cursor.close()


def get_session_factory(engine):
    return sessionmaker(bind=engine)


def get_tm_session(session_factory, transaction_manager, request=None):
    """A session joined to ``transaction_manager`` (``request.tm`` in a
    request, ``transaction.TransactionManager(explicit=True)`` in scripts)."""
    dbsession = session_factory(info={'request': request})
    zope.sqlalchemy.register(dbsession, transaction_manager=transaction_manager)
    return dbsession


def includeme(config) -> None:
    """``request.dbsession`` wired to pyramid_tm (the cookiecutter's wiring).

    ``settings['dbengine']`` (an engine) replaces ``sqlalchemy.url``: tests
    use it to share an engine; ``app.dbsession`` in the WSGI environ
    replaces the session.
    """
    settings = config.get_settings()
    settings['tm.manager_hook'] = 'pyramid_tm.explicit_manager'
    config.include('pyramid_tm')
    config.include('pyramid_retry')

    engine = settings.get('dbengine') or get_engine(settings)
    config.registry['dbengine'] = engine
    session_factory = get_session_factory(engine)
    config.registry['dbsession_factory'] = session_factory

    def dbsession(request):
        session = request.environ.get('app.dbsession')
        if session is None:
            session = get_tm_session(session_factory, request.tm, request=request)
        return session

    config.add_request_method(dbsession, reify=True)
