"""Exports of the whole users table: JSON array, NDJSON and CSV.

Core rows (not ORM objects) are streamed in batches by
``tgstream.stream_query``; ``expose``'s ``filename=`` sets
``Content-Disposition`` (it is the ``stream_filename`` view option, the
only spelling ``view_config`` and ``add_view`` take). Memory stays flat
whatever the table size.
"""
from __future__ import annotations

from sqlalchemy import select

from tgstream import expose, stream_query

from ..models import User

COLUMNS = ('id', 'name', 'fullname', 'email', 'joined')
USERS = select(*(getattr(User, c) for c in COLUMNS)).order_by(User.id)


def all_users(request):
    return stream_query(request.dbsession, USERS)


@expose('json', route_name='users_json', stream=True, filename='users.json')
def users_json(request):
    return all_users(request)


@expose('ndjson', route_name='users_ndjson', stream=True, filename='users.ndjson')
def users_ndjson(request):
    return all_users(request)


@expose('csv', route_name='users_csv', stream=True, filename='users.csv',
        columns=list(COLUMNS))
def users_csv(request):
    return all_users(request)
