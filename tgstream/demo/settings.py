"""The demo's own ``demo.*`` settings, checked at startup.

``demo.pause``
    seconds the ported seed examples sleep between items (their originals
    slept one or two seconds; tests set 0). Default 1.
``demo.seed_users``
    users created on first start when the ``users`` table is empty; 0 turns
    seeding off. Default 100000.
``demo.import.max_bytes``
    largest CSV file the import endpoint accepts. Default 20000000 (the
    export of the 100 000 seeded users is about 6.7 MB).
``demo.import.batch``
    rows written (and flushed) between two progress lines of the import.
    Default 500.
``demo.otel_console``
    print every span (OpenTelemetry) to the console; needs
    ``tgstream[otel]``. Default false.
"""
from __future__ import annotations

import dataclasses

from pyramid.exceptions import ConfigurationError

from tgstream.settings import as_bool, as_number


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    pause: float = 1.0
    seed_users: int = 100_000
    import_max_bytes: int = 20_000_000
    import_batch: int = 500
    otel_console: bool = False


_PARSERS = (
    ('demo.pause', 'pause', float, 0),
    ('demo.seed_users', 'seed_users', int, 0),
    ('demo.import.max_bytes', 'import_max_bytes', int, 1),
    ('demo.import.batch', 'import_batch', int, 1),
)
KNOWN = frozenset(key for key, *_ in _PARSERS) | {'demo.otel_console'}


def parse_demo_settings(settings) -> DemoSettings:
    """Parse ``demo.*``; an unknown ``demo.*`` key is an error naming it."""
    unknown = sorted(k for k in settings if k.startswith('demo.') and k not in KNOWN)
    if unknown:
        raise ConfigurationError(
            'unknown setting(s) %s; the demo knows: %s'
            % (', '.join(unknown), ', '.join(sorted(KNOWN)))
        )
    values: dict = {
        field: as_number(key, settings[key], kind, minimum)
        for key, field, kind, minimum in _PARSERS
        if key in settings
    }
    if 'demo.otel_console' in settings:
        values['otel_console'] = as_bool('demo.otel_console', settings['demo.otel_console'])
    return DemoSettings(**values)


def demo_settings(request) -> DemoSettings:
    return request.registry['demo.settings']
