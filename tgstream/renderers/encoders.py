"""Encoders turn the items a stream yields into the bytes sent.

An encoder is created per stream (it may keep framing state, such as "is
this the first JSON item?") and has these members (:class:`Encoder`):

``encode(item) -> bytes``
    the bytes for one item (may be ``b''``);
``end() -> bytes``
    the closing bytes, produced only after the stream's items are exhausted
    *and* its transaction has committed (``]`` of a JSON array);
``flush_each``
    true when every item must be written at once (server-sent events).

``encode_batch(items) -> bytes``
    the bytes for a list of items, exactly ``b''.join(encode(i) for i in
    items)`` but faster where the format allows (one serializer call);
``error() -> bytes | None``
    a fixed in-band marker announcing that the stream failed (an NDJSON
    error record, an SSE ``error`` event), or ``None``. It is sent after the
    failure -- the transaction is already aborted -- and then the response
    is cut all the same. It must never contain the exception's text: that
    stays in the server log.

The last two are optional: :class:`BaseEncoder` gives their defaults (and
the stream uses the same defaults for an encoder that lacks them).

``takes_tuple_rows`` (optional, false when absent)
    true when ``encode_batch`` takes a :class:`tgstream.items.TupleRows`
    batch (rows as plain tuples with their column names, each encoded as its
    SQLAlchemy ``Row`` would be): the stream renderers then stream a
    returned :func:`tgstream.stream_query` of a Core statement (or a
    returned ``yield_per`` result of one) that way, without a ``Row`` per
    row (the ``json``, ``ndjson`` and ``csv`` renderers);
``takes_text_rows`` (optional, false when absent)
    true when it also takes :class:`tgstream.query.TextRows` (PostgreSQL
    rows as the text ``str()`` gives of their values: the ``csv`` renderer).

Raising from ``encode`` aborts the stream like any other mid-stream error.
"""
from __future__ import annotations

import weakref
from typing import Any, Protocol


class Encoder(Protocol):
    """What a stream needs from an encoder (see the module docstring)."""

    flush_each: bool

    def encode(self, item: Any) -> bytes: ...

    def end(self) -> bytes: ...

    def encode_batch(self, items: list) -> bytes: ...

    def error(self) -> bytes | None: ...


class BaseEncoder:
    """Defaults of the optional :class:`Encoder` members; subclass it and
    write ``encode`` and ``end``."""

    flush_each = False

    def encode(self, item: Any) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def end(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode_batch(self, items: list) -> bytes:
        """One item after the other (override when one call can do all)."""
        encode = self.encode
        return b''.join([encode(item) for item in items])

    def error(self) -> bytes | None:
        """No in-band error marker."""
        return None


class RawEncoder(BaseEncoder):
    """Items are ``bytes`` (sent as they are) or ``str``, encoded with
    ``charset`` or else the charset of ``response`` as it is when the first
    ``str`` item arrives (a stream may set it before its first item), or
    else utf-8."""

    flush_each = False

    def __init__(self, charset: str | None = None, response: Any = None):
        self.charset = charset
        # weakly: the response holds the stream, which holds this encoder
        self._response = weakref.ref(response) if response is not None else None

    def encode(self, item: Any) -> bytes:
        if item.__class__ is bytes:
            return item
        if isinstance(item, str):
            charset = self.charset
            if charset is None:
                response = self._response() if self._response is not None else None
                charset = self.charset = getattr(response, 'charset', None) or 'utf-8'
            return item.encode(charset)
        if isinstance(item, (bytes, bytearray, memoryview)):
            return bytes(item)
        raise TypeError(
            'a stream without a renderer must yield str or bytes, not %s; '
            'use a renderer (json, ndjson, csv, sse) to serialise objects'
            % type(item).__name__
        )

    def end(self) -> bytes:
        return b''
