"""The app bench_live.py serves with gunicorn's gevent worker.

Cookiecutter wiring (pyramid_tm, explicit manager, zope.sqlalchemy,
``request.dbsession``) on PostgreSQL, the live PostgreSQL backend, and:

``/feed``     ``tgstream.listen(request, 'bench')``
``/publish?seq=N``  writes a row and notifies ``{"seq": N, "t": <time>}``
              (``t``: wall clock just before the commit); ``&rollback=1``
              dooms the transaction instead
``/stats``    this worker's pid, live streams, greenlets, RSS (``?trim=1``:
              after gc and malloc_trim)
Configured by ``BENCH_LIVE_*`` environment variables (``app()``).
"""
from __future__ import annotations

import gc
import os
import time

import zope.sqlalchemy
from pyramid.config import Configurator
from sqlalchemy import Integer, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import tgstream
from tgstream.live import get_hub


class Base(DeclarativeBase):
    pass


class Published(Base):
    __tablename__ = 'bench_published'
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


def feed(request):
    return tgstream.listen(request, 'bench')


def publish(request):
    seq = int(request.params['seq'])
    request.dbsession.add(Published(seq=seq))
    request.dbsession.flush()
    tgstream.notify(request, 'bench', {'seq': seq, 't': time.time()})
    if request.params.get('rollback'):
        request.tm.doom()
    return {'seq': seq}


def rss_kib() -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def stats(request):
    """``?trim=1``: collect garbage and return freed heap to the OS first
    (glibc keeps it otherwise), so RSS shows what is still in use."""
    import greenlet

    if request.params.get('trim'):
        gc.collect()
        try:
            import ctypes

            ctypes.CDLL('libc.so.6').malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass

    return {
        'pid': os.getpid(),
        'streams': get_hub(request.registry).stream_count(),
        'greenlets': sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet)),
        'rss_kib': rss_kib(),
    }


def app():
    url = os.environ['BENCH_LIVE_PG_URL']
    engine = create_engine(
        url, pool_size=int(os.environ.get('BENCH_LIVE_POOL', 5)), max_overflow=0,
        connect_args={'options': '-csearch_path=%s' % os.environ['BENCH_LIVE_SCHEMA'],
                      'application_name': 'tgstream-bench-pool'},
    )
    Base.metadata.create_all(engine)
    factory = sessionmaker(bind=engine)
    settings = {
        'tm.manager_hook': 'pyramid_tm.explicit_manager',
        'tgstream.live.backend': 'postgresql',
        'tgstream.live.url': url,
        'tgstream.live.pg_channel': os.environ['BENCH_LIVE_CHANNEL'],
        'tgstream.live.table': os.environ['BENCH_LIVE_SCHEMA'] + '.tgstream_live_events',
        'tgstream.sse.keepalive': os.environ.get('BENCH_LIVE_KEEPALIVE', '15'),
    }
    with Configurator(settings=settings) as config:
        config.include('pyramid_tm')
        config.include('tgstream')

        def dbsession(request):
            session = factory()
            zope.sqlalchemy.register(session, transaction_manager=request.tm)
            return session

        config.add_request_method(dbsession, reify=True)
        config.add_route('feed', '/feed')
        config.add_view(feed, route_name='feed', renderer='sse', stream=True)
        config.add_route('publish', '/publish')
        config.add_view(publish, route_name='publish', renderer='json')
        config.add_route('stats', '/stats')
        config.add_view(stats, route_name='stats', renderer='json')
        return config.make_wsgi_app()
