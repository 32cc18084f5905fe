"""``tgstream.coalesce``: the delivery rule and the encoding, on their own
(no request, no server): which items go into one write."""
from __future__ import annotations

import pytest

from tgstream.coalesce import FAST_PULL, FAST_RUN, ClientGone, Coalescer
from tgstream.items import Batch, StreamEncodeError, flush
from tgstream.renderers.encoders import RawEncoder


class Counting(RawEncoder):
    """Raw bytes; counts encode_batch calls."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def encode_batch(self, items):
        self.batches += 1
        return b''.join(self.encode(item) for item in items)


def writes(coalescer, fast_pull=FAST_PULL, fast_run=FAST_RUN):
    out = []
    first = coalescer.first()
    if first is None:
        return out
    out.append(first)
    while True:
        buffered: list[bytes] = []
        exhausted = coalescer.collect(buffered, fast_pull, fast_run)
        if buffered:
            out.append(b''.join(buffered))
        if exhausted:
            return out


def make(items, encoder=None, **kw):
    kw.setdefault('chunk_size', 1 << 20)
    kw.setdefault('flush_interval', 60.0)
    return Coalescer(items, encoder or RawEncoder(), name='test', **kw)


def test_short_runs_are_written_item_by_item():
    items = [b'%d' % n for n in range(FAST_RUN - 1)]
    assert writes(make(items), fast_pull=60.0) == items


def test_a_long_fast_run_is_joined_and_encoded_in_batches():
    encoder = Counting()
    coalescer = make([b'x'] * 100, encoder)
    out = writes(coalescer, fast_pull=60.0, fast_run=0)
    assert b''.join(out) == b'x' * 100
    assert len(out) < 100 and encoder.batches > 0
    assert coalescer.items_sent == 100


def test_slow_pulls_never_coalesce():
    # fast_pull below any real pull: every item is its own write
    items = [b'a', b'b', b'c']
    assert writes(make(items), fast_pull=-1.0, fast_run=1) == items


def test_flush_releases_what_is_held():
    out = writes(make([b'a', b'b', flush, b'c']), fast_pull=60.0, fast_run=0)
    assert out == [b'a', b'b', b'c']


def test_first_skips_flush_markers_and_knows_an_empty_stream():
    assert make([flush, flush]).first() is None
    assert make([flush, b'a']).first() == b'a'


def test_an_encoding_error_names_the_item_and_keeps_what_came_before():
    coalescer = make([b'a', b'b', 3, b'd'])
    assert coalescer.first() == b'a'
    buffered: list[bytes] = []
    with pytest.raises(StreamEncodeError, match='item 2'):
        coalescer.collect(buffered, 60.0, 0)
    assert buffered == [b'b']
    assert coalescer.items_sent == 2


def test_a_batch_is_encoded_as_one_and_blames_its_element():
    coalescer = make([Batch([b'a', b'b']), Batch([b'c', 4])])
    assert coalescer.first() == b'ab'
    with pytest.raises(StreamEncodeError, match='item 3'):
        coalescer.collect([], 60.0, 0)


def test_the_client_check_is_made_between_items():
    gone = []
    coalescer = make([b'a', b'b'], client_gone=lambda: bool(gone))
    coalescer.check_client()
    assert coalescer.first() == b'a'
    gone.append(True)
    with pytest.raises(ClientGone):
        coalescer.collect([], 60.0, 0)
