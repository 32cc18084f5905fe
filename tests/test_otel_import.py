"""Without OpenTelemetry installed, tgstream imports nothing of it and
changes nothing (a subprocess in which ``opentelemetry`` cannot be imported)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import sys
    sys.modules['opentelemetry'] = None  # as if not installed

    import webtest
    from pyramid.config import Configurator

    def lines(request):
        yield 'a\\n'
        yield 'b\\n'

    with Configurator() as config:
        config.include('pyramid_tm')
        config.include('tgstream')
        config.add_route('lines', '/lines')
        config.add_view(lines, route_name='lines', stream=True)
        app = config.make_wsgi_app()
    assert webtest.TestApp(app).get('/lines').body == b'a\\nb\\n'
    from tgstream.otel import live_metrics
    assert live_metrics(app.registry) is None
    loaded = sorted(
        name for name, module in sys.modules.items()
        if module is not None and (name.startswith('opentelemetry')
                                   or name.startswith('tgstream.otel.'))
    )
    print('loaded:', loaded)
    assert not loaded, loaded
    from pyramid.interfaces import ITweens
    names = [n for n, _ in app.registry.getUtility(ITweens).implicit()]
    assert not any('opentelemetry' in n for n in names)
    print('ok')
''')


def test_without_opentelemetry_nothing_is_imported():
    result = subprocess.run(
        [sys.executable, '-c', SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'ok' in result.stdout


def test_with_opentelemetry_the_integration_loads():
    # the same script's check, inverted: it can fail
    script = SCRIPT.replace("sys.modules['opentelemetry'] = None", 'pass').replace(
        'live_metrics(app.registry) is None', 'live_metrics(app.registry) is not None')
    result = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert 'tgstream.otel.metrics' in result.stdout
