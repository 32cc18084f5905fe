"""Server-sent events: a tick with the current user count, then ``end``;
and the live feed of imported users."""
from __future__ import annotations

import datetime
import time

from sqlalchemy import func, select

import tgstream
from tgstream import ServerSentEvent, expose

from ..models import User
from ..settings import demo_settings
from .params import int_param


@expose('sse', route_name='events', stream=True)
def events(request):
    """``count`` ``tick`` events ``demo.pause`` seconds apart, each read from
    the database inside the stream, then an ``end`` event so that browsers'
    ``EventSource`` can close instead of reconnecting."""
    count = int_param(request, 'count', 10, 0, 10_000)
    pause = demo_settings(request).pause
    users = select(func.count()).select_from(User)
    for n in range(1, count + 1):
        if n > 1:
            time.sleep(pause)
        yield ServerSentEvent(event='tick', id=str(n), data={
            'n': n,
            'time': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'users': request.dbsession.scalar(users),
        })
    yield ServerSentEvent(event='end', data={'ticks': count})


@expose('sse', route_name='users_feed', stream=True)
def users_feed(request):
    """Users as imports commit (``users`` channel, from any process with the
    PostgreSQL backend); a ``reset`` event when the page should reload."""
    return tgstream.listen(request, 'users')
