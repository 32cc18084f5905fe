"""pytest fixtures of the testing kit.

Enable them in your top-level ``conftest.py``::

    pytest_plugins = ['tgstream.testing']
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from .recorder import StreamRecorder, record_streams
from .servers import LiveServer, serve


@pytest.fixture
def tgstream_server() -> Iterator[Callable[..., LiveServer]]:
    """``tgstream_server(app, **waitress_options)`` -> a running
    :class:`~tgstream.testing.LiveServer` on 127.0.0.1, stopped after the
    test.

    Example::

        def test_first_byte(tgstream_server):
            server = tgstream_server(make_app(), channel_request_lookahead=1)
            with httpx.stream('GET', server.url + '/export') as response:
                ...
    """
    servers = []

    def start(app, **options: Any) -> LiveServer:
        context = serve(app, **options)
        live = context.__enter__()
        servers.append(context)
        return live

    yield start
    for context in reversed(servers):
        context.__exit__(None, None, None)


@pytest.fixture
def tgstream_recorder() -> Iterator[Callable[[Any], StreamRecorder]]:
    """``tgstream_recorder(app)`` -> a :class:`~tgstream.testing.StreamRecorder`
    of ``app``'s streams, unsubscribed after the test.

    Example::

        def test_export_commits(tgstream_recorder):
            app = make_app()
            streams = tgstream_recorder(app)
            webtest.TestApp(app).get('/export')
            streams.assert_committed('/export')
    """
    recorders = []

    def record(app) -> StreamRecorder:
        recorder = record_streams(app)
        recorders.append(recorder)
        return recorder

    yield record
    for recorder in recorders:
        recorder.stop()
