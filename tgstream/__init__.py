"""tgstream: streaming responses as a first-class, safe feature of Pyramid.

``config.include('tgstream')``, then write a view that yields::

    from tgstream import expose

    @expose(route_name='count', stream=True, content_type='text/plain')
    def count(request):
        for n in range(1, 11):
            yield '%s\\n' % n
"""
from __future__ import annotations

from pyramid.interfaces import PHASE1_CONFIG
from pyramid.tweens import EXCVIEW, INGRESS

from .copy import stream_copy
from .decorator import expose
from .deriver import stream_view
from .events import StreamFinished
from .headers import content_disposition
from .items import Batch, StreamEncodeError, flush
from .live import listen, notify
from .proxies import request
from .query import stream_query
from .renderers import add_stream_renderer
from .renderers.sse import ServerSentEvent, sse_idle
from .serverlog import install_server_log_filter
from .sessions import abort_session, commit_session
from .settings import parse_settings
from .stream import is_stream
from .transaction import checkpoint, wrap_manager_hook

# The stable API (README.rst, "Stable API"). Internal types live in their
# modules: tgstream.settings.StreamSettings, tgstream.query.QueryStream, ...
__all__ = [
    'Batch',
    'ServerSentEvent',
    'StreamEncodeError',
    'StreamFinished',
    'abort_session',
    'checkpoint',
    'commit_session',
    'content_disposition',
    'expose',
    'flush',
    'includeme',
    'is_stream',
    'listen',
    'notify',
    'request',
    'sse_idle',
    'stream_copy',
    'stream_query',
]


def includeme(config) -> None:
    """Make streaming responses safe in this application.

    ``config.include('tgstream')`` (or ``pyramid.includes = tgstream``), in
    any order with pyramid_tm, pyramid_retry and pyramid_debugtoolbar:

    - adds the ``stream=True`` view option and its companions
      (``stream_transaction``, ``stream_options``, ``stream_content_type``,
      ``stream_filename``), the ``json``, ``ndjson``, ``csv``, ``sse`` and
      ``.jinja2`` stream renderers and the ``config.add_stream_renderer``
      directive; views given none of the options are left untouched;
    - adds the ``tgstream.tween.stream_tween_factory`` tween (just above the
      main handler), which takes over a ``Response(app_iter=<generator>)``
      unless ``tgstream.detect_generators = false``;
    - wraps the application's execution policy (``tgstream.guard``) and,
      with pyramid_tm, its ``tm.manager_hook`` (``tgstream.transaction``);
      adds a tween under pyramid_debugtoolbar when the toolbar is included
      (``tgstream.toolbar``);
    - reads the ``tgstream.*`` settings when the configuration is
      committed; a bad value or unknown key is a ``ConfigurationError``;
    - with OpenTelemetry's Pyramid instrumentation, the server span and
      request metrics of a stream last until it ends, and stream metrics are
      recorded (``tgstream.otel``); without OpenTelemetry nothing of it is
      imported.

    A stream is primed to its first item inside the request (an error before
    it is a normal error response), runs every ``next()`` and ``close()``
    with its request current, keeps pyramid_tm's transaction open until it
    is exhausted (then commits, before its last bytes) or fails or is closed
    early (then aborts), runs the request's finished callbacks after it
    ended, notifies ``StreamFinished`` once, and is closed on every path.

    Nothing outside the application is changed: server loggers are
    touched only with ``tgstream.shorten_server_log = true``. See
    docs/howitworks.rst for the order in which this runs.
    """
    settings = config.get_settings()

    def store_settings():
        parsed = config.registry['tgstream.settings'] = parse_settings(settings)
        if parsed.shorten_server_log:
            install_server_log_filter()

    config.action(('tgstream', 'settings'), store_settings, order=PHASE1_CONFIG)
    config.add_directive('add_stream_renderer', add_stream_renderer)
    config.add_view_deriver(stream_view, under='rendered_view', over='mapped_view')
    config.add_tween(
        'tgstream.tween.stream_tween_factory', under=(EXCVIEW, INGRESS)
    )
    wrap_manager_hook(config)
    config.include('.guard')
    config.include('.renderers')
    config.include('.toolbar')
    config.include('.live')
    config.include('.otel')


def __getattr__(name: str):
    # Deprecated names, still importable with a warning.
    if name == 'StreamIterator':
        import warnings

        from .stream import StreamIterator

        warnings.warn(
            'tgstream.StreamIterator is deprecated as public API: use '
            'tgstream.is_stream(response) to recognise a stream '
            '(the class is tgstream.stream.StreamIterator)',
            DeprecationWarning, stacklevel=2,
        )
        return StreamIterator
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
