"""Testing streamed responses: what WebTest cannot do.

WebTest reads a whole body before a test sees it, so it cannot show time to
first byte, truncation or a client that leaves early. This package offers:

:func:`open_stream`
    call an app in-process and read its body chunk by chunk; ``close()`` it
    early to simulate a client disconnect (the same ``close()`` a real
    server calls).
:func:`serve` / :func:`serve_gunicorn`
    serve an app on a real waitress server in-process, or on gunicorn
    (gthread) in a subprocess, on 127.0.0.1 and a free port, for
    wire-level assertions, e.g. with ``httpx``; :func:`disconnect_after`
    drops a connection mid-response like a crashed client.
:func:`record_streams`
    record :class:`tgstream.events.StreamFinished` events and assert each
    stream's outcome: ``assert_committed``, ``assert_aborted``,
    ``assert_disconnected``, ``assert_error``...
pytest fixtures
    ``tgstream_server`` and ``tgstream_recorder``, with
    ``pytest_plugins = ['tgstream.testing']`` in your top-level conftest.py.

:func:`open_stream` and :func:`record_streams` need WebOb only, :func:`serve`
waitress, :func:`serve_gunicorn` gunicorn (all in tgstream's ``testing``
extra).
"""
from __future__ import annotations

from .client import StreamedResponse as StreamedResponse
from .client import open_stream as open_stream
from .recorder import StreamRecorder as StreamRecorder
from .recorder import record_streams as record_streams
from .servers import GunicornServer as GunicornServer
from .servers import LiveServer as LiveServer
from .servers import ServerProcess as ServerProcess
from .servers import disconnect_after as disconnect_after
from .servers import serve as serve
from .servers import serve_cheroot as serve_cheroot
from .servers import serve_gunicorn as serve_gunicorn
from .servers import serve_mod_wsgi as serve_mod_wsgi
from .servers import serve_nginx as serve_nginx
from .servers import serve_uwsgi as serve_uwsgi
from .servers import serve_werkzeug as serve_werkzeug

try:  # the pytest plugin: ``pytest_plugins = ['tgstream.testing']``
    from .plugin import tgstream_recorder as tgstream_recorder
    from .plugin import tgstream_server as tgstream_server
except ImportError:  # pragma: no cover - pytest is not installed
    pass

__all__ = [
    'GunicornServer',
    'LiveServer',
    'ServerProcess',
    'StreamRecorder',
    'StreamedResponse',
    'disconnect_after',
    'open_stream',
    'record_streams',
    'serve',
    'serve_cheroot',
    'serve_gunicorn',
    'serve_mod_wsgi',
    'serve_nginx',
    'serve_uwsgi',
    'serve_werkzeug',
]
