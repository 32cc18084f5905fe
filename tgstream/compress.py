"""Flush-aware gzip for streams: the ``tgstream.compress`` setting.

A compression tween built on WebOb (``response.encode_content('gzip',
lazy=True)``) works with streams -- the stream is delivered and committed
whole, or cut -- but it only flushes the compressor at the end: a paced
stream arrives in one piece when it is over. With ``tgstream.compress =
true``, tgstream compresses streams itself, with a sync flush after every
write, so each write reaches the client (decompressible) at once:

- only when the request has an ``Accept-Encoding`` header that accepts
  ``gzip`` (``gzip``, ``x-gzip`` or ``*`` with a non-zero quality: a
  request without the header -- plain ``curl``, many HTTP libraries --
  gets the body as it is, although WebOb reads a missing header as
  "anything"), the
  response has no ``Content-Encoding`` or ``Content-Length`` of its own,
  and it is not ``text/event-stream`` (proxies and browsers handle
  uncompressed event streams best; a sync flush per event costs more than
  it saves);
- ``Vary: Accept-Encoding`` is added whenever compression was considered,
  so caches keep the two variants apart;
- the gzip trailer is produced only after the stream's transaction
  committed: a stream that fails is cut *and* its gzip is incomplete.

Caveat: compressed bodies give up a little compression ratio for the sync
flushes (about 5 bytes per write), and a compression tween that also
applies to streams would compress twice -- exclude stream responses from it.
"""
from __future__ import annotations

import zlib
from typing import Iterator

#: Content types never compressed by ``tgstream.compress``.
NEVER_COMPRESSED = ('text/event-stream',)

# gzip container (header and CRC trailer) written by zlib itself
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def wants_gzip(request, response) -> bool:
    """Should this stream response be gzipped (see the module docstring)?

    Adds ``Vary: Accept-Encoding`` to an eligible response either way.
    """
    if response.content_type in NEVER_COMPRESSED:
        return False
    if response.headers.get('Content-Encoding') or response.headers.get('Content-Length'):
        return False
    vary = list(response.vary or ())
    if not any(v.lower() == 'accept-encoding' for v in vary):
        response.vary = vary + ['Accept-Encoding']
    # WebOb's AcceptEncodingNoHeader accepts every offer: only a client
    # that asks for gzip may get it.
    if request.headers.get('Accept-Encoding') is None:
        return False
    offers = request.accept_encoding.acceptable_offers(['gzip'])
    return bool(offers)


class GzipStream:
    """The server's iterable: ``stream``'s writes gzipped, each sync-flushed.

    ``close()`` closes the stream. No ``__len__`` (waitress would take it
    for a Content-Length).
    """

    def __init__(self, stream, level: int = 6):
        self.stream = stream
        self._iterator: Iterator[bytes] = iter(stream)
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
        self._done = False

    def __iter__(self) -> 'GzipStream':
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        compressor = self._compressor
        try:
            data = next(self._iterator)
        except StopIteration:
            # the stream ended (its transaction committed): now the trailer
            self._done = True
            return compressor.flush(zlib.Z_FINISH)
        return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)

    def close(self) -> None:
        self.stream.close()


def compress_stream(request, response, stream) -> None:
    """Gzip ``stream`` as ``response``'s body if the request accepts it."""
    if wants_gzip(request, response):
        response.app_iter = GzipStream(stream)
        response.headers['Content-Encoding'] = 'gzip'
