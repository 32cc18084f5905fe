"""Order on the wire without clocks.

A view calls :meth:`Handshake.wait_for` with bytes the client must have
received before the view goes on; the test reads the response with
:meth:`Handshake.read`, which records everything as it arrives. A server
that held those bytes back makes the wait time out (``timeout``, generous):
the marker is listed in :attr:`Handshake.late` and the test fails -- no
wall-clock lower bound, so a loaded machine cannot make it flaky.
"""
from __future__ import annotations

import threading
import time

import httpx


class Handshake:
    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout
        self.body = b''
        self.late: list[bytes] = []
        self._condition = threading.Condition()

    def wait_for(self, marker: bytes) -> bool:
        """Block (in the view) until the client has received ``marker``."""
        with self._condition:
            arrived = self._condition.wait_for(lambda: marker in self.body, self.timeout)
        if not arrived:
            self.late.append(marker)
        return arrived

    def read(self, url: str, timeout: float = 10.0):
        """GET ``url``; return (response, [(seconds, chunk)], complete), like
        ``read_timed``, telling waiting views what arrived."""
        start = time.monotonic()
        chunks = []
        complete = True
        with httpx.Client(timeout=timeout) as client:
            with client.stream('GET', url) as response:
                try:
                    for chunk in response.iter_raw():
                        chunks.append((time.monotonic() - start, chunk))
                        with self._condition:
                            self.body += chunk
                            self._condition.notify_all()
                except httpx.RemoteProtocolError:
                    complete = False
        return response, chunks, complete
