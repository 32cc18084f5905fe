"""What the documentation names exists: every ``tgstream.<name>`` written in
the README and docs/ is a setting tgstream reads, a name one can import, or
a span attribute or metric tgstream records."""
from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

import pytest

from tgstream.settings import DELEGATED_PREFIXES, KNOWN_SETTINGS

CHECKOUT = Path(__file__).resolve().parents[1]
PAGES = sorted((CHECKOUT / 'docs').glob('*.rst')) + [CHECKOUT / 'README.rst']
NAME = re.compile(r'``(tgstream(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?``')


def live_settings() -> set[str]:
    source = (CHECKOUT / 'tgstream' / 'live' / 'config.py').read_text()
    return set(re.findall(r"'(tgstream\.live\.[a-z_]+)'", source))


def telemetry_names() -> set[str]:
    """The span attributes and metric names tgstream.otel writes."""
    return {name for path in (CHECKOUT / 'tgstream' / 'otel').glob('*.py')
            for name in re.findall(r"'(tgstream\.[a-z_.]+)'", path.read_text())}


def importable(dotted: str) -> bool:
    parts = dotted.split('.')
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except ImportError:
            continue
        try:
            with warnings.catch_warnings():  # deprecated names exist too
                warnings.simplefilter('ignore', DeprecationWarning)
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def documented_names() -> list[tuple[str, str]]:
    return sorted({(page.name, m.group(1)) for page in PAGES
                   for m in NAME.finditer(page.read_text())})


@pytest.mark.parametrize('page, name', documented_names())
def test_a_documented_name_exists(page, name):
    settings = KNOWN_SETTINGS | live_settings()
    assert name in settings | telemetry_names() or importable(name), (
        '%s names %s: neither a setting (%s...), a span attribute or metric, '
        'nor importable' % (page, name, ', '.join(sorted(settings)[:3])))


def test_the_check_sees_the_names():
    names = {name for _, name in documented_names()}
    assert {'tgstream.sse.keepalive', 'tgstream.stream_query'} <= names
    assert all(prefix.startswith('tgstream.') for prefix in DELEGATED_PREFIXES)
