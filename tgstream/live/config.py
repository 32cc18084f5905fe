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


_backend = as_choice(BACKENDS, 'a live backend')


def _pg_channel(name: str, value: Any) -> str:
    text = str(value).strip()
    if not _CHANNEL.match(text):
        raise ConfigurationError(
            '%s = %r is not a PostgreSQL channel name (lower-case letters, '
            'digits and _, at most 63)' % (name, value)
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
