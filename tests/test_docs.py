"""What the documentation names exists: every ``tgstream.<name>`` written in
the README and docs/ is a setting tgstream reads or a name one can import."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tgstream.settings import DELEGATED_PREFIXES, KNOWN_SETTINGS

CHECKOUT = Path(__file__).resolve().parents[1]
PAGES = sorted((CHECKOUT / 'docs').glob('*.rst')) + [CHECKOUT / 'README.rst']
NAME = re.compile(r'``(tgstream(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?``')


def live_settings() -> set[str]:
    source = (CHECKOUT / 'tgstream' / 'live' / 'config.py').read_text()
    return set(re.findall(r"'(tgstream\.live\.[a-z_]+)'", source))


def importable(dotted: str) -> bool:
    parts = dotted.split('.')
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except ImportError:
            continue
        try:
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
    assert name in settings or importable(name), (
        '%s names %s: neither a setting (%s...) nor importable'
        % (page, name, ', '.join(sorted(settings)[:3])))


def test_the_check_sees_the_names():
    names = {name for _, name in documented_names()}
    assert {'tgstream.sse.keepalive', 'tgstream.stream_query'} <= names
    assert all(prefix.startswith('tgstream.') for prefix in DELEGATED_PREFIXES)
