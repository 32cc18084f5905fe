"""Cookiecutter-style SQLAlchemy wiring for tests, as users write it.

pyramid_tm + ``tm.manager_hook = pyramid_tm.explicit_manager`` +
``zope.sqlalchemy.register(session, transaction_manager=request.tm)`` + a
reified ``request.dbsession`` -- and *no* ``tm.active`` test override, so
the production ordering (pyramid_tm commits at tween egress) is exercised.
"""
from __future__ import annotations

import zope.sqlalchemy
from pyramid.config import Configurator
from sqlalchemy import ForeignKey, String, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = 'users'
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    notes: Mapped[list['Note']] = relationship(back_populates='user', order_by='Note.id')

    def __json__(self, request):
        return {'id': self.id, 'name': self.name}


class Note(Base):
    __tablename__ = 'notes'
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey('users.id'))
    text: Mapped[str] = mapped_column(String(200))
    user: Mapped[User] = relationship(back_populates='notes')


def seed_users(engine, count: int = 5) -> None:
    """Create the tables and ``count`` users named user1, user2, ..."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            User.__table__.insert(),
            [{'id': n, 'name': 'user%d' % n} for n in range(1, count + 1)],
        )


def count_users(engine) -> int:
    from sqlalchemy import func, select

    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(User))


def writing_stream(first: int, last: int):
    """A stream view adding and flushing users ``first``..``last``, one item each."""
    import tgstream

    def view(request):
        for n in range(first, last):
            request.dbsession.add(User(id=n, name='u%d' % n))
            request.dbsession.flush()
            yield '%d\n' % n
            yield tgstream.flush

    return view


def make_engine(url: str, **kw):
    engine = create_engine(url, **kw)
    if url.startswith('sqlite'):
        @event.listens_for(engine, 'connect')
        def _sqlite_pragmas(dbapi_connection, record):
            cursor = dbapi_connection.cursor()
            cursor.execute('PRAGMA busy_timeout = 5000')
            cursor.close()
    return engine


def includeme_models(config, engine):
    """What the cookiecutter's ``models/__init__.py:includeme`` does."""
    settings = config.get_settings()
    settings['tm.manager_hook'] = 'pyramid_tm.explicit_manager'
    config.include('pyramid_tm')
    config.include('pyramid_retry')
    factory = sessionmaker(bind=engine)
    config.registry['dbsession_factory'] = factory

    def dbsession(request):
        session = request.environ.get('app.dbsession')
        if session is None:
            session = factory(info={'request': request})
            zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    config.add_request_method(dbsession, reify=True)


def build_db_app(engine, setup=None, settings=None, includes=('tgstream',), tgstream_first=True):
    """A Pyramid app with the cookiecutter wiring; ``setup(config)`` adds views."""
    with Configurator(settings=dict(settings or {})) as config:
        if tgstream_first:
            for name in includes:
                config.include(name)
            includeme_models(config, engine)
        else:
            includeme_models(config, engine)
            for name in includes:
                config.include(name)
        if setup is not None:
            setup(config)
        return config.make_wsgi_app()
