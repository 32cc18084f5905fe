"""The ``tgstream.*`` settings, parsed once into a frozen dataclass.

Every value is checked when the configuration is committed: a typo is a
:class:`pyramid.exceptions.ConfigurationError` naming the setting, the value
and what is allowed, never a silently ignored default.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

from pyramid.exceptions import ConfigurationError
from pyramid.util import DottedNameResolver

#: Transaction policies: hold the request's transaction through the stream,
#: or finish it when the view returns and give the stream its own.
TRANSACTION_POLICIES = ('stream', 'view')

_TRUE = frozenset(('true', 'yes', 'on', '1'))
_FALSE = frozenset(('false', 'no', 'off', '0'))

_resolver = DottedNameResolver(None)


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """Parsed ``tgstream.*`` settings (see docs/streaming.rst, "Settings")."""

    #: ``tgstream.transaction``: default transaction policy of every stream.
    transaction: str = 'stream'
    #: ``tgstream.chunk_size``: coalesce small items into writes of this size.
    chunk_size: int = 64 * 1024
    #: ``tgstream.flush_interval``: an item that arrives this many seconds
    #: after the previous write is written at once.
    flush_interval: float = 0.05
    #: ``tgstream.sqlalchemy.session``: a TurboGears-style scoped session
    #: that tgstream flushes, commits and removes when a stream ends.
    sqlalchemy_session: Any = None
    #: ``tgstream.csv.formula_guard``: neutralise spreadsheet formulas in CSV.
    csv_formula_guard: bool = True
    #: ``tgstream.sse.keepalive``: seconds of idle time before an SSE
    #: keep-alive comment; 0 disables it.
    sse_keepalive: float = 15.0
    #: ``tgstream.toolbar``: keep pyramid_debugtoolbar's hands off streams.
    toolbar: bool = True
    #: ``tgstream.compress``: gzip streams for clients that accept it, with
    #: a sync flush per write (never ``text/event-stream``); off by default.
    compress: bool = False
    #: ``tgstream.detect_generators``: the stream tween takes over a plain
    #: ``Response(app_iter=<generator>)``; false: only ``stream=True`` views
    #: stream (there is no tween).
    detect_generators: bool = True
    #: ``tgstream.shorten_server_log``: add
    #: :class:`tgstream.serverlog.ServerLogFilter` to waitress' and
    #: gunicorn's loggers; off by default (no global side effect).
    shorten_server_log: bool = False
    #: ``tgstream.otel``: OpenTelemetry spans and metrics of streams, when
    #: OpenTelemetry is installed (tgstream.otel).
    otel: bool = True


def as_bool(name: str, value: Any) -> bool:
    """Strict boolean: ``true/false/yes/no/on/off/1/0`` or a real bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(
        '%s = %r is not a boolean; use true or false' % (name, value)
    )


def as_number(name: str, value: Any, kind: Callable, minimum: float) -> Any:
    """A finite number of type ``kind`` no smaller than ``minimum``
    (``nan`` and ``inf`` are refused: they silently turn features off)."""
    try:
        number = kind(str(value).strip()) if isinstance(value, str) else kind(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if (
        number is None
        or isinstance(value, bool)
        or not math.isfinite(number)
        or number < minimum
    ):
        raise ConfigurationError(
            '%s = %r is not valid; expected a number >= %s (finite)'
            % (name, value, minimum)
        )
    return number


def as_session(name: str, value: Any) -> Any:
    """A SQLAlchemy ``Session`` or ``scoped_session`` (or its dotted name)."""
    session = as_object(name, value)
    if session is None:
        return None
    try:
        from sqlalchemy.orm import Session, scoped_session
    except ImportError:  # pragma: no cover - the sqlalchemy extra
        kinds: tuple = ()
    else:
        kinds = (Session, scoped_session)
    if not (isinstance(session, kinds) if kinds else hasattr(session, 'flush')):
        raise ConfigurationError(
            '%s = %r is not a SQLAlchemy session (%s); give the dotted name '
            'of a scoped_session (TurboGears\' DBSession) or a Session'
            % (name, value, type(session).__name__)
        )
    return session


def as_choice(choices: tuple[str, ...], what: str) -> Callable[[str, Any], str]:
    """A parser accepting one of ``choices`` (``what`` names them in errors)."""

    def parse(name: str, value: Any) -> str:
        text = value.strip() if isinstance(value, str) else value
        if text not in choices:
            raise ConfigurationError(
                '%s = %r is not %s; use one of: %s'
                % (name, value, what, ', '.join(choices))
            )
        return text

    return parse


#: A transaction policy name (``stream`` or ``view``).
as_policy = as_choice(TRANSACTION_POLICIES, 'a transaction policy')


def as_object(name: str, value: Any) -> Any:
    """Resolve a dotted name (``pkg.module.attr`` or ``pkg.module:attr``)."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return _resolver.maybe_resolve(value.strip())
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(
            '%s = %r cannot be imported: %s' % (name, value, exc)
        ) from None


_PARSERS: tuple[tuple[str, str, Callable[[str, Any], Any]], ...] = (
    ('tgstream.transaction', 'transaction', as_policy),
    (
        'tgstream.chunk_size',
        'chunk_size',
        lambda n, v: as_number(n, v, int, 1),
    ),
    (
        'tgstream.flush_interval',
        'flush_interval',
        lambda n, v: as_number(n, v, float, 0),
    ),
    ('tgstream.sqlalchemy.session', 'sqlalchemy_session', as_session),
    ('tgstream.csv.formula_guard', 'csv_formula_guard', as_bool),
    (
        'tgstream.sse.keepalive',
        'sse_keepalive',
        lambda n, v: as_number(n, v, float, 0),
    ),
    ('tgstream.toolbar', 'toolbar', as_bool),
    ('tgstream.compress', 'compress', as_bool),
    ('tgstream.detect_generators', 'detect_generators', as_bool),
    ('tgstream.shorten_server_log', 'shorten_server_log', as_bool),
    ('tgstream.otel', 'otel', as_bool),
)

KNOWN_SETTINGS = frozenset(key for key, _, _ in _PARSERS)

#: Setting prefixes parsed (and checked for unknown keys) elsewhere:
#: ``tgstream.live.*`` by :mod:`tgstream.live.config`.
DELEGATED_PREFIXES = ('tgstream.live.',)


def parse_settings(settings: Mapping[str, Any] | None) -> StreamSettings:
    """Parse the ``tgstream.*`` keys of ``settings``.

    Unknown ``tgstream.*`` keys are an error too: a misspelt setting that is
    silently ignored is the worst kind of default.
    """
    settings = settings or {}
    unknown = sorted(
        key
        for key in settings
        if key.startswith('tgstream.') and key not in KNOWN_SETTINGS
        and not key.startswith(DELEGATED_PREFIXES)
    )
    if unknown:
        raise ConfigurationError(
            'unknown setting(s) %s; tgstream knows: %s'
            % (', '.join(unknown), ', '.join(sorted(KNOWN_SETTINGS)))
        )
    values = {
        field: parse(key, settings[key])
        for key, field, parse in _PARSERS
        if key in settings
    }
    return StreamSettings(**values)


def get_settings(registry) -> StreamSettings:
    """The parsed settings of an application (defaults if not included)."""
    parsed = registry.get('tgstream.settings') if registry is not None else None
    if parsed is None:
        parsed = parse_settings(getattr(registry, 'settings', None))
    return parsed
