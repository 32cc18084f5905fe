"""Every use tgstream makes of another library's internals, in one place.

Each entry is named for what it reaches into, says why no public API does
the job, and is covered by ``tests/test_compat.py``, which fails loudly (with
the entry's name) when the library changes. Where a public equivalent exists
it is used instead (``ISynchronizer.afterCompletion`` to learn that a
transaction ended, WebOb's ``app_iter`` property).

Nothing here is public API.
"""
from __future__ import annotations

import inspect
import operator
import sys
from collections import deque
from typing import Any, Callable

from pyramid.interfaces import IExecutionPolicy
from pyramid.router import default_execution_policy
from pyramid.threadlocal import manager as _threadlocal_manager

# -- Pyramid -----------------------------------------------------------------


def threadlocal_stack() -> list:
    """Pyramid's thread-local stack (``pyramid.threadlocal.manager.stack``).

    The public ``manager.push``/``pop`` pop the top entry; a stream must pop
    exactly what it pushed even when a misbehaving generator left entries
    above it, so it truncates the stack to its depth."""
    return _threadlocal_manager.stack


def take_finished_callbacks(request: Any) -> deque:
    """Pyramid ``Request.finished_callbacks`` (the deque
    ``add_finished_callback`` appends to and the router drains): moved off
    the request before the router runs them, so that they run when the
    stream ends. Pyramid has no API to defer them."""
    callbacks = request.finished_callbacks
    request.finished_callbacks = deque()
    return callbacks


def put_finished_callbacks(request: Any, callbacks: deque) -> None:
    """Give ``request`` back the deque :func:`take_finished_callbacks` took."""
    request.finished_callbacks = callbacks


def execution_policy(registry: Any) -> Callable:
    """The application's execution policy (the ``IExecutionPolicy`` utility,
    or Pyramid's default). The router calls it as ``response =
    policy(environ, router)`` and then ``response(environ, start_response)``
    -- the only place outside every tween where a stream can still be lost
    (tgstream.guard relies on that order)."""
    return registry.queryUtility(IExecutionPolicy) or default_execution_policy


def register_execution_policy(registry: Any, policy: Callable) -> None:
    """Install ``policy`` as the ``IExecutionPolicy`` utility directly: the
    public ``config.set_execution_policy`` is a conflicting action, and
    tgstream must wrap (not replace) pyramid_retry's or the app's policy."""
    registry.registerUtility(policy, IExecutionPolicy)


def json_renderer_parts(renderer: Any) -> tuple[Callable, dict, Any]:
    """``pyramid.renderers.JSON``'s ``serializer``, ``kw`` and
    ``components`` (its adapter registry): a stream encodes values by the
    app's own JSON rules, and the renderer exposes only ``add_adapter`` and
    rendering a whole value."""
    return renderer.serializer, dict(renderer.kw), renderer.components


# -- pyramid_tm / transaction -----------------------------------------------

#: pyramid_tm's tween (its name in the tween list)
TM_TWEEN = 'pyramid_tm.tm_tween_factory'
#: pyramid_tm resolves a dotted ``tm.manager_hook`` in a configuration action
#: of order 10; tgstream wraps the resolved hook in an action just after it.
AFTER_TM_MANAGER_HOOK = 11


def defer_commit_abort(txn: Any, commit: Callable, abort: Callable) -> None:
    """Shadow a ``transaction.Transaction``'s ``commit``/``abort`` methods
    with instance attributes: pyramid_tm's egress calls
    ``manager.commit()``/``abort()``, which call the current transaction's,
    and tgstream must only *record* that decision while the stream runs.
    Neither library has a hook that can postpone the commit (``tm.commit_veto``
    only turns it into an abort; a proxy ``tm.manager_hook`` costs every
    request). docs/howitworks.rst gives the pyramid_tm hook that would
    remove this entry."""
    txn.commit = commit
    txn.abort = abort


def undefer_commit_abort(txn: Any) -> None:
    """Remove what :func:`defer_commit_abort` set (the class methods again)."""
    txn.__dict__.pop('commit', None)
    txn.__dict__.pop('abort', None)


# -- SQLAlchemy --------------------------------------------------------------

def _row_parent_getter() -> Callable[[Any], Any]:
    # The descriptor's own __get__ costs a quarter of ``row._parent`` (108
    # ns a row with SQLAlchemy 2.1's compiled Row), which matters when every
    # row of a run is checked.
    try:
        from sqlalchemy.engine import Row
    except ImportError:  # pragma: no cover - SQLAlchemy is an extra
        return operator.attrgetter('_parent')
    return inspect.getattr_static(Row, '_parent').__get__


#: SQLAlchemy ``Row._parent`` (the result's metadata, shared by every row of
#: one result): rows of one result get one converter, decided once. No public
#: attribute tells two results' rows apart. Given another object it raises
#: one of :data:`NOT_A_ROW`.
row_result = _row_parent_getter()
NOT_A_ROW = (AttributeError, TypeError)


def batch_expunge(session: Any) -> Callable[[list], None] | None:
    """SQLAlchemy ``Session._expunge_states``: what ``Session.expunge`` uses
    itself, a tenth of its cost per object (no cascade walk). ``None`` if it
    is gone: callers then use the public ``Session.expunge``."""
    return getattr(session, '_expunge_states', None)


def prefetched_rows(result: Any) -> int | None:
    """SQLAlchemy ``CursorResult.cursor_strategy._rowbuffer``: how many rows
    a ``yield_per`` (server-side cursor) result has read ahead of the caller
    (one, at execution time). ``stream_query``'s csv fast path takes those
    through the result and the rest from the driver's cursor; no public API
    tells how many there are. ``None`` if unknown: the fast path is not
    taken."""
    buffer = getattr(getattr(result, 'cursor_strategy', None), '_rowbuffer', None)
    return None if buffer is None else len(buffer)


def result_processors(result: Any) -> list | None:
    """SQLAlchemy ``CursorResult._metadata._processors``: the function (or
    ``None``) each column's raw driver value goes through to become the
    value its ``Row`` holds -- exactly the ones SQLAlchemy uses, textual
    and dialect-specific cases included. ``stream_query``'s tuple fast path
    applies them to the driver's rows itself. ``None`` unless ``result`` is
    a plain ``CursorResult`` whose rows are the driver's rows processed
    (no ``unique()``/``columns()``/``scalars()`` filter, no sentinel
    columns, no row logging). No public API gives them."""
    from sqlalchemy.engine import CursorResult

    if type(result) is not CursorResult:
        return None
    metadata = result._metadata
    if (
        getattr(result, '_unique_filter_state', None) is not None
        or getattr(result, '_post_creational_filter', None) is not None
        or result._row_logging_fn is not None  # echo='debug' logs each row
        or getattr(metadata, '_tuplefilter', None) is not None
        or not isinstance(getattr(metadata, '_processors', None), list)
    ):
        return None
    return list(metadata._processors)


def query_result(query: Any, yield_per: int) -> Any:
    """SQLAlchemy ORM ``Query._iter()`` (and ``Query.load_options._yield_per``):
    the ``Result`` a ``Query`` iterates (scalars for a single entity), run
    with ``yield_per`` unless the query has its own or its loader options
    forbid it (eager loaders that need all rows). ``iter(query)`` gives the
    rows only, not the ``Result`` whose partitions a renderer streams."""
    from sqlalchemy.exc import InvalidRequestError

    if not query.load_options._yield_per:
        try:
            return query.yield_per(yield_per)._iter()
        except InvalidRequestError:  # eager loaders that need all rows
            pass
    return query._iter()


def result_yield_per(result: Any) -> int | None:
    """SQLAlchemy ``Result._yield_per`` (of the result a ``ScalarResult`` or
    ``MappingResult`` filters, ``_real_result``): the fetch size the
    statement was run with, so that a renderer reads one partition per
    fetch. ``None`` if unknown (the renderer's default size is used)."""
    real = getattr(result, '_real_result', None) or result
    return getattr(real, '_yield_per', None)


# -- pyramid_jinja2 ----------------------------------------------------------


def jinja2_template(helper: Any) -> Any:
    """pyramid_jinja2's renderer's ``template_loader()`` (reached through
    Pyramid's ``RendererHelper.renderer``): the template resolved exactly as
    pyramid_jinja2 resolves it (package-relative names, asset specs, search
    path, cache). pyramid_jinja2 only offers rendering a whole page."""
    return helper.renderer.template_loader()


# -- waitress ----------------------------------------------------------------


def client_disconnected_error() -> Exception:
    """waitress' ``waitress.channel.ClientDisconnected``: raised from the
    body, waitress logs it at INFO and closes the connection without the
    terminating chunk. (Only waitress sets the ``client_disconnected`` probe
    this answers.)"""
    try:
        from waitress.channel import ClientDisconnected
    except ImportError:  # pragma: no cover - someone else set the key
        return ConnectionAbortedError('client disconnected')
    return ClientDisconnected('client disconnected; the stream was closed')


def waitress_channels(server: Any) -> dict:
    """A waitress server's open channels (asyncore's ``_map``, fd ->
    dispatcher, the listening socket included): the test server closes them
    to stop at once, as waitress' own test helpers do. waitress has no
    public "close every connection" call."""
    return server._map


# -- pyramid_debugtoolbar ----------------------------------------------------


def toolbar_app_interface() -> Any:
    """pyramid_debugtoolbar's ``IToolbarWSGIApp`` (registered when the
    toolbar is included), or ``None`` without the toolbar. An app that
    includes the toolbar has imported it: one that does not never pays for
    importing it (and pygments, ~8 000 objects more for every full garbage
    collection)."""
    if 'pyramid_debugtoolbar' not in sys.modules:
        return None
    try:
        from pyramid_debugtoolbar.toolbar import IToolbarWSGIApp
    except ImportError:  # pragma: no cover - a broken installation
        return None
    return IToolbarWSGIApp


def toolbar_of(request: Any) -> Any:
    """``request.debug_toolbar``: set by the toolbar's tween on requests it
    monitors (the toolbar has no API to ask)."""
    return getattr(request, 'debug_toolbar', None)


def toolbar_set_status(toolbar: Any, status_int: int, placeholder: int) -> None:
    """Correct the status the toolbar recorded (``toolbar.status_int``) when
    it recorded the ``placeholder`` tgstream showed it."""
    if getattr(toolbar, 'status_int', None) == placeholder:
        toolbar.status_int = status_int


def toolbar_refresh_sql_panel(toolbar: Any, response: Any) -> None:
    """Rebuild the SQL panel's snapshot (``toolbar.panels``, the panel's
    ``process_response``): it snapshots its queries when the toolbar tween
    returns, before the stream's queries ran."""
    from pyramid_debugtoolbar.panels.sqla import SQLADebugPanel

    for panel in getattr(toolbar, 'panels', ()):
        if isinstance(panel, SQLADebugPanel):
            panel.process_response(response)


# -- zope.sqlalchemy ---------------------------------------------------------


def mark_session_changed(session: Any) -> None:
    """zope.sqlalchemy's ``datamanager._SESSION_STATE`` (the sessions joined
    to a transaction): ``mark_changed`` a session that joined, so a
    transaction that only ran statements (no flush) commits instead of
    rolling back -- and never joins a session that did not (``mark_changed``
    would). zope.sqlalchemy has no public "is this session joined" test.
    Without zope.sqlalchemy there is nothing to do."""
    try:
        from zope.sqlalchemy import datamanager
    except ImportError:  # pragma: no cover - not a zope.sqlalchemy app
        return
    real = session() if hasattr(session, 'registry') else session  # scoped_session
    if datamanager._SESSION_STATE.get(real) is not None:
        datamanager.mark_changed(real)


# -- Pyramid's tween registry ------------------------------------------------


def wrap_tween_factory(registry: Any, name: str, wrap: Callable) -> bool:
    """Replace the factory Pyramid registered for tween ``name`` (in the
    ``ITweens`` utility: ``Tweens.sorter.name2val`` for the implicit chain,
    ``Tweens.explicit`` for ``pyramid.tweens``) with ``wrap(factory)``;
    ``False`` if there is no such tween. Pyramid has no API to decorate a
    tween another add-on registered. Run it once the tweens are registered
    (a late configuration action)."""
    from pyramid.interfaces import ITweens

    tweens = registry.queryUtility(ITweens)
    if tweens is None:
        return False
    found = False
    for index, (tween_name, factory) in enumerate(tweens.explicit):
        if tween_name == name:
            tweens.explicit[index] = (tween_name, wrap(factory))
            found = True
    implicit = tweens.sorter.name2val
    if name in implicit:
        implicit[name] = wrap(implicit[name])
        found = True
    return found


# -- opentelemetry-instrumentation-pyramid -----------------------------------
# Its tween ends the server span and records the request metrics when the
# view returns, keeping its state in the WSGI environ (callbacks.py). The
# public hook it would need: see docs/observability.rst, "Upstream".

#: ``callbacks.TWEEN_NAME``
OTEL_TWEEN = 'opentelemetry.instrumentation.pyramid.trace_tween_factory'
#: ``callbacks._ENVIRON_SPAN_KEY``: the request's server span
OTEL_SPAN_KEY = 'opentelemetry-pyramid.span_key'
#: ``callbacks._ENVIRON_ACTIVATION_KEY``: the ``trace.use_span(span,
#: end_on_exit=True)`` its tween exits when the view returned
OTEL_ACTIVATION_KEY = 'opentelemetry-pyramid.activation_key'
#: ``callbacks._ENVIRON_STARTTIME_KEY``: ``time_ns()`` when its tween started
OTEL_STARTTIME_KEY = 'opentelemetry-pyramid.starttime_key'

#: the instruments ``trace_tween_factory`` closes over, and their units
OTEL_REQUEST_INSTRUMENTS = {
    'duration_histogram_old': 'ms',
    'duration_histogram_new': 's',
    'active_requests_counter': '{request}',
}


def otel_request_instruments(tween: Any) -> dict[str, Any]:
    """The request-duration histograms and the active-requests counter of the
    instrumentation's ``trace_tween`` (the closure of the function
    ``trace_tween_factory`` returns), by name; ``{}`` for its disabled tween.
    They are created inside the factory and not reachable otherwise."""
    code = getattr(tween, '__code__', None)
    if code is None or getattr(tween, '__name__', '') != 'trace_tween':
        return {}
    cells = dict(zip(code.co_freevars, tween.__closure__ or ()))
    return {
        name: cells[name].cell_contents
        for name in OTEL_REQUEST_INSTRUMENTS
        if name in cells and cells[name].cell_contents is not None
    }


class otel_span_end_deferred:
    """Exit the instrumentation's activation (``trace.use_span(...,
    end_on_exit=True)``: it detaches the span's context, then calls
    ``span.end()``) without ending the span: ``span.end`` is shadowed by a
    no-op instance attribute for the exit. The context must be detached
    where it was attached, when the view returns; the span ends later."""

    def __init__(self, span: Any):
        self.span = span

    def __enter__(self) -> None:
        self.span.end = _no_end

    def __exit__(self, *exc_info: Any) -> None:
        self.span.__dict__.pop('end', None)


def _no_end(end_time: Any = None) -> None:
    pass


def otel_context_var() -> Any:
    """The ``ContextVar`` behind OpenTelemetry's default runtime context
    (``opentelemetry.context._RUNTIME_CONTEXT._current_context``, a
    ``ContextVarsRuntimeContext``): ``attach``/``detach`` are its
    ``set``/``reset`` behind two calls each, and a stream sets it around
    every step. ``None`` with another runtime context
    (``OTEL_PYTHON_CONTEXT``): then the public ``attach``/``detach``."""
    from opentelemetry import context
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

    runtime = getattr(context, '_RUNTIME_CONTEXT', None)
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    return getattr(runtime, '_current_context', None)
