"""Create the demo's schema and seed its users table on first start.

Seeding is one multi-row ``INSERT`` per 10 000 users inside a single
transaction, so 100 000 users take about a second on SQLite. A table that
already holds a user is never touched.
"""
from __future__ import annotations

import datetime
import logging
import time

from sqlalchemy import exists, insert, select
from sqlalchemy.exc import IntegrityError

from .models import Base, User

log = logging.getLogger(__name__)

FIRST_NAMES = (
    'Ada', 'Zoë', 'José', 'Łukasz', 'Ngozi', 'Priya', 'Mei', 'Olu', 'Søren',
    'Amélie', 'Tomás', 'Yuki', 'Fatima', 'Ivan', 'Chloé', 'Kwame',
)
LAST_NAMES = (
    'Lovelace', 'Hopper', 'Müller', 'García', 'Okafor', 'Sharma', 'Chen',
    'Nakamura', 'Østergaard', 'Dubois', 'Novák', 'Haddad',
)
_EPOCH = datetime.date(2015, 1, 1)


def user_row(n: int) -> dict:
    """The seeded user number ``n`` (1-based), deterministic. No ``id``: the
    database assigns it, so PostgreSQL's sequence stays in step."""
    first = FIRST_NAMES[n % len(FIRST_NAMES)]
    last = LAST_NAMES[(n // len(FIRST_NAMES)) % len(LAST_NAMES)]
    return {
        'name': 'user%06d' % n,
        'fullname': '%s %s' % (first, last),
        'email': 'user%06d@example.com' % n,
        'joined': _EPOCH + datetime.timedelta(days=n % 3650),
    }


def setup_database(engine, count: int, chunk: int = 10_000) -> int:
    """Create missing tables; seed ``count`` users if ``users`` is empty.

    Returns the number of users written (0 when the table already had data
    or ``count`` is 0). Logs what it did either way.
    """
    Base.metadata.create_all(engine)
    url = engine.url.render_as_string(hide_password=True)
    with engine.connect() as conn:
        has_users = conn.execute(select(exists().where(User.id.is_not(None)))).scalar()
    if has_users:
        log.info('demo database %s already has users: not seeding', url)
        return 0
    if not count:
        log.info('demo database %s: seeding is off (demo.seed_users = 0)', url)
        return 0
    started = time.monotonic()
    try:
        with engine.begin() as conn:
            for start in range(1, count + 1, chunk):
                stop = min(start + chunk, count + 1)
                conn.execute(insert(User), [user_row(n) for n in range(start, stop)])
    except IntegrityError:
        # another process (a second worker) seeded it first
        log.info('demo database %s was seeded by another process', url)
        return 0
    log.info(
        'demo database %s: first start, seeded %d users in %.1f s '
        '(demo.seed_users; it is never reseeded while it has users)',
        url, count, time.monotonic() - started,
    )
    return count
