"""The app gunicorn's gevent worker serves in tests/live/test_gevent.py.

TurboGears-style wiring: pyramid_tm on the thread-local ``transaction.manager``
and a global ``scoped_session`` (``tgstream.sqlalchemy.session``) -- all of it
thread-local state that gevent's monkey-patching makes greenlet-local. Plus
live feeds on the PostgreSQL backend. Configured by ``GEVENT_APP_*``
environment variables; ``from_env()`` is gunicorn's app factory.
"""
from __future__ import annotations

import os
import time

import transaction
import zope.sqlalchemy
from pyramid.config import Configurator
from pyramid.threadlocal import get_current_request
from sqlalchemy import String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, scoped_session, sessionmaker

import tgstream

DBSession = scoped_session(sessionmaker())
zope.sqlalchemy.register(DBSession)


class Base(DeclarativeBase):
    pass


class Mark(Base):
    __tablename__ = 'gevent_marks'
    id: Mapped[int] = mapped_column(primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), index=True)


def crosstalk(request):
    """``steps`` steps; in each, every piece of per-request state must still
    be this request's. Yields ``tag:step:ok`` or ``tag:step:BAD <what>``."""
    tag = request.params['tag']
    steps = int(request.params.get('steps', 5))
    txn = transaction.manager.get()
    session = DBSession()
    for step in range(steps):
        bad = []
        if get_current_request() is not request:
            bad.append('get_current_request')
        if tgstream.request.params.get('tag') != tag:
            bad.append('tgstream.request')
        if transaction.manager.get() is not txn or request.tm.get() is not txn:
            bad.append('transaction')
        if DBSession() is not session:
            bad.append('scoped session')
        DBSession.add(Mark(tag=tag))
        DBSession.flush()
        count = DBSession.scalar(select(func.count()).select_from(Mark).where(Mark.tag == tag))
        if count != step + 1:
            bad.append('rows %d' % count)
        yield '%s:%d:%s\n' % (tag, step, 'BAD ' + ','.join(bad) if bad else 'ok')
        yield tgstream.flush
        time.sleep(0.005)  # (gevent.sleep once patched: greenlets interleave)
    tgstream.notify(request, 'marks', {'tag': tag})


def add(request):
    tgstream.notify(request, 'feed', {'n': int(request.params['n'])})
    return {'ok': True}


def feed(request):
    return tgstream.listen(request, 'feed')


def stats(request):
    import gc

    import greenlet

    hub = tgstream.live.get_hub(request.registry)
    return {
        'streams': hub.stream_count(),
        'greenlets': sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet)),
        'pid': os.getpid(),
        'patched': __import__('gevent.monkey').monkey.is_module_patched('threading'),
    }


def from_env():
    url = os.environ['GEVENT_APP_PG_URL']
    schema = os.environ['GEVENT_APP_SCHEMA']
    engine = create_engine(url, connect_args={'options': '-csearch_path=%s' % schema},
                           pool_size=int(os.environ.get('GEVENT_APP_POOL', 5)))
    Base.metadata.create_all(engine)
    DBSession.configure(bind=engine)
    settings = {
        'tgstream.sqlalchemy.session': DBSession,
        'tgstream.live.backend': 'postgresql',
        'tgstream.live.url': url,
        'tgstream.live.pg_channel': os.environ['GEVENT_APP_CHANNEL'],
        'tgstream.live.table': schema + '.tgstream_live_events',
        'tgstream.sse.keepalive': os.environ.get('GEVENT_APP_KEEPALIVE', '5'),
    }
    with Configurator(settings=settings) as config:
        config.include('pyramid_tm')
        config.include('tgstream')
        config.add_request_method(lambda request: DBSession, 'dbsession', reify=True)
        for name, view, renderer, stream in (
            ('crosstalk', crosstalk, None, True),
            ('add', add, 'json', False),
            ('feed', feed, 'sse', True),
            ('stats', stats, 'json', False),
        ):
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, renderer=renderer,
                            stream=stream or None)
        return config.make_wsgi_app()
