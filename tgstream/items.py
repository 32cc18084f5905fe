"""What a stream may yield besides its items, the marker of a batch of
rows from one result, and the error for an item that cannot be encoded."""
from __future__ import annotations

from typing import Any, Iterable


class Marker:
    """Base of the singletons a stream yields besides its items
    (:data:`flush`, :data:`tgstream.sse_idle`): found by identity, shown by
    their public name, pickled as the module attribute ``name`` they are."""

    __slots__ = ()
    name = ''
    public_name = ''

    def __repr__(self) -> str:
        return self.public_name

    def __reduce__(self) -> str:
        return self.name


class _Flush(Marker):
    __slots__ = ()
    name, public_name = 'flush', 'tgstream.flush'


#: Yield this from a stream to write everything buffered so far at once.
flush = _Flush()


class Batch:
    """Several items of a stream yielded at once: ``yield Batch(rows)``.

    Each element counts and is encoded as if it had been yielded alone (same
    bytes, same item index in errors), but an encoder with ``encode_batch``
    encodes the whole list in one call -- the fast path for database rows
    (:func:`tgstream.stream_query` yields batches to the renderers). The
    elements are encoded as soon as the batch is yielded.
    """

    __slots__ = ('items',)

    def __init__(self, items: Iterable[Any]):
        self.items: list[Any] = items if isinstance(items, list) else list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __repr__(self) -> str:
        return '<tgstream.Batch of %d items>' % len(self.items)


class ResultRows(list):
    """A list of rows that all come from one result (same columns).

    :func:`tgstream.stream_query` batches are such lists, which lets the
    encoders skip checking each row's columns.
    """

    __slots__ = ()


class TupleRows(list):
    """Rows of one result as plain tuples: the values their ``Row`` would
    hold, in column order, with the result's column names (``keys``, one
    list shared by every batch of the result).

    :func:`tgstream.stream_query` yields such batches to the renderers that
    ask for them (json, ndjson, csv): building a ``Row`` per row costs more
    than encoding it. Each tuple encodes exactly as its ``Row`` would.
    """

    __slots__ = ('keys',)

    def __init__(self, rows: Iterable[Any], keys: list):
        super().__init__(rows)
        self.keys = keys

    def part(self, start: int, size: int) -> 'TupleRows':
        """``size`` rows from ``start``, as the same kind of batch."""
        return TupleRows(self[start:start + size], self.keys)


class StreamEncodeError(Exception):
    """An item of a stream could not be encoded.

    Raised from the stream (so the transaction aborts and the response is
    cut); the message names the item's index and type, ``__cause__`` is the
    encoder's own exception.
    """

    def __init__(self, index: int, item: Any, name: str):
        self.index = index
        self.item_type = type(item)
        super().__init__(
            'stream %s: item %d (%s.%s) could not be encoded'
            % (name, index, self.item_type.__module__,
               self.item_type.__qualname__)
        )
