"""``tgstream.renderers`` itself: the registry (``add_stream_renderer``,
``find_stream_renderer``), ``StreamRendererInfo`` and the option checks of
the base classes."""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest
from pyramid.exceptions import ConfigurationError

from tgstream.renderers import StreamRenderer, StreamRendererInfo, check_iterable


def test_the_package_imports_no_format_module():
    # The format modules import the package (for their base classes), never
    # the other way round: no import cycle. The package registers them by
    # dotted name.
    import tgstream.renderers as package

    root = pathlib.Path(package.__file__).parent
    for name in ('__init__.py', 'base.py', 'encoders.py'):
        tree = ast.parse((root / name).read_text())
        imported: set = {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.level}
        imported |= {alias.name for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.level and not node.module
                     for alias in node.names}
        formats = {'json', 'csv', 'sse', 'templates', 'jsonrules', 'csvsafe'}
        assert not imported & formats, (name, imported)
    code = ('import sys, tgstream.renderers; '
            'print(*sorted(m for m in sys.modules if m.startswith("tgstream.renderers.")))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    # (sse: tgstream itself exports ServerSentEvent and sse_idle)
    loaded = out.split()
    assert 'tgstream.renderers.base' in loaded
    assert 'tgstream.renderers.json' not in loaded and 'tgstream.renderers.csv' not in loaded


class Seen(StreamRenderer):
    options = frozenset({'flag'})
    infos: list = []

    def __init__(self, info):
        super().__init__(info)
        self.infos.append(info)
        self.flag = self.bool_option(info.options, 'flag', False)

    def encoder(self, request):  # pragma: no cover - not streamed here
        raise NotImplementedError


def _configure(make_app, options, renderer='seen'):
    def setup(config):
        config.add_stream_renderer('seen', 'tests.renderers.test_renderers.Seen')
        config.add_route('v', '/v')
        config.add_view(lambda request: [], route_name='v', renderer=renderer,
                        stream=True, stream_options=options)

    return make_app(setup)


def test_a_dotted_factory_gets_the_views_info(make_app):
    Seen.infos.clear()
    _configure(make_app, {'flag': True})
    (info,) = Seen.infos
    assert isinstance(info, StreamRendererInfo)
    assert (info.name, info.type, info.options) == ('seen', 'seen', {'flag': True})
    assert 'route' in info.view_name and info.settings is info.registry.settings


@pytest.mark.parametrize('options, message', [
    ({'nope': 1}, r"stream_options nope: unknown stream option for renderer 'seen'; "
                  r"it takes: flag"),
    ({'a': 1, 'b': 2}, r'stream_options a, b: unknown stream options'),
    ({'flag': 'yes'}, r"stream_options flag: 'yes' is not True or False"),
])
def test_option_checks_name_the_view_and_the_option(make_app, options, message):
    with pytest.raises(ConfigurationError, match=message):
        _configure(make_app, options)


def test_unknown_renderer_lists_those_that_can_stream(make_app):
    with pytest.raises(ConfigurationError,
                       match=r"renderer 'string' cannot stream.*csv, json, ndjson, seen, sse"):
        _configure(make_app, {}, renderer='string')


def test_stream_options_without_a_renderer_are_refused(make_app):
    def setup(config):
        config.add_route('v', '/v')
        config.add_view(lambda request: [], route_name='v', stream=True,
                        stream_options={'x': 1})

    with pytest.raises(ConfigurationError, match='need a renderer that takes them'):
        make_app(setup)


@pytest.mark.parametrize('value, shown', [('text', 'str'), (b'x', 'bytes'), (None, 'None'),
                                          (3, 'int')])
def test_check_iterable_refuses_what_is_not_a_stream(value, shown):
    with pytest.raises(TypeError, match='view v returned %s' % shown):
        check_iterable(value, 'v')
    assert check_iterable([1], 'v') == [1]
