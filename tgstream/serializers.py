"""The ``json``, ``ndjson``, ``csv`` and ``sse`` stream renderers.

``config.include('tgstream')`` registers them; use one with ``stream=True``::

    @expose('json', route_name='users', stream=True)
    def users(request):
        query = select(User).order_by(User.id)
        for user in request.dbsession.scalars(query.execution_options(yield_per=1000)):
            yield user

Per-view options go in ``stream_options={...}`` and are checked when the
configuration is committed. Encoding rules: :mod:`tgstream.jsonrules`.
"""
from __future__ import annotations

from typing import Any, Iterable

from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import IRendererFactory
from pyramid.renderers import JSON

from .encoders import Encoder
from .jsonrules import JSONEncoding
from .query import result_batches

#: The fixed in-band record an NDJSON stream with ``error_marker`` sends
#: when it fails (never the exception's text).
NDJSON_ERROR_MARKER = b'{"error":"stream failed"}\n'


class StreamRenderer:
    """Base of the built-in stream renderers: checks ``stream_options``.

    Subclasses set ``content_type``, ``options`` (the option names they
    take) and ``batches`` (whether a returned
    :class:`~tgstream.query.QueryStream` is streamed batch by batch), and
    implement :meth:`encoder`.
    """

    content_type = 'application/octet-stream'
    options: frozenset = frozenset()
    batches = True

    def __init__(self, info):
        self.view_name = info.view_name
        unknown = sorted(set(info.options) - self.options)
        if unknown:
            raise self.option_error(
                ', '.join(unknown),
                'unknown stream option%s for renderer %r; it takes: %s'
                % ('s' if len(unknown) > 1 else '', info.name,
                   ', '.join(sorted(self.options)) or '(none)'),
            )
        self.error_marker = self.bool_option(info.options, 'error_marker', False)

    def option_error(self, option: str, problem: str) -> ConfigurationError:
        return ConfigurationError(
            'view %s: stream_options %s: %s' % (self.view_name, option, problem)
        )

    def bool_option(self, options: dict, name: str, default: bool) -> bool:
        if name not in options:
            return default
        value = options[name]
        if not isinstance(value, bool):
            raise self.option_error(name, '%r is not True or False' % (value,))
        return value

    def __call__(self, value: Any, request) -> tuple[Iterable[Any], Encoder]:
        if self.batches:
            batches = getattr(value, 'tgstream_batches', None)
            if batches is not None:  # a QueryStream returned by the view
                value = batches()
            else:  # a SQLAlchemy Result, ScalarResult or Query
                value = result_batches(value) or value
        return value, self.encoder(request)

    def encoder(self, request) -> Encoder:  # pragma: no cover - abstract
        raise NotImplementedError


class JSONRulesRenderer(StreamRenderer):
    """A stream renderer that encodes with the app's ``json`` renderer rules:
    that renderer must be a :class:`pyramid.renderers.JSON` (checked here, at
    configuration time, so its rules are never silently ignored)."""

    def __init__(self, info):
        super().__init__(info)
        renderer = info.registry.queryUtility(IRendererFactory, name='json')
        if renderer is not None and not isinstance(renderer, JSON):
            raise ConfigurationError(
                'view %s: renderer %r encodes with the rules of the app\'s '
                '\'json\' renderer, but that is %r, not a '
                'pyramid.renderers.JSON; register a JSON(...) as \'json\' (its '
                'serializer=, options and adapters are honoured)'
                % (self.view_name, info.name, renderer)
            )


class JSONArrayEncoder:
    """The items of a stream as one JSON array: ``[`` with the first item,
    separators between items, ``]`` from :meth:`end` (after the commit)."""

    flush_each = False

    def __init__(self, encoding: JSONEncoding):
        self.dumps = encoding.dumps
        self.dumps_batch = encoding.dumps_batch
        self.separator = encoding.separator
        self.started = False

    def encode(self, item: Any) -> bytes:
        data = self.dumps(item)
        if self.started:
            return self.separator + data
        self.started = True
        return b'[' + data

    def encode_batch(self, items: list) -> bytes:
        if not items:
            return b''
        data = self.dumps_batch(items)
        prefix = self.separator if self.started else b'['
        self.started = True
        return prefix + data

    def end(self) -> bytes:
        return b']' if self.started else b'[]'


class NDJSONEncoder:
    """One JSON document per line (``\\n`` after each)."""

    flush_each = False

    def __init__(self, encoding: JSONEncoding, error_marker: bool = False):
        self.dumps = encoding.dumps
        self.check_lines = encoding.may_break_lines
        if error_marker:
            self.error = lambda: NDJSON_ERROR_MARKER

    def encode(self, item: Any) -> bytes:
        data = self.dumps(item)
        if self.check_lines and (b'\n' in data or b'\r' in data):
            raise ValueError(
                'the json renderer\'s serializer wrote a line break; NDJSON '
                'needs one document per line (drop its indent-like options)'
            )
        return data + b'\n'

    def encode_batch(self, items: list) -> bytes:
        if not items:
            return b''
        encode = self.encode
        return b''.join([encode(item) for item in items])

    def end(self) -> bytes:
        return b''


class JSONStreamRenderer(JSONRulesRenderer):
    """``renderer='json'``: one JSON array, ``application/json``."""

    content_type = 'application/json'
    options = frozenset()

    def encoder(self, request) -> Encoder:
        return JSONArrayEncoder(JSONEncoding(request))


class NDJSONStreamRenderer(JSONRulesRenderer):
    """``renderer='ndjson'``: one JSON document per line,
    ``application/x-ndjson``. ``stream_options={'error_marker': True}``
    ends a failed stream with the line ``{"error":"stream failed"}``."""

    content_type = 'application/x-ndjson'
    options = frozenset({'error_marker'})

    def encoder(self, request) -> Encoder:
        return NDJSONEncoder(JSONEncoding(request, one_line=True), self.error_marker)


def includeme(config) -> None:
    from .csvstream import CSVStreamRenderer
    from .sse import SSEStreamRenderer

    config.add_stream_renderer('json', JSONStreamRenderer)
    config.add_stream_renderer('ndjson', NDJSONStreamRenderer)
    config.add_stream_renderer('csv', CSVStreamRenderer)
    config.add_stream_renderer('sse', SSEStreamRenderer)


__all__ = [
    'JSONArrayEncoder',
    'JSONRulesRenderer',
    'JSONStreamRenderer',
    'NDJSONEncoder',
    'NDJSONStreamRenderer',
    'StreamRenderer',
]
