"""The ``json`` and ``ndjson`` stream renderers.

``config.include('tgstream')`` registers them; use one with ``stream=True``::

    @expose('json', route_name='users', stream=True)
    def users(request):
        query = select(User).order_by(User.id)
        for user in request.dbsession.scalars(query.execution_options(yield_per=1000)):
            yield user

Per-view options go in ``stream_options={...}`` and are checked when the
configuration is committed. Encoding rules: :mod:`tgstream.renderers.jsonrules`.
"""
from __future__ import annotations

from typing import Any

from . import BaseEncoder, JSONRulesRenderer
from .encoders import Encoder
from .jsonrules import JSONEncoding, plan_of

#: The fixed in-band record an NDJSON stream with ``error_marker`` sends
#: when it fails (never the exception's text).
NDJSON_ERROR_MARKER = b'{"error":"stream failed"}\n'


class JSONArrayEncoder(BaseEncoder):
    """The items of a stream as one JSON array: ``[`` with the first item,
    separators between items, ``]`` from :meth:`end` (after the commit)."""

    flush_each = False

    def __init__(self, encoding: JSONEncoding):
        self.dumps = encoding.dumps
        self.dumps_batch = encoding.dumps_batch
        self.separator = encoding.separator
        #: batches of tgstream.items.TupleRows are encoded as their rows
        self.takes_tuple_rows = encoding.accepts_tuples
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


class NDJSONEncoder(BaseEncoder):
    """One JSON document per line (``\\n`` after each)."""

    flush_each = False

    def __init__(self, encoding: JSONEncoding, error_marker: bool = False):
        self.dumps = encoding.dumps
        self.prepare = encoding.prepare
        self.takes_tuple_rows = encoding.accepts_tuples
        self.check_lines = encoding.may_break_lines
        self.error_marker = error_marker

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
        # rows become dicts in one pass (the same documents)
        return b''.join([encode(item) for item in self.prepare(items)])

    def end(self) -> bytes:
        return b''

    def error(self) -> bytes | None:
        return NDJSON_ERROR_MARKER if self.error_marker else None


class JSONStreamRenderer(JSONRulesRenderer):
    """``renderer='json'``: one JSON array, ``application/json``."""

    content_type = 'application/json'
    options = frozenset()

    def encoder(self, request) -> Encoder:
        return JSONArrayEncoder(JSONEncoding(request, plan=plan_of(self, request)))


class NDJSONStreamRenderer(JSONRulesRenderer):
    """``renderer='ndjson'``: one JSON document per line,
    ``application/x-ndjson``. ``stream_options={'error_marker': True}``
    ends a failed stream with the line ``{"error":"stream failed"}``."""

    content_type = 'application/x-ndjson'
    options = frozenset({'error_marker'})

    def encoder(self, request) -> Encoder:
        return NDJSONEncoder(
            JSONEncoding(request, plan=plan_of(self, request, one_line=True)),
            self.error_marker)


def includeme(config) -> None:
    config.add_stream_renderer('json', JSONStreamRenderer)
    config.add_stream_renderer('ndjson', NDJSONStreamRenderer)


__all__ = [
    'JSONArrayEncoder',
    'JSONStreamRenderer',
    'NDJSONEncoder',
    'NDJSONStreamRenderer',
]
