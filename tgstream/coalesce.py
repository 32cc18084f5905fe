"""The delivery rule: when a stream's items are written, and how they are encoded.

:class:`Coalescer` pulls the view's items, encodes them (the one place an
item is encoded) and decides which go into one write. Every item is written
as soon as it is yielded until the view's iterable has delivered
:data:`FAST_RUN` items in a row, each within :data:`FAST_PULL` seconds of the
one before; only then are items held and joined into writes of up to
``chunk_size`` bytes (or ``flush_interval`` seconds). A slow pull ends the
run. During a long run, items yielded one by one are encoded together by one
``encode_batch`` call. What the request context, the hooks and closing need
is :class:`~tgstream.stream.StreamIterator`'s, not this module's.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from .items import Batch, StreamEncodeError, flush
from .renderers.encoders import Encoder

#: A pull of the view's iterable that returns within this many seconds of
#: the previous item is *fast* ...
FAST_PULL = 0.002
#: ... and only after this many fast pulls in a row are items held back to
#: be joined into larger writes.
FAST_RUN = 16

# At most this many items yielded one by one are encoded by one
# encode_batch call (see Coalescer.encode_run).
_RUN_MAX = 1000


class ClientGone(Exception):
    """Internal: the server says the client left (see :meth:`Coalescer.check_client`)."""


class Coalescer:
    """Pull, encode and join the items of one stream into writes."""

    def __init__(
        self,
        items: Iterable[Any],
        encoder: Encoder,
        *,
        name: str,
        chunk_size: int,
        flush_interval: float,
        client_gone: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.iterator = iter(items)
        #: seconds, monotonic: the stream's clock (tests give a fake one)
        self.clock = clock
        self.encoder = encoder
        self.name = name
        self.chunk_size = chunk_size
        self.flush_interval = flush_interval
        # waitress' ``client_disconnected()`` (meaningful with
        # channel_request_lookahead > 0): checked between items and before
        # the commit, so a client gone during a pause aborts the stream.
        self.client_gone = client_gone
        self.items_sent = 0
        self.last_write = 0.0  # when the last bytes were handed out
        self.run = 0  # fast pulls in a row (see fast_run)
        self.item_size: float | None = None  # bytes per item, as encoded so far
        # Items yielded one by one are encoded in runs by an encoder that
        # takes batches (not by one whose items are each written at once).
        self.batches_runs = (
            hasattr(encoder, 'encode_batch') and not getattr(encoder, 'flush_each', False)
        )

    def check_client(self) -> None:
        """Raise :class:`ClientGone` if the server says the client left."""
        client_gone = self.client_gone
        if client_gone is not None and client_gone():
            raise ClientGone

    def first(self) -> bytes | None:
        """The first item, encoded (``flush`` markers skipped); ``None`` if
        there is none."""
        for item in self.iterator:
            if item is flush:
                continue
            data = self.encode(item)
            self.written()
            return data
        return None

    def written(self) -> None:
        """The bytes handed out so far were written: ``flush_interval``
        counts from now."""
        self.last_write = self.clock()

    def collect(self, buffered: list[bytes], fast_pull: float, fast_run: int) -> bool:
        """Pull and encode items into ``buffered`` until they should be
        written; return True when the view's iterable is exhausted.

        Write through while the run of fast pulls is shorter than
        ``fast_run``, then coalesce up to chunk_size bytes or flush_interval
        seconds. A WSGI stream cannot write while the view blocks, so
        holding an item is a bet that the next pull is fast: only a long run
        of fast pulls makes that bet. A failure ends the run.
        """
        size = 0
        flush_each = self.encoder.flush_each
        chunk_size = self.chunk_size
        flush_interval = self.flush_interval
        last_write = self.last_write
        monotonic = self.clock
        run = self.run
        # the one client check, called only when there is a probe
        check_client = self.check_client if self.client_gone is not None else None
        # a probe that costs a system call (tgstream.connection) is asked
        # after slow pulls only (pauses): a fast run pays nothing for it
        check_paused = None
        if check_client is not None and getattr(self.client_gone, 'after_pause', False):
            check_paused, check_client = check_client, None
        # Items of a fast run wait here (unencoded) to be encoded together
        # by one encode_batch call; see encode_run.
        pending: list | None = [] if self.batches_runs else None
        pending_limit = self._run_limit(chunk_size)
        # One clock read per item: a pull is timed from the previous item's
        # arrival in this call, or from the start of this next() (the
        # server's write in between does not count), or from the end of a
        # run's encoding. It includes the previous item's encoding -- never
        # long for an item that is not itself worth a write.
        asked = monotonic()
        exhausted = True
        try:
            for item in self.iterator:
                now = monotonic()
                if now - asked <= fast_pull:
                    run += 1
                else:  # a slow pull: a pause
                    run = 0
                    if check_paused is not None:
                        check_paused()
                asked = now
                if check_client is not None:
                    check_client()
                if item is flush:
                    if pending:
                        size += self.encode_run(pending, buffered)
                    if size:
                        exhausted = False
                        break
                    continue
                if pending is not None and run >= fast_run and item.__class__ is not Batch:
                    # a long fast run: hold the item, encode the run at once
                    pending.append(item)
                    if len(pending) < pending_limit and now - last_write < flush_interval:
                        continue
                    size += self.encode_run(pending, buffered)
                    pending_limit = self._run_limit(chunk_size - size)
                    # encoding a whole run is our time, not the view's: the
                    # next pull is timed from here
                    asked = monotonic()
                else:
                    if pending:  # a slow pull ended the run: keep the order
                        size += self.encode_run(pending, buffered)
                    data = self.encode(item)
                    if data:
                        buffered.append(data)
                        size += len(data)
                if size and (
                    run < fast_run
                    or size >= chunk_size
                    or flush_each
                    or now - last_write >= flush_interval
                ):
                    exhausted = False
                    break
        except BaseException:
            self.run = 0
            raise
        finally:
            # what was yielded before a failure (or the end) is still encoded
            if pending:
                self.encode_run(pending, buffered)
        self.run = run
        return exhausted

    def _run_limit(self, room: int) -> int:
        # Items in a run: what fills about half the ``room`` bytes left in
        # this chunk at the largest size per item seen so far, so that the
        # items held unencoded stay within chunk_size even when items grow
        # (what a pause can hold is bounded by chunk_size); one until an
        # item's size is known.
        item_size = self.item_size
        if item_size is None:
            return 1
        return max(1, min(_RUN_MAX, int(room / (2 * item_size))))

    def encode_run(self, run: list, buffered: list) -> int:
        """Encode the items of ``run`` (yielded one by one) with one
        ``encode_batch`` call, append the bytes to ``buffered``, empty
        ``run``; return the number of bytes.

        The bytes are those of encoding each item alone (the encoder's
        contract). If the batch fails, the items are encoded one by one, so
        those before the failing one are in ``buffered`` and the error names
        the failing item.
        """
        items = run[:]
        run.clear()
        try:
            data = self.encoder.encode_batch(items)
        except Exception:
            size = 0
            for item in items:
                data = self.encode(item)
                buffered.append(data)
                size += len(data)
            return size  # pragma: no cover - only an encoder whose batch is stricter
        self.items_sent += len(items)
        if data:
            buffered.append(data)
            self.item_size = max(self.item_size or 0.0, len(data) / len(items))
        return len(data)

    def encode(self, item: Any) -> bytes:
        """Encode one item (a :class:`~tgstream.items.Batch` as a whole);
        an encoder's failure becomes a :class:`StreamEncodeError` naming the
        item's index."""
        if item.__class__ is Batch:
            return self._encode_batch(item.items)
        try:
            data = self.encoder.encode(item)
        except Exception as exc:
            raise StreamEncodeError(self.items_sent, item, self.name) from exc
        self.items_sent += 1
        return data

    def _encode_batch(self, items: list) -> bytes:
        # One encoder call for the whole list when the encoder offers it;
        # on failure, find the element to blame so the error names its index.
        encoder = self.encoder
        encode_batch = getattr(encoder, 'encode_batch', None)
        try:
            if encode_batch is not None:
                data = encode_batch(items)
            else:
                data = b''.join([encoder.encode(item) for item in items])
        except Exception as exc:
            index, item, cause = 0, items[0] if items else None, exc
            for index, item in enumerate(items):
                try:
                    encoder.encode(item)
                except Exception as item_exc:
                    cause = item_exc
                    break
            raise StreamEncodeError(self.items_sent + index, item, self.name) from cause
        self.items_sent += len(items)
        return data
