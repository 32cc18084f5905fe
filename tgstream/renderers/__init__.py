"""Stream renderers: how the value a ``stream=True`` view returns is streamed.

This package is the renderer layer, one module per format: :mod:`.json`
(``json``, ``ndjson``), :mod:`.csv`, :mod:`.sse`, :mod:`.templates`
(pyramid_jinja2); the JSON value rules (:mod:`.jsonrules`), the CSV formula
guard (:mod:`.csvsafe`) and the :class:`~.encoders.Encoder` protocol beside
them. Here: the registry (:func:`add_stream_renderer`,
:func:`find_stream_renderer`) and the base classes of the built-in renderers
(:class:`StreamRenderer`, :class:`JSONRulesRenderer`).

A stream renderer factory is registered under a renderer name (``json``) or
a renderer type (``.jinja2``) with ``config.add_stream_renderer(name,
factory)``. ``factory(info)`` -- ``info`` is a :class:`StreamRendererInfo` --
is called once per view at configuration time (raise ``ConfigurationError``
there for bad ``info.options``) and returns a *stream renderer*: an object
with a ``content_type`` (the default of its streams) that is called per
request as ``renderer(value, request) -> (items, encoder)`` (see
:mod:`.encoders`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import PHASE1_CONFIG
from zope.interface import Interface

from .base import JSONRulesRenderer, StreamRenderer, check_option_names
from .encoders import BaseEncoder, Encoder, RawEncoder


class StreamRendererInfo:
    """What a stream renderer factory knows about the view it serves.

    ``name``, ``type`` (extension with its dot, or the name), ``package`` and
    ``registry`` come from Pyramid's renderer helper; ``settings`` is the
    registry's settings; ``options`` is the view's ``stream_options`` dict
    (``{}`` if absent); ``view_name`` names the view for error messages;
    ``view`` is the view callable as registered (Pyramid's ``view`` renderer
    global), or ``None``.
    """

    def __init__(self, helper, options: dict, view_name: str, view: Any = None):
        self.helper = helper
        self.name = helper.name
        self.type = helper.type
        self.package = helper.package
        self.registry = helper.registry
        self.settings = helper.registry.settings
        self.options = options
        self.view_name = view_name
        self.view = view


class IStreamRendererFactory(Interface):
    """Marker for stream renderer factories (utilities named by renderer)."""


def check_iterable(value: Any, name: str) -> Iterable[Any]:
    if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
        raise TypeError(
            'stream view %s returned %s; a stream=True view must be a '
            'generator function or return an iterable of items'
            % (name, type(value).__name__ if value is not None else 'None')
        )
    return value


class RawStreamRenderer:
    """No renderer: items are ``str`` (encoded with the response charset) or
    ``bytes``, sent as yielded."""

    content_type = 'text/plain; charset=utf-8'

    def __init__(self, info=None):
        pass

    def __call__(self, value: Any, request) -> tuple[Iterable[Any], Encoder]:
        return value, RawEncoder(response=request.response)


def add_stream_renderer(config, name: str, factory: Callable) -> None:
    """Register ``factory`` as the stream renderer for ``name``.

    ``name`` is a renderer name (``'json'``) or a renderer type, i.e. a file
    extension with its dot (``'.jinja2'``). Registered before views, like
    Pyramid's own renderers, so views using it can be checked.
    """
    factory = config.maybe_dotted(factory)

    def register():
        config.registry.registerUtility(factory, IStreamRendererFactory, name=name)

    config.action((IStreamRendererFactory, name), register, order=PHASE1_CONFIG)


def find_stream_renderer(
    registry, renderer, view_name: str, options: dict | None = None, view: Any = None
):
    """The stream renderer for a view's ``renderer`` option.

    Raises :class:`ConfigurationError` naming the view and the renderer when
    the renderer cannot stream.
    """
    if renderer is None or getattr(renderer, 'name', None) is None:
        if options:
            raise ConfigurationError(
                'view %s: stream_options=%r need a renderer that takes them'
                % (view_name, options)
            )
        return RawStreamRenderer()
    for key in (renderer.name, getattr(renderer, 'type', None)):
        factory = registry.queryUtility(IStreamRendererFactory, name=key or '')
        if factory is not None and key:
            return factory(
                StreamRendererInfo(renderer, dict(options or {}), view_name, view)
            )
    known = sorted(
        name for name, _ in registry.getUtilitiesFor(IStreamRendererFactory)
    )
    raise ConfigurationError(
        'view %s: renderer %r cannot stream (stream=True); renderers that '
        'can: %s, or no renderer for str/bytes items'
        % (view_name, renderer.name, ', '.join(known) or '(none registered)')
    )


def includeme(config) -> None:
    """Register the built-in stream renderers (included by ``tgstream``).

    By dotted name: the format modules import this package for their base
    classes, never the other way round.
    """
    config.include('.json')
    config.include('.csv')
    config.include('.sse')
    config.include('.templates')


__all__ = [
    'BaseEncoder',
    'Encoder',
    'IStreamRendererFactory',
    'JSONRulesRenderer',
    'RawEncoder',
    'RawStreamRenderer',
    'StreamRenderer',
    'StreamRendererInfo',
    'add_stream_renderer',
    'check_iterable',
    'check_option_names',
    'find_stream_renderer',
]
