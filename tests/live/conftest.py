"""Real-server tests: waitress on 127.0.0.1 and a free port."""
from __future__ import annotations

import pytest

from tests.handshake import Handshake


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
    return Handshake().read(url, timeout)
