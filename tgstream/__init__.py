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
from .stream import StreamIterator
from .transaction import checkpoint, wrap_manager_hook

# The stable API (README.rst, "Stable API"). Internal types live in their
# modules: tgstream.settings.StreamSettings, tgstream.query.QueryStream, ...
__all__ = [
    'Batch',
    'ServerSentEvent',
    'StreamEncodeError',
    'StreamFinished',
    'StreamIterator',
    'abort_session',
    'checkpoint',
    'commit_session',
    'content_disposition',
    'expose',
    'flush',
    'includeme',
    'listen',
    'notify',
    'request',
    'sse_idle',
    'stream_copy',
    'stream_query',
]


def includeme(config) -> None:
    """Make streaming responses safe in this application.

    After ``config.include('tgstream')`` (or ``pyramid.includes = tgstream``),
    in any order with pyramid_tm, pyramid_retry and pyramid_debugtoolbar:

    - ``stream=True`` is a view option (``expose``, ``view_config``,
      ``add_view``); so are ``stream_content_type``, ``stream_filename`` (an
      RFC 6266 download name), ``stream_options`` and ``stream_transaction``
      -- prefixed names only, so no other add-on's option or predicate is
      claimed (``expose`` translates ``content_type=`` and ``filename=``).
      A view given none of them is left untouched. Bad values are a
      ``ConfigurationError`` naming the view.
    - ``renderer='json' | 'ndjson' | 'csv' | 'sse'`` and pyramid_jinja2
      templates stream with ``stream=True``; other renderers are a
      ``ConfigurationError``. ``config.add_stream_renderer`` adds more.
    - A stream is advanced to its first item inside the request: an error
      raised before it becomes the normal error response (exception views,
      pyramid_tm abort, pyramid_retry retry). Headers and status set before
      the first item are sent.
    - While it streams, every ``next()`` and ``close()`` runs with the
      request as Pyramid's current request (``get_current_request()``,
      ``get_current_registry()``, ``tgstream.request``); nothing is left on
      the thread afterwards.
    - ``request.add_finished_callback`` callbacks run after the stream ended
      (exhausted, failed or closed), and the stream is closed exactly once.
    - With pyramid_tm, the request's transaction stays open while the stream
      runs and is committed when it is exhausted, before its last bytes are
      released; it is aborted when the stream fails or is closed early, and
      whenever pyramid_tm decided to abort. ``tgstream.transaction = view``
      (or ``stream_transaction='view'``) finishes it at view return instead
      and gives the stream a transaction of its own.
    - An error after the first byte is logged with the request path and
      traceback, the transaction is aborted, and the error is raised to the
      server, which cuts the response (no terminating chunk).
    - A plain ``Response(app_iter=<generator>)`` gets the same guarantees
      (the ``tgstream.tween.stream_tween_factory`` tween, placed just above
      the main handler). Other bodies (lists, files, ``iter([...])``,
      iterator classes, mounted WSGI apps) keep Pyramid's behaviour.
    - Items are written as they are yielded; only long runs of fast items
      are joined into writes of ``tgstream.chunk_size`` bytes, and items
      yielded before a failure are delivered before the response is cut.
    - A stream view returning a mapping, ``str``, ``bytes`` or
      ``bytearray`` is a ``TypeError`` (templates take their dict).
    - pyramid_debugtoolbar never buffers or rewrites a stream (the
      ``tgstream.toolbar.toolbar_guard_tween_factory`` tween, under the
      toolbar and over pyramid_tm; ``tgstream.toolbar = false`` disables it).
    - A stream whose body never reaches the server (``start_response``
      rejects a header, a ``NewResponse`` subscriber or a later response
      callback raises) is closed before the request's thread moves on: its
      transaction aborted, its finished callbacks run (``tgstream.guard``
      wraps the app's execution policy). A wrapped body (a compressing
      tween) is closed after its wrapper; ``tgstream.compress = true``
      gzips streams with a flush per write.
    - ``tgstream.StreamFinished`` is notified once per stream, after it
      ended, with its outcome.
    - ``tgstream.notify(request, channel, payload)`` and
      ``tgstream.listen(request, channel)``: live streams fed by committed
      notifications (``tgstream.live.*`` settings).

    Settings (``tgstream.*``) are checked when the configuration is
    committed; see docs/streaming.rst ("Settings").
    """
    settings = config.get_settings()

    def store_settings():
        config.registry['tgstream.settings'] = parse_settings(settings)

    config.action(('tgstream', 'settings'), store_settings, order=PHASE1_CONFIG)
    config.add_directive('add_stream_renderer', add_stream_renderer)
    config.add_view_deriver(stream_view, under='rendered_view', over='mapped_view')
    config.add_tween(
        'tgstream.tween.stream_tween_factory', under=(EXCVIEW, INGRESS)
    )
    wrap_manager_hook(config)
    install_server_log_filter()
    config.include('.guard')
    config.include('.renderers')
    config.include('.toolbar')
    config.include('.live')
