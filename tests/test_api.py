"""The stable API: ``tgstream.__all__`` (README.rst, "Stable API")."""
from __future__ import annotations

import importlib

import tgstream

STABLE = {
    'Batch', 'ServerSentEvent', 'StreamEncodeError', 'StreamFinished',
    'abort_session', 'checkpoint', 'commit_session',
    'content_disposition', 'expose', 'flush', 'includeme', 'is_stream', 'listen', 'notify',
    'request', 'sse_idle', 'stream_query',
}


def test_all_is_sorted_and_every_name_resolves():
    assert tgstream.__all__ == sorted(tgstream.__all__)
    assert STABLE <= set(tgstream.__all__)
    for name in tgstream.__all__:
        assert getattr(tgstream, name) is not None, name


def test_internal_types_live_in_their_modules():
    assert not hasattr(tgstream, 'StreamSettings')
    from tgstream.settings import StreamSettings

    assert StreamSettings().transaction == 'stream'


def test_stream_iterator_is_no_longer_public_api():
    import pytest

    from tgstream.stream import StreamIterator

    assert 'StreamIterator' not in tgstream.__all__
    with pytest.warns(DeprecationWarning, match='tgstream.is_stream'):
        assert tgstream.StreamIterator is StreamIterator
    with pytest.raises(AttributeError):
        tgstream.NoSuchName  # noqa: B018


def test_star_import_gives_the_stable_names():
    namespace: dict = {}
    exec('from tgstream import *', namespace)  # noqa: S102
    assert STABLE <= set(namespace)


def test_documented_submodule_names_resolve():
    for dotted in (
        'tgstream.events.Outcome', 'tgstream.events.TransactionOutcome',
        'tgstream.events.transaction_outcome',
        'tgstream.renderers.add_stream_renderer', 'tgstream.renderers.StreamRendererInfo',
        'tgstream.renderers.StreamRenderer', 'tgstream.renderers.JSONRulesRenderer',
        'tgstream.renderers.Encoder', 'tgstream.renderers.BaseEncoder',
        'tgstream.renderers.csvsafe.guard_row', 'tgstream.renderers.csvsafe.guard_cell',
        'tgstream.renderers.templates.jinja2_stream_renderer',
        'tgstream.live.PayloadTooLarge', 'tgstream.live.LiveStream',
        'tgstream.live.get_hub', 'tgstream.live.stop_hub',
    ):
        module, _, name = dotted.rpartition('.')
        assert hasattr(importlib.import_module(module), name), dotted


def test_an_app_pays_only_for_the_add_ons_it_uses():
    # Without the toolbar and Jinja2 templates, including tgstream imports
    # neither (pyramid_debugtoolbar and pygments alone are ~8 000 objects
    # that every full garbage collection of the process would walk).
    import subprocess
    import sys

    code = (
        'import sys\n'
        'from pyramid.config import Configurator\n'
        'config = Configurator()\n'
        'config.include("tgstream")\n'
        'config.make_wsgi_app()\n'
        'print(sorted(m for m in sys.modules if m.split(".")[0] in '
        '("pyramid_debugtoolbar", "pygments", "jinja2", "pyramid_jinja2")))\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'
