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

A stream renderer streams *items*: the view must return an iterable of
them, and a mapping, ``str``, ``bytes`` or ``bytearray`` is refused with a
``TypeError`` (iterating a dict would stream its keys). A renderer that
takes a mapping instead (a template takes its dict of values) says so with
``add_stream_renderer(..., accepts_mapping=True)`` or an ``accepts_mapping
= True`` attribute.
"""
from __future__ import annotations

from collections.abc import Mapping
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


class IMappingStreamRenderer(Interface):
    """Marker: the stream renderer of this name takes a mapping (utilities
    named by renderer, registered by ``accepts_mapping=True``)."""


#: What a stream view of an item-streaming renderer must not return: each is
#: iterable, but not as a stream of items.
NOT_ITEMS = (Mapping, str, bytes, bytearray)


def check_iterable(value: Any, name: str, accepts_mapping: bool = False) -> Iterable[Any]:
    """``value`` if a stream view may return it, else a ``TypeError`` naming
    the view ``name`` and the type."""
    if accepts_mapping and isinstance(value, Mapping):
        return value
    if isinstance(value, NOT_ITEMS) or not hasattr(value, '__iter__'):
        kind_name = 'None' if value is None else type(value).__name__
        raise TypeError(
            'stream view %s returned %s; a stream=True view must be a '
            'generator function or return an iterable of items (e.g. a '
            'generator or a list), not a mapping, str, bytes or bytearray%s'
            % (name, kind_name,
               ' (a mapping would stream its keys: return .items() or '
               '.values(), or [the_mapping] for one item)'
               if isinstance(value, Mapping) else '')
        )
    return value


def renderer_accepts_mapping(registry, renderer, stream_renderer: Any) -> bool:
    """Does the view's stream renderer take a mapping rather than items?"""
    if getattr(stream_renderer, 'accepts_mapping', False) is True:
        return True
    if renderer is None or getattr(renderer, 'name', None) is None:
        return False
    key = _matching_key(registry, renderer)
    return key is not None and bool(
        registry.queryUtility(IMappingStreamRenderer, name=key)
    )


def _matching_key(registry, renderer) -> str | None:
    # the renderer name, else its type, that a stream renderer is registered for
    for key in (renderer.name, getattr(renderer, 'type', None)):
        if key and registry.queryUtility(IStreamRendererFactory, name=key) is not None:
            return key
    return None


class RawStreamRenderer:
    """No renderer: items are ``str`` (encoded with the response charset) or
    ``bytes``, sent as yielded."""

    content_type = 'text/plain; charset=utf-8'

    def __init__(self, info=None):
        pass

    def __call__(self, value: Any, request) -> tuple[Iterable[Any], Encoder]:
        return value, RawEncoder(response=request.response)


def add_stream_renderer(
    config, name: str, factory: Callable, accepts_mapping: bool = False
) -> None:
    """Register ``factory`` as the stream renderer for ``name``.

    ``name`` is a renderer name (``'json'``) or a renderer type, i.e. a file
    extension with its dot (``'.jinja2'``). Registered before views, like
    Pyramid's own renderers, so views using it can be checked.

    By default the renderer streams items: a view returning a mapping,
    ``str``, ``bytes`` or ``bytearray`` is a ``TypeError``. With
    ``accepts_mapping=True`` the renderer is given the mapping a view
    returns (as a template is given its dict of values).
    """
    factory = config.maybe_dotted(factory)
    if not isinstance(accepts_mapping, bool):
        raise ConfigurationError(
            'add_stream_renderer(%r): accepts_mapping=%r is not True or False'
            % (name, accepts_mapping)
        )

    def register():
        config.registry.registerUtility(factory, IStreamRendererFactory, name=name)
        if accepts_mapping:
            config.registry.registerUtility(True, IMappingStreamRenderer, name=name)
        else:
            config.registry.unregisterUtility(provided=IMappingStreamRenderer, name=name)

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
    key = _matching_key(registry, renderer)
    if key is not None:
        factory = registry.queryUtility(IStreamRendererFactory, name=key)
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
