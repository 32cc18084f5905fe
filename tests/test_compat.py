"""``tgstream._compat``: every other library's internal tgstream relies on.

One test per entry, against the real library: when a dependency changes
what tgstream reaches into, the test of that entry fails and says which.
"""
from __future__ import annotations

import datetime
import inspect
from collections import deque

import pytest
import transaction
from pyramid.config import Configurator
from pyramid.interfaces import IExecutionPolicy
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router, default_execution_policy
from pyramid.testing import DummyRequest
from pyramid.threadlocal import get_current_request

from tgstream import _compat


def test_every_entry_is_documented():
    names = [
        name for name, value in vars(_compat).items()
        if not name.startswith('_') and getattr(value, '__module__', None) == _compat.__name__
    ]
    assert names, 'no entries?'
    for name in names:
        assert (getattr(_compat, name).__doc__ or '').strip(), name


def test_pyramid_threadlocal_stack_is_what_get_current_request_reads():
    stack = _compat.threadlocal_stack()
    request = DummyRequest()
    depth = len(stack)
    stack.append({'request': request, 'registry': None})
    try:
        assert get_current_request() is request, (
            'pyramid.threadlocal.manager.stack changed: request_context pushes there')
    finally:
        del stack[depth:]


def test_pyramid_finished_callbacks_are_a_deque_the_request_drains():
    request = Request.blank('/')
    ran = []
    request.add_finished_callback(lambda r: ran.append('kept'))
    taken = _compat.take_finished_callbacks(request)
    assert isinstance(taken, deque) and len(taken) == 1, (
        'pyramid Request.finished_callbacks changed: the hand-over defers them')
    request._process_finished_callbacks()
    assert ran == []  # taken away: the router does not run them
    _compat.put_finished_callbacks(request, taken)
    request._process_finished_callbacks()
    assert ran == ['kept']


def test_pyramid_router_calls_the_policy_then_the_response():
    calls = []

    def policy(environ, router):
        calls.append('policy')

        def response(environ, start_response):
            calls.append('response')
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [b'ok']

        return response

    with Configurator() as config:
        registry = config.registry
    assert _compat.execution_policy(registry) is default_execution_policy
    _compat.register_execution_policy(registry, policy)
    assert registry.queryUtility(IExecutionPolicy) is policy
    router = Router(registry)
    body = router({'REQUEST_METHOD': 'GET', 'PATH_INFO': '/'}, lambda status, headers: None)
    assert list(body) == [b'ok'] and calls == ['policy', 'response'], (
        "pyramid's Router no longer does response = policy(environ, router); "
        'response(environ, start_response): tgstream.guard relies on it')


def test_pyramid_json_renderer_parts():
    from pyramid.renderers import JSON

    renderer = JSON(indent=2)
    serializer, kw, components = _compat.json_renderer_parts(renderer)
    assert serializer is __import__('json').dumps and kw == {'indent': 2}, (
        'pyramid.renderers.JSON.serializer/kw changed')
    assert hasattr(components, 'adapters'), 'pyramid.renderers.JSON.components changed'


def test_pyramid_tm_resolves_its_hook_at_order_10():
    import pyramid_tm

    seen = {}
    with Configurator(settings={'tm.manager_hook': 'pyramid_tm.explicit_manager'}) as config:
        config.include('pyramid_tm')
        settings = config.get_settings()
        for order in (9, _compat.AFTER_TM_MANAGER_HOOK):
            config.action(
                None, lambda order=order: seen.__setitem__(order, settings['tm.manager_hook']),
                order=order,
            )
    assert isinstance(seen[9], str) and seen[_compat.AFTER_TM_MANAGER_HOOK] is (
        pyramid_tm.explicit_manager), (
        "pyramid_tm no longer resolves a dotted tm.manager_hook between orders 9 and "
        '%d: tgstream wraps it at AFTER_TM_MANAGER_HOOK' % _compat.AFTER_TM_MANAGER_HOOK)
    assert _compat.TM_TWEEN == 'pyramid_tm.tm_tween_factory'
    assert pyramid_tm.tm_tween_factory


def test_transaction_commit_and_abort_can_be_shadowed():
    manager = transaction.TransactionManager(explicit=True)
    txn = manager.begin()
    decided = []
    _compat.defer_commit_abort(
        txn, lambda: decided.append('commit'), lambda: decided.append('abort'))
    manager.commit()  # what pyramid_tm's egress calls
    manager.abort()
    assert decided == ['commit', 'abort'], (
        'transaction: manager.commit()/abort() no longer call the '
        "current transaction's: the stream's transaction deferral breaks")
    assert manager.get() is txn  # still open
    _compat.undefer_commit_abort(txn)
    manager.commit()
    with pytest.raises(transaction.interfaces.NoTransaction):
        manager.get()


def test_sqlalchemy_row_result_and_batch_expunge():
    sqlalchemy = pytest.importorskip('sqlalchemy')
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine('sqlite://')
    with engine.connect() as connection:
        one = connection.execute(sqlalchemy.text('select 1 as a union all select 2')).all()
        other = connection.execute(sqlalchemy.text('select 1 as a')).all()
    assert _compat.row_result(one[0]) is _compat.row_result(one[1]), (
        "SQLAlchemy Row._parent changed: one result's rows no longer share it")
    assert _compat.row_result(one[0]) is not _compat.row_result(other[0])
    with Session(engine) as session:
        expunge = _compat.batch_expunge(session)
        assert callable(expunge), 'SQLAlchemy Session._expunge_states is gone'
        assert list(inspect.signature(expunge).parameters) == ['states', 'to_transient']


def test_sqlalchemy_prefetched_rows(pg_engine):
    sqlalchemy = pytest.importorskip('sqlalchemy')
    with pg_engine.connect() as connection:
        result = connection.execute(
            sqlalchemy.text('select generate_series(1, 10)').execution_options(yield_per=3))
        assert _compat.prefetched_rows(result) == 1, (
            'SQLAlchemy no longer reads one row ahead into cursor_strategy._rowbuffer')
        assert result.fetchone() == (1,)
        assert _compat.prefetched_rows(result) == 0
        assert result.cursor.fetchone() == (2,)  # the rest comes from the cursor
        result.close()


def test_pyramid_jinja2_template_loader(tmp_path):
    pytest.importorskip('pyramid_jinja2')
    from pyramid.renderers import RendererHelper

    (tmp_path / 'page.jinja2').write_text('hello {{ name }}')
    with Configurator(settings={'jinja2.directories': str(tmp_path)}) as config:
        config.include('pyramid_jinja2')
    helper = RendererHelper(name='page.jinja2', registry=config.registry)
    template = _compat.jinja2_template(helper)
    assert template.render(name='x') == 'hello x', (
        "pyramid_jinja2's renderer template_loader() changed")


def test_waitress_client_disconnected():
    from waitress.channel import ClientDisconnected

    assert isinstance(_compat.client_disconnected_error(), ClientDisconnected), (
        'waitress.channel.ClientDisconnected moved')


def test_waitress_channels_are_the_servers_map():
    from waitress.server import create_server

    server = create_server(lambda environ, start_response: [], host='127.0.0.1', port=0)
    try:
        channels = _compat.waitress_channels(server)
        assert isinstance(channels, dict)
        assert server in channels.values(), "waitress' server no longer keeps its dispatchers in _map"
    finally:
        server.close()


def test_pyramid_debugtoolbar_internals():
    pytest.importorskip('pyramid_debugtoolbar')
    import webtest
    from pyramid_debugtoolbar.panels.sqla import SQLADebugPanel

    assert _compat.toolbar_app_interface() is not None, 'IToolbarWSGIApp moved'
    assert hasattr(SQLADebugPanel, 'process_response'), 'SQLADebugPanel changed'
    seen = []

    def view(request):
        seen.append(_compat.toolbar_of(request))
        return Response('<html><body>x</body></html>', status=404)

    with Configurator() as config:
        config.include('pyramid_debugtoolbar')
        config.add_view(view)
        app = config.make_wsgi_app()
    webtest.TestApp(app, extra_environ={'REMOTE_ADDR': '127.0.0.1'}).get('/', status=404)
    (toolbar,) = seen
    assert toolbar is not None, 'pyramid_debugtoolbar no longer sets request.debug_toolbar'
    assert toolbar.status_int == 404 and any(
        isinstance(panel, SQLADebugPanel) for panel in toolbar.panels), (
        "pyramid_debugtoolbar's DebugToolbar no longer keeps panels/status_int")
    _compat.toolbar_set_status(toolbar, 302, 404)
    assert toolbar.status_int == 302
    _compat.toolbar_set_status(toolbar, 200, 599)   # not the placeholder: unchanged
    assert toolbar.status_int == 302
    _compat.toolbar_refresh_sql_panel(toolbar, Response())
    assert _compat.toolbar_of(DummyRequest()) is None


def test_sqlalchemy_result_processors():
    sqlalchemy = pytest.importorskip('sqlalchemy')
    from sqlalchemy.engine.row import Row

    engine = sqlalchemy.create_engine('sqlite://')
    metadata = sqlalchemy.MetaData()
    table = sqlalchemy.Table('t', metadata, sqlalchemy.Column('id', sqlalchemy.Integer),
                             sqlalchemy.Column('at', sqlalchemy.DateTime))
    metadata.create_all(engine)
    with engine.connect() as connection:
        connection.execute(table.insert(), [{'id': 1, 'at': datetime.datetime(2024, 1, 2)}])

        def result():
            return connection.execute(sqlalchemy.select(table))

        processors = _compat.result_processors(result())
        assert isinstance(processors, list) and len(processors) == 2, (
            'SQLAlchemy CursorResult._metadata._processors changed')
        assert processors[0] is None and callable(processors[1])
        # what a Row holds: the driver's values through these processors
        raw = connection.exec_driver_sql('SELECT id, at FROM t').fetchone()
        row = result().fetchone()
        assert tuple(p(v) if p else v for p, v in zip(processors, raw)) == tuple(row)
        # filtered results: their rows are not the driver's rows processed
        for filtered in (result().unique(), result().columns('at'), result().mappings(),
                         result().scalars(), result().freeze()()):
            assert _compat.result_processors(filtered) is None, filtered
    # row_result: the descriptor's __get__, for rows only
    assert _compat.row_result(row) is row._parent
    assert isinstance(row, Row)
    for other in (object(), (1, 2), None):
        with pytest.raises(_compat.NOT_A_ROW):
            _compat.row_result(other)


def test_sqlalchemy_query_result_and_result_yield_per():
    sqlalchemy = pytest.importorskip('sqlalchemy')
    from sqlalchemy.orm import Session, declarative_base

    Base = declarative_base()

    class Thing(Base):
        __tablename__ = 'things'
        id = sqlalchemy.Column(sqlalchemy.Integer, primary_key=True)

    engine = sqlalchemy.create_engine('sqlite://')
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([Thing(id=1), Thing(id=2)])
        session.flush()
        result = _compat.query_result(session.query(Thing), 7)
        assert isinstance(result, sqlalchemy.engine.ScalarResult), (
            'SQLAlchemy Query._iter() changed')
        assert _compat.result_yield_per(result) == 7, (
            'SQLAlchemy Result._real_result._yield_per changed')
        assert [thing.id for thing in result] == [1, 2]
        # a query that has its own yield_per keeps it
        assert _compat.result_yield_per(
            _compat.query_result(session.query(Thing).yield_per(3), 7)) == 3
        assert _compat.result_yield_per(session.execute(
            sqlalchemy.select(Thing.id).execution_options(yield_per=5))) == 5
        assert _compat.result_yield_per(session.execute(sqlalchemy.select(Thing.id))) is None
