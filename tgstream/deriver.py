"""The ``stream_view`` view deriver: the ``stream=True`` view option.

Placed under ``rendered_view`` it sees what the view returned before any
renderer does. For a stream view it runs the view, primes the stream to its
first item (still inside the tween chain, so exception views, pyramid_tm and
pyramid_retry treat errors raised before the first item as usual) and
returns ``request.response`` with the stream as its body. Views without the
options it knows are returned untouched.

Its options are prefixed (``stream_content_type``, ``stream_filename``...):
Pyramid hands a view option to every deriver and predicate of that name, so
a generic name would collide with other add-ons' predicates.
"""
from __future__ import annotations

from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IRendererFactory, IResponse
from pyramid.response import Response
from pyramid.util import object_description

from .headers import content_disposition, is_media_type
from .lifecycle import POLICY_KEY, hand_over, stream_response
from .renderers import (
    IStreamRendererFactory,
    check_iterable,
    find_stream_renderer,
    renderer_accepts_mapping,
)
from .settings import TRANSACTION_POLICIES, get_settings

#: The view options tgstream adds to every view: its own, prefixed names
#: only, since Pyramid hands an option to every deriver and predicate of that
#: name (cornice, for one, has a ``content_type`` predicate).
OPTIONS = (
    'stream',
    'stream_transaction',
    'stream_options',
    'stream_content_type',
    'stream_filename',
)


def describe_view(info) -> str:
    """``module.function`` (or ``module.Class.attr``) of a view, for errors."""
    view = info.original_view
    qualname = getattr(view, '__qualname__', None)
    if qualname and getattr(view, '__module__', None):
        description = '%s.%s' % (view.__module__, qualname)
    else:
        description = object_description(view)
    attr = info.options.get('attr')
    if attr:
        description = '%s.%s' % (description, attr)
    route = info.options.get('route_name')
    if route:
        description = '%s (route %r)' % (description, route)
    return description


def _check_options(info, name: str) -> tuple:
    options = info.options
    stream = options.get('stream')
    if stream is not None and not isinstance(stream, bool):
        raise ConfigurationError(
            'view %s: stream=%r is not valid; use stream=True or stream=False'
            % (name, stream)
        )
    policy = options.get('stream_transaction')
    if policy is not None and policy not in TRANSACTION_POLICIES:
        raise ConfigurationError(
            'view %s: stream_transaction=%r is not valid; use one of: %s'
            % (name, policy, ', '.join(repr(p) for p in TRANSACTION_POLICIES))
        )
    content_type = options.get('stream_content_type')
    if content_type is not None and not is_media_type(content_type):
        raise ConfigurationError(
            'view %s: stream_content_type=%r is not a media type (type/subtype, '
            'printable ASCII, no CR or LF)' % (name, content_type)
        )
    stream_options = options.get('stream_options')
    if stream_options is not None and not isinstance(stream_options, dict):
        raise ConfigurationError(
            'view %s: stream_options=%r is not a dict' % (name, stream_options)
        )
    if stream_options and not stream:
        raise ConfigurationError(
            'view %s: stream_options need stream=True' % (name,)
        )
    filename = options.get('stream_filename')
    if filename is not None and not (isinstance(filename, str) and filename):
        raise ConfigurationError(
            'view %s: stream_filename=%r is not a file name' % (name, filename)
        )
    return bool(stream), policy, content_type, filename, stream_options


def stream_view(view, info):
    """The ``stream=True`` view option and its companions (:data:`OPTIONS`).

    A view given none of them is returned as it is (``stream_view(view,
    info) is view``): nothing runs for it per request.
    """
    options = info.options
    if all(options.get(option) is None for option in OPTIONS):
        _check_stream_only_renderer(info)
        return view
    name = describe_view(info)
    stream, policy, content_type, filename, stream_options = _check_options(info, name)
    disposition = content_disposition(filename) if filename else None
    if not stream:
        _check_stream_only_renderer(info)
        if content_type is None and policy is None and disposition is None:
            return view
        return _plain_view(view, policy, content_type, disposition)

    registry = info.registry
    renderer = find_stream_renderer(
        registry, options.get('renderer'), name, stream_options,
        view=info.original_view,
    )
    accepts_mapping = renderer_accepts_mapping(
        registry, info.options.get('renderer'), renderer
    )
    default_type = content_type or renderer.content_type

    def streaming_view(context, request):
        settings = get_settings(registry)
        response = request.response
        # Before the view: a type the view sets itself then wins, and the
        # view sees the type its stream will have.
        response.content_type = default_type
        if disposition is not None:
            response.headers['Content-Disposition'] = disposition
        result = view(context, request)
        # Adapted the way Pyramid's rendered_view does: a registered
        # response adapter (config.add_response_adapter) makes a Response.
        if result.__class__ is Response:
            adapted = result
        else:
            adapted = registry.queryAdapterOrSelf(result, IResponse)
        if adapted is not None:
            return stream_response(request, adapted, policy, settings, True, origin=result)
        items, encoder = renderer(check_iterable(result, name, accepts_mapping), request)
        hand_over(
            request, response, items, encoder,
            name=name, policy=policy, settings=settings, origin=result,
        )
        return response

    return streaming_view


def _check_stream_only_renderer(info) -> None:
    # ``renderer='csv'`` (ndjson, sse) without stream=True: Pyramid would
    # only fail at the first request with "No such renderer factory csv".
    renderer = info.options.get('renderer')
    key = getattr(renderer, 'type', None)
    if not key or getattr(renderer, 'name', None) is None:
        return
    registry = info.registry
    if registry.queryUtility(IRendererFactory, name=key) is not None:
        return
    if registry.queryUtility(IStreamRendererFactory, name=key) is not None:
        raise ConfigurationError(
            'view %s: renderer %r streams only with stream=True (it is a tgstream '
            'stream renderer, not a Pyramid renderer); add stream=True to the view'
            % (describe_view(info), renderer.name)
        )


def _plain_view(view, policy, content_type, disposition):
    # Not a stream view: ``stream_content_type`` and ``stream_filename`` (what
    # ``expose(content_type=..., filename=...)`` becomes), and
    # a transaction policy for a Response(app_iter=generator) the stream
    # tween will detect.
    def plain_view(context, request):
        if content_type is not None:
            request.response.content_type = content_type
        if disposition is not None:
            request.response.headers['Content-Disposition'] = disposition
        if policy is not None:
            request.environ[POLICY_KEY] = policy
        return view(context, request)

    return plain_view


stream_view.options = OPTIONS  # type: ignore[attr-defined]
