"""The ``tgstream.live.*`` settings, checked when the configuration commits."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping

from pyramid.exceptions import ConfigurationError

from ..settings import as_choice, as_number

BACKENDS = ('memory', 'postgresql')

#: PostgreSQL's limit for a NOTIFY payload (bytes, exclusive); tgstream
#: applies it with every backend so an app can switch backends safely.
PAYLOAD_LIMIT = 8000

_CHANNEL = re.compile(r'^[a-z_][a-z0-9_]{0,62}$')
_TABLE = re.compile(r'^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,50}$')


@dataclasses.dataclass(frozen=True)
class LiveSettings:
    """Parsed ``tgstream.live.*`` settings (see README.rst, "Live streams")."""

    #: ``tgstream.live.backend``: ``memory`` (one process) or ``postgresql``.
    backend: str = 'memory'
    #: ``tgstream.live.url``: where the listener connects (PostgreSQL);
    #: defaults to ``sqlalchemy.url``.
    url: str | None = None
    #: ``tgstream.live.history``: events kept per channel for Last-Event-ID.
    history: int = 100
    #: ``tgstream.live.pg_channel``: the PostgreSQL NOTIFY channel carrying
    #: every tgstream channel.
    pg_channel: str = 'tgstream_live'
    #: ``tgstream.live.table``: the PostgreSQL table of the durable event log
    #: (``name`` or ``schema.name``; created on first use).
    table: str = 'tgstream_live_events'
    #: ``tgstream.live.retention``: seconds events stay in the log for replay.
    retention: float = 86400.0
    #: ``tgstream.live.poll``: seconds between the PostgreSQL reader's checks
    #: of the log when no wake-up came (a safety net; wake-ups are NOTIFYs).
    poll: float = 1.0
    #: ``tgstream.live.max_lifetime``: seconds after which a live stream ends
    #: (cleanly, with ``retry:``; the client reconnects and resumes); 0: never.
    max_lifetime: float = 0.0
    #: ``tgstream.live.retry``: milliseconds a client waits before it
    #: reconnects to a stream that ended (plus up to as much again, random).
    retry: int = 2000


_backend = as_choice(BACKENDS, 'a live backend')


def _pg_channel(name: str, value: Any) -> str:
    text = str(value).strip()
    if not _CHANNEL.match(text):
        raise ConfigurationError(
            '%s = %r is not a PostgreSQL channel name (lower-case letters, '
            'digits and _, at most 63)' % (name, value)
        )
    return text


def _table(name: str, value: Any) -> str:
    text = str(value).strip()
    if not _TABLE.match(text):
        raise ConfigurationError(
            '%s = %r is not a table name (lower-case letters, digits and _, '
            'at most 50, optionally schema-qualified: schema.name)' % (name, value)
        )
    return text


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://...``) as libpq takes it."""
    return re.sub(r'^postgres(ql)?\+\w+://', 'postgresql://', url.strip())


def _url(name: str, value: Any) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    if not re.match(r'^postgres(ql)?(\+\w+)?://', text):
        raise ConfigurationError(
            '%s = %r is not a PostgreSQL URL (postgresql://...)' % (name, value)
        )
    return libpq_url(text)


_PARSERS: tuple[tuple[str, str, Callable[[str, Any], Any]], ...] = (
    ('tgstream.live.backend', 'backend', _backend),
    ('tgstream.live.url', 'url', _url),
    ('tgstream.live.history', 'history', lambda n, v: as_number(n, v, int, 0)),
    ('tgstream.live.pg_channel', 'pg_channel', _pg_channel),
    ('tgstream.live.table', 'table', _table),
    ('tgstream.live.retention', 'retention', lambda n, v: as_number(n, v, float, 1)),
    ('tgstream.live.poll', 'poll', lambda n, v: as_number(n, v, float, 0.01)),
    ('tgstream.live.max_lifetime', 'max_lifetime', lambda n, v: as_number(n, v, float, 0)),
    ('tgstream.live.retry', 'retry', lambda n, v: as_number(n, v, int, 0)),
)

KNOWN = frozenset(key for key, _, _ in _PARSERS)


def parse_live_settings(settings: Mapping[str, Any] | None) -> LiveSettings:
    """Parse ``tgstream.live.*``; unknown keys are an error naming them."""
    settings = settings or {}
    unknown = sorted(k for k in settings if k.startswith('tgstream.live.') and k not in KNOWN)
    if unknown:
        raise ConfigurationError(
            'unknown setting(s) %s; tgstream knows: %s'
            % (', '.join(unknown), ', '.join(sorted(KNOWN)))
        )
    values: dict[str, Any] = {
        field: parse(key, settings[key]) for key, field, parse in _PARSERS if key in settings
    }
    parsed = LiveSettings(**values)
    if parsed.backend == 'postgresql' and parsed.url is None:
        fallback = settings.get('sqlalchemy.url')
        if not fallback or not re.match(r'^postgres', str(fallback)):
            raise ConfigurationError(
                'tgstream.live.backend = postgresql needs tgstream.live.url (or '
                'a PostgreSQL sqlalchemy.url) for its listening connection; '
                'sqlalchemy.url is %r' % (fallback,)
            )
        parsed = dataclasses.replace(parsed, url=libpq_url(str(fallback)))
    return parsed
