"""``demo.otel_console = true``: the demo prints its spans to the console
(a subprocess: the global tracer provider is set once per process)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tgstream.demo.settings import parse_demo_settings

SCRIPT = textwrap.dedent('''
    import sys, webtest
    from tgstream.demo import main
    app = main({}, **{
        'sqlalchemy.url': 'sqlite:///%s', 'demo.seed_users': '3', 'demo.pause': '0',
        'demo.otel_console': 'true',
    })
    body = webtest.TestApp(app).get('/tg/stream_db').body
    assert body, body
''')


def test_the_demo_prints_its_spans_with_one_setting(tmp_path):
    script = SCRIPT % (tmp_path / 'demo.sqlite')
    result = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    [request] = [line for line in lines if line.startswith('/tg/stream_db ')]
    assert 'tgstream.outcome=completed' in request
    assert 'tgstream.transaction=' in request
    assert any(line.startswith('  SELECT') for line in lines), lines


def test_the_setting_is_checked():
    assert parse_demo_settings({'demo.otel_console': 'true'}).otel_console
    assert not parse_demo_settings({}).otel_console
    with pytest.raises(Exception, match='demo.otel_console'):
        parse_demo_settings({'demo.otel_console': 'maybe'})
