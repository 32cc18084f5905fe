"""Real-server tests: waitress on 127.0.0.1 and a free port."""
from __future__ import annotations

import time

import httpx
import pytest


@pytest.fixture
def live(tgstream_server):
    """``live(app, **waitress_options)`` -> the server's base URL (the kit's
    ``tgstream_server`` fixture)."""
    return lambda app, **options: tgstream_server(app, **options).url


def read_timed(url, timeout=10.0):
    """GET ``url``; return (response, [(seconds since request, chunk)], complete).

    ``complete`` is False when the server cut the chunked body (no
    terminating chunk).
    """
    start = time.monotonic()
    chunks = []
    complete = True
    with httpx.Client(timeout=timeout) as client:
        with client.stream('GET', url) as response:
            try:
                for chunk in response.iter_raw():
                    chunks.append((time.monotonic() - start, chunk))
            except httpx.RemoteProtocolError:
                complete = False
    return response, chunks, complete
