"""The WSGI apps the JSON benchmark serves (see bench_json.py).

Every app streams the same table, ``items`` (id, name, email, score,
created_at), as one JSON array of objects keyed by column name, dates in ISO
8601, in id order. Each is built the way its users build it.
"""
from __future__ import annotations

import datetime
import json
import os
import sqlite3
import sys

if os.environ.get('TGSTREAM_BENCH_NO_ORJSON'):
    # "the standard library alone": make ``import orjson`` fail everywhere
    sys.modules['orjson'] = None

from sqlalchemy import DateTime, Float, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

BATCH = 1000


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = 'items'
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime)

    def __json__(self, request):
        return {
            'id': self.id,
            'name': self.name,
            'email': self.email,
            'score': self.score,
            'created_at': self.created_at,
        }


def create_table(path: str, rows: int) -> None:
    """Create ``path`` with ``rows`` items (skipped if it already has them)."""
    engine = create_engine('sqlite:///' + path)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        have = conn.exec_driver_sql('SELECT count(*) FROM items').scalar()
        if have != rows:
            conn.exec_driver_sql('DELETE FROM items')
            start = datetime.datetime(2024, 1, 1)
            step = 10_000
            for first in range(1, rows + 1, step):
                conn.execute(
                    Item.__table__.insert(),
                    [
                        {
                            'id': n,
                            'name': 'user %d' % n,
                            'email': 'user%d@example.com' % n,
                            'score': n / 7,
                            'created_at': start + datetime.timedelta(seconds=n),
                        }
                        for n in range(first, min(first + step, rows + 1))
                    ],
                )
    engine.dispose()


def _iso(obj):
    return obj.isoformat()


ITEMS = select(Item).order_by(Item.id)
# Core rows from a Core statement (table columns): an ORM attribute anywhere
# in it (``order_by(Item.id)``) would route it through SQLAlchemy's ORM
# loading, about 0.4 us more per row.
TABLE = Item.__table__
ROWS = select(TABLE).order_by(TABLE.c.id)


# -- (A) Pyramid's buffered json renderer over .all() --------------------------


def pyramid_config(engine, settings=None):
    import zope.sqlalchemy
    from pyramid.config import Configurator

    settings = dict(settings or {})
    settings['tm.manager_hook'] = 'pyramid_tm.explicit_manager'
    config = Configurator(settings=settings)
    config.include('pyramid_tm')
    factory = sessionmaker(bind=engine)

    def dbsession(request):
        session = factory()
        zope.sqlalchemy.register(session, transaction_manager=request.tm)
        return session

    config.add_request_method(dbsession, reify=True)
    return config


def add_datetime_adapter(config) -> None:
    """As real Pyramid apps do: the app's json renderer has a datetime adapter."""
    from pyramid.renderers import JSON

    renderer = JSON()
    renderer.add_adapter(datetime.datetime, lambda obj, request: obj.isoformat())
    config.add_renderer('json', renderer)


def app_a(engine):
    config = pyramid_config(engine)
    add_datetime_adapter(config)

    def items(request):
        return request.dbsession.scalars(ITEMS).all()

    config.add_route('items', '/items')
    config.add_view(items, route_name='items', renderer='json')
    return config.make_wsgi_app()


# -- (B) the manual way: Response(app_iter=generator), json.dumps per row -------


def app_b(engine, per_write: int = 1):
    from pyramid.response import Response

    config = pyramid_config(engine)

    def rows():
        # pyramid_tm has committed before the body is read: the generator
        # needs a session of its own (and its own error handling).
        with Session(engine) as session:
            result = session.scalars(ITEMS.execution_options(yield_per=BATCH))
            parts = ['[']
            separator = ''
            for item in result:
                parts.append(separator + json.dumps(item.__json__(None), default=_iso))
                separator = ','
                if len(parts) >= per_write:
                    yield ''.join(parts).encode()
                    parts = []
            parts.append(']')
            yield ''.join(parts).encode()

    def items(request):
        return Response(app_iter=rows(), content_type='application/json')

    config.add_route('items', '/items')
    config.add_view(items, route_name='items')
    return config.make_wsgi_app()


# -- (C) Flask: stream_with_context ------------------------------------------------


def app_c(engine):
    from flask import Flask, Response, stream_with_context

    app = Flask('bench')
    factory = sessionmaker(bind=engine)

    @app.route('/items')
    def items():
        def rows():
            with factory() as session:
                result = session.scalars(ITEMS.execution_options(yield_per=BATCH))
                yield '['
                for n, item in enumerate(result):
                    yield (',' if n else '') + json.dumps(item.__json__(None), default=_iso)
                yield ']'

        return Response(stream_with_context(rows()), content_type='application/json')

    return app


# -- (D) raw WSGI, sqlite3.fetchmany and the fastest JSON encoder ------------------


def app_d(path):
    try:
        import orjson

        def dumps(rows):
            return orjson.dumps(rows)
    except ImportError:
        encoder = json.JSONEncoder(separators=(',', ':'), default=_iso)

        def dumps(rows):
            return encoder.encode(rows).encode()

    fromisoformat = datetime.datetime.fromisoformat
    keys = ('id', 'name', 'email', 'score', 'created_at')

    def app(environ, start_response):
        con = sqlite3.connect(path)
        cursor = con.execute(
            'SELECT id, name, email, score, created_at FROM items ORDER BY id'
        )

        def arrays():
            while True:
                rows = cursor.fetchmany(BATCH)
                if not rows:
                    break
                # the same document as the others: dates as ISO 8601
                yield dumps([
                    dict(zip(keys, (a, b, c, d, fromisoformat(e))))
                    for a, b, c, d, e in rows
                ])

        start_response('200 OK', [('Content-Type', 'application/json')])
        return _one_array(arrays(), con.close)

    return app


def _one_array(arrays, close):
    """One JSON array written from encoded arrays (``[...]`` each), one
    write each; ``close()`` at the end."""
    try:
        prefix = b'['
        for data in arrays:
            yield prefix + data[1:-1]
            prefix = b','
        yield b']' if prefix == b',' else b'[]'
    finally:
        close()


# -- (D-orm) raw WSGI over the ORM generator: the limit for ORM objects ---------


def app_d_orm(engine):
    """The T-orm-yield view's own work and nothing else: the same generator
    (ORM objects, yield_per=1000), ``__json__`` per object, one orjson call
    and one write per 1 000 objects, orjson formatting the datetimes. No
    framework, no transaction: what any library streaming that generator
    costs at least."""
    def app(environ, start_response):
        start_response('200 OK', [('Content-Type', 'application/json')])
        return _orm_array(engine)

    return app


def _orm_array(engine):
    import orjson

    session = Session(engine)

    def arrays():
        result = session.scalars(ITEMS.execution_options(yield_per=BATCH))
        for part in result.partitions():
            yield orjson.dumps([item.__json__(None) for item in part])

    return _one_array(arrays(), session.close)


def app_p_orm(engine):
    """D-orm inside the T apps' Pyramid app (pyramid_tm, tgstream included,
    so the same objects live in the process for the garbage collector to
    walk), as a plain ``Response(app_iter=...)``: the limit for any Pyramid
    add-on streaming that generator."""
    from pyramid.response import Response

    config = pyramid_config(engine)
    config.include('tgstream')

    def items(request):
        return Response(app_iter=_orm_array(engine), content_type='application/json')

    config.add_route('items', '/items')
    config.add_view(items, route_name='items')
    return config.make_wsgi_app()


# -- (T) tgstream's json renderer ---------------------------------------------------


def app_t(engine, variant: str, adapter: bool = False, renderer: str = 'json'):
    import tgstream

    config = pyramid_config(engine)
    config.include('tgstream')
    if adapter:
        add_datetime_adapter(config)

    def orm(request):
        return tgstream.stream_query(request.dbsession, ITEMS)

    def core(request):
        return tgstream.stream_query(request.dbsession, ROWS)

    def orm_yield(request):
        # the example: a generator, one yield per object
        query = ITEMS.execution_options(yield_per=BATCH)
        for item in request.dbsession.scalars(query):
            yield item

    def core_yield(request):
        query = ROWS.execution_options(yield_per=BATCH)
        for row in request.dbsession.execute(query):
            yield row

    views = {'orm': orm, 'core': core, 'orm-yield': orm_yield, 'core-yield': core_yield}
    config.add_route('items', '/items')
    config.add_view(views[variant], route_name='items', renderer=renderer, stream=True)
    return config.make_wsgi_app()


def make_app(name: str, path: str):
    """The app for scenario ``name`` (see bench_json.SCENARIOS)."""
    engine = create_engine('sqlite:///' + path)
    if name == 'A':
        return app_a(engine)
    if name == 'B':
        return app_b(engine)
    if name == 'B1000':
        return app_b(engine, per_write=BATCH)
    if name == 'C':
        return app_c(engine)
    if name == 'D':
        return app_d(path)
    if name == 'D-orm':
        return app_d_orm(engine)
    if name == 'P-orm':
        return app_p_orm(engine)
    if name.startswith('T-'):
        variant = name[2:].replace('-stdlib', '')
        adapter = variant.endswith('-adapter')
        return app_t(engine, variant.replace('-adapter', ''), adapter=adapter)
    raise ValueError('unknown scenario %r' % name)
