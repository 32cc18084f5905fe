"""``tgstream.items``: the markers a stream may yield and the encode error."""
from __future__ import annotations

import pickle

import tgstream
from tgstream.items import Batch, ResultRows, StreamEncodeError, flush


def test_flush_is_one_object_that_survives_pickling():
    assert tgstream.flush is flush
    assert repr(flush) == 'tgstream.flush'
    assert pickle.loads(pickle.dumps(flush)) is flush


def test_sse_idle_is_a_marker_too():
    from tgstream.items import Marker
    from tgstream.renderers import sse

    assert isinstance(tgstream.sse_idle, Marker) and tgstream.sse_idle is sse.sse_idle
    assert repr(tgstream.sse_idle) == 'tgstream.sse_idle'
    assert pickle.loads(pickle.dumps(tgstream.sse_idle)) is tgstream.sse_idle


def test_batch_keeps_a_list_and_makes_one_of_any_iterable():
    rows = [1, 2]
    assert Batch(rows).items is rows
    batch = Batch(iter('abc'))
    assert batch.items == ['a', 'b', 'c'] and len(batch) == 3 and list(batch) == batch.items
    assert repr(Batch([])) == '<tgstream.Batch of 0 items>'


def test_result_rows_is_a_plain_list_marker():
    rows = ResultRows([(1,), (2,)])
    assert rows == [(1,), (2,)] and rows.__class__ is ResultRows
    assert not hasattr(rows, '__dict__')  # __slots__: no per-batch dict


def test_encode_error_names_stream_index_and_type():
    error = StreamEncodeError(7, object(), 'views.export')
    assert str(error) == 'stream views.export: item 7 (builtins.object) could not be encoded'
    assert (error.index, error.item_type) == (7, object)
