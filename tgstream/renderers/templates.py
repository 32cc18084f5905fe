"""Streamed Jinja2 templates: ``stream=True`` with pyramid_jinja2 renderers.

Flask's ``stream_template`` for Pyramid. With ``pyramid_jinja2`` included, a
view configured with a Jinja2 renderer and ``stream=True`` returns its dict
as usual (values may be generators, e.g. database rows); the template is
rendered with Jinja2's streaming API (``Template.generate``) while the
response streams, inside the request and its transaction::

    @expose('templates/rows.jinja2', stream=True)
    def rows(request):
        return {'rows': request.dbsession.execute(select(Row)).scalars()}

Stream renderers are registered for ``.jinja2`` and for every extension
added with ``config.add_jinja2_renderer`` in the same commit (or later ones:
``config.add_stream_renderer('.html', 'tgstream.renderers.templates.jinja2_stream_renderer')``).
pyramid_jinja2 is optional: without it these views are configuration errors.

A streamed template writes its pieces as they are rendered (see the README's
coalescing rule); ``{{ flush }}`` in the template writes everything rendered
so far at once, e.g. before a slow query in a long page.
"""
from __future__ import annotations

import sys
import types
from functools import partial
from typing import Any, Iterable, Iterator

from pyramid.csrf import get_csrf_token
from pyramid.events import BeforeRender
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import PHASE1_CONFIG, IRendererFactory

from .._compat import jinja2_template
from ..items import flush as flush_marker
from . import IStreamRendererFactory, StreamRendererInfo
from .base import check_option_names
from .encoders import RawEncoder

#: ``stream_options`` keys a template stream view accepts.
OPTIONS = ('buffer',)


def _is_jinja2_factory(factory: Any) -> bool:
    # an app with a pyramid_jinja2 renderer has imported pyramid_jinja2
    module = sys.modules.get('pyramid_jinja2')
    return module is not None and isinstance(factory, module.Jinja2RendererFactory)


def _jinja2_factory_class() -> type | None:
    # pyramid_jinja2's renderer factory, imported only when a view streams a
    # template (an app without one never pays for importing Jinja2)
    try:
        from pyramid_jinja2 import Jinja2RendererFactory
    except ImportError:  # pragma: no cover - the 'jinja2' extra (a subprocess test)
        return None
    return Jinja2RendererFactory


def _check_buffer(info: StreamRendererInfo) -> int | None:
    check_option_names(info, OPTIONS)
    size = info.options.get('buffer')
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ConfigurationError(
            'view %s: stream_options buffer=%r is not valid; use an int >= 2 '
            '(template events per write, Jinja2 enable_buffering) or leave it '
            'out (tgstream coalesces bytes)' % (info.view_name, size)
        )
    return size


def jinja2_stream_renderer(info: StreamRendererInfo) -> 'Jinja2StreamRenderer':
    """Stream renderer factory for pyramid_jinja2 templates.

    Checks at configuration time that a pyramid_jinja2 renderer serves
    ``info.type`` and that ``stream_options`` are valid (``buffer``: Jinja2
    ``enable_buffering`` size); raises :class:`ConfigurationError` naming
    the view otherwise.
    """
    factory_class = _jinja2_factory_class()
    if factory_class is None:
        raise ConfigurationError(
            'view %s: renderer %r with stream=True needs pyramid_jinja2 '
            '(the "jinja2" extra: pip install -e ".[jinja2]" in a checkout; '
            'config.include("pyramid_jinja2"))'
            % (info.view_name, info.name)
        )
    # Renderer factories are registered in PHASE1, before any view.
    factory = info.registry.queryUtility(IRendererFactory, name=info.type)
    if factory is None:
        raise ConfigurationError(
            'view %s: renderer %r with stream=True: no renderer for %r; '
            'config.include("pyramid_jinja2") (or add_jinja2_renderer(%r))'
            % (info.view_name, info.name, info.type, info.type)
        )
    if not isinstance(factory, factory_class):
        raise ConfigurationError(
            'view %s: renderer %r with stream=True: the renderer for %r is %r, '
            'not pyramid_jinja2\'s; tgstream streams pyramid_jinja2 templates '
            'only' % (info.view_name, info.name, info.type, factory)
        )
    return Jinja2StreamRenderer(info, _check_buffer(info))


class TemplateFlush:
    """The ``flush`` global of a streamed template.

    ``{{ flush }}`` (or ``{{ flush() }}``) renders as nothing and writes
    everything rendered so far at once -- :data:`tgstream.flush` for
    templates, which can only output text. One per render: rendering it sets
    a flag the stream checks after each piece. Inside a block Jinja2 renders
    to a string first (a macro, ``{% filter %}``, ``{% set %}`` block) it
    takes effect after that block's output.
    """

    __slots__ = ('requested',)

    def __init__(self) -> None:
        self.requested = False

    def __html__(self) -> str:  # autoescaped templates
        self.requested = True
        return ''

    def __str__(self) -> str:
        self.requested = True
        return ''

    def __call__(self) -> 'TemplateFlush':
        return self

    def __repr__(self) -> str:
        return '<tgstream template flush>'


class Jinja2StreamRenderer:
    """Renders one view's template piece by piece (see the module doc).

    Called inside the view as ``renderer(value, request) -> (items,
    encoder)``: builds Pyramid's renderer globals (plus ``flush``, see
    :class:`TemplateFlush`), notifies :class:`~pyramid.events.BeforeRender`,
    finds the template as pyramid_jinja2 does and returns the chunks of
    ``Template.generate``, encoded with the response's charset.
    """

    content_type = 'text/html; charset=utf-8'
    #: takes the view's dict of template values (not a stream of items)
    accepts_mapping = True

    def __init__(self, info: StreamRendererInfo, buffer: int | None = None):
        self.info = info
        self.buffer = buffer

    def template(self):
        """The template, resolved exactly as pyramid_jinja2 resolves it
        (relative to the view's package, asset specs, search paths)."""
        template = jinja2_template(self.info.helper)
        if template.environment.is_async:
            raise RuntimeError(
                'view %s: template %r cannot stream: its Jinja2 environment '
                'is async (enable_async), and Template.generate() then '
                'renders the whole page first' % (self.info.view_name, self.info.name)
            )
        return template

    def system_values(self, value: dict, request, flush: Any = None) -> dict:
        """Pyramid's renderer globals plus ``value``, after BeforeRender
        subscribers ran (as ``RendererHelper.render_view`` does)."""
        info = self.info
        system = BeforeRender(
            {
                'flush': flush if flush is not None else TemplateFlush(),
                # Pyramid's mapper leaves a class view's instance here.
                'view': request.__dict__.pop('__view__', info.view),
                'renderer_name': info.name,
                'renderer_info': info.helper,
                'context': getattr(request, 'context', None),
                'request': request,
                'req': request,
                'get_csrf_token': partial(get_csrf_token, request),
            },
            value,
        )
        info.registry.notify(system)
        system.update(value)  # the view's values win, as in pyramid_jinja2
        return system

    def __call__(self, value: Any, request) -> tuple[Iterable[str], RawEncoder]:
        if not isinstance(value, dict):
            raise TypeError(
                'view %s returned %s; a view streaming template %r must '
                'return a dict (its values may be generators)'
                % (self.info.view_name, type(value).__name__, self.info.name)
            )
        template = self.template()
        flush = TemplateFlush()
        events = template.generate(self.system_values(value, request, flush))
        chunks: Iterator[str] = events
        if self.buffer:
            from jinja2.environment import TemplateStream

            chunks = TemplateStream(events)
            chunks.enable_buffering(self.buffer)
        return (
            _closing(chunks, events, value, flush),
            RawEncoder(response=request.response),
        )


def _closing(
    chunks: Iterator[str], events, value: dict, flush: TemplateFlush
) -> Iterator[Any]:
    # Closing the stream (error, early disconnect) closes the template's
    # generator and the view's generator values now, inside the request and
    # before the transaction ends -- not whenever they are collected.
    try:
        for chunk in chunks:
            yield chunk
            if flush.requested:  # {{ flush }} was rendered into this piece
                flush.requested = False
                yield flush_marker
    finally:
        events.close()
        for item in value.values():
            if isinstance(item, types.GeneratorType):
                item.close()


def register_jinja2_renderers(registry) -> None:
    """Give every pyramid_jinja2 renderer type a stream renderer (unless one
    is registered already)."""
    for name, factory in registry.getUtilitiesFor(IRendererFactory):
        if _is_jinja2_factory(factory) and name and registry.queryUtility(
            IStreamRendererFactory, name=name
        ) is None:
            registry.registerUtility(
                jinja2_stream_renderer, IStreamRendererFactory, name=name
            )


def includeme(config) -> None:
    """Register the Jinja2 stream renderers (included by ``tgstream``)."""
    config.add_stream_renderer('.jinja2', jinja2_stream_renderer)
    # After every add_renderer (PHASE1_CONFIG) and before any view (order 0),
    # whatever the include order: extensions from add_jinja2_renderer.
    config.action(
        None, partial(register_jinja2_renderers, config.registry),
        order=PHASE1_CONFIG + 1,
    )
