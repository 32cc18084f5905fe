"""pyramid_debugtoolbar never buffers or rewrites a stream (in-process).

Real pyramid_debugtoolbar; it only monitors requests from its allowed hosts,
so requests come from ``REMOTE_ADDR = 127.0.0.1``. The wire tests
(``tests/live/test_toolbar_wire.py``) reuse the app built here.
"""
from __future__ import annotations

import contextlib
import json
import time

import pytest
import webtest
from pyramid.interfaces import ITweens
from pyramid.response import Response
from pyramid.tweens import MAIN

import tgstream
from tgstream.testing import open_stream
from tgstream.toolbar import (
    HIDDEN_CONTENT_TYPE,
    TOOLBAR_TWEEN,
    toolbar_guard_tween_factory,
)

from .conftest import build_app
from .dbapp import Base, Note, User, build_db_app

LOCAL = {'REMOTE_ADDR': '127.0.0.1'}
#: what the toolbar injects into an HTML page
MARKUP = b'pDebugToolbarHandle'
GUARD = 'tgstream.toolbar.toolbar_guard_tween_factory'
TM = 'pyramid_tm.tm_tween_factory'

#: the four ways of including both packages: (includes, settings)
INCLUDE_ORDERS = {
    'config.include toolbar first': (('pyramid_debugtoolbar', 'tgstream'), {}),
    'config.include tgstream first': (('tgstream', 'pyramid_debugtoolbar'), {}),
    'pyramid.includes toolbar first': (
        (), {'pyramid.includes': 'pyramid_debugtoolbar tgstream'},
    ),
    'pyramid.includes tgstream first': (
        (), {'pyramid.includes': 'tgstream pyramid_debugtoolbar'},
    ),
}


def add_views(config, pause=0.0, items: int = 5) -> None:
    """The views every toolbar test uses; stream items ``pause`` apart.

    ``pause`` may be a callable instead: it is called with the text the
    view sent so far before each item (a handshake, tests/handshake.py).
    """

    def wait(sent):
        if callable(pause):
            pause(sent)
        else:
            time.sleep(pause)

    def add(name, view, **options):
        config.add_route(name, '/' + name)
        config.add_view(view, route_name=name, **options)

    def page(request):
        return Response('<html><body><p>page</p></body></html>', content_type='text/html')

    def html(request):
        sent = '<html><body>'
        yield sent
        for n in range(items):
            yield tgstream.flush
            wait(sent)
            sent += '<p>item %d</p>' % n
            yield '<p>item %d</p>' % n
        yield '</body></html>'

    def generator(request):
        # a plain generator response: tgstream's stream tween detects it
        return Response(app_iter=(chunk.encode() for chunk in html(request)
                                  if chunk is not tgstream.flush), content_type='text/html')

    def data(request):
        sent = '['
        yield sent
        for n in range(items):
            yield tgstream.flush
            wait(sent)
            sent += ('' if n == 0 else ',') + json.dumps({'n': n})
            yield ('' if n == 0 else ',') + json.dumps({'n': n})
        yield ']'

    def boom(request):
        yield '<html><body><p>partial</p>'
        yield tgstream.flush
        raise RuntimeError('secret detail')

    def early(request):
        raise RuntimeError('before the first item')
        yield ''  # pragma: no cover

    def moved(request):
        request.response.status = 302
        request.response.location = request.route_url('page')
        yield '<html><body>moved</body></html>'

    add('page', page)
    add('html', html, stream=True, stream_content_type='text/html')
    add('xhtml', html, stream=True, stream_content_type='application/xhtml+xml')
    add('generator', generator)
    add('json', data, stream=True, stream_content_type='application/json')
    add('boom', boom, stream=True, stream_content_type='text/html')
    add('early', early, stream=True, stream_content_type='text/html')
    add('moved', moved, stream=True, stream_content_type='text/html')


def toolbar_app(order='config.include toolbar first', settings=None, pause=0.0, setup=None):
    """An app with the toolbar and tgstream included in ``order``."""
    includes, order_settings = INCLUDE_ORDERS[order]

    def setup_all(config):
        add_views(config, pause)
        if setup is not None:
            setup(config)

    return build_app(setup_all, {**order_settings, **(settings or {})}, includes)


def records(app, path):
    """The toolbar's records (``DebugToolbar``) of requests to ``path``."""
    return [tb for _, tb in app.registry.pdtb_history.last(100) if tb.request.path == path]


def tween_names(app):
    return [name for name, _ in app.registry.getUtility(ITweens).implicit()]


def observer_tween_factory(handler, registry):
    """A tween over the toolbar that records what it sees of each response."""

    def observer(request):
        response = handler(request)
        registry.setdefault('seen', []).append(
            (response.headers.get('Content-Type'), response.status_int)
        )
        return response

    return observer


def add_observer(config):
    config.add_tween('tests.test_toolbar.observer_tween_factory', over=(TOOLBAR_TWEEN, MAIN))


# -- placement ---------------------------------------------------------------


@pytest.mark.parametrize('order', INCLUDE_ORDERS)
@pytest.mark.parametrize('with_tm', [False, True])
def test_guard_sits_under_the_toolbar_and_over_pyramid_tm(order, with_tm):
    def setup(config):
        if with_tm:
            config.include('pyramid_tm')

    names = tween_names(toolbar_app(order, setup=setup))
    below = TM if with_tm else 'pyramid.tweens.excview_tween_factory'
    assert names.index(TOOLBAR_TWEEN) < names.index(GUARD) < names.index(below)


def test_without_the_toolbar_the_guard_is_no_tween_at_all(make_app):
    app = make_app()
    assert GUARD in tween_names(app)  # placed (the toolbar may come later) ...
    handler = object()  # ... but its factory adds nothing
    assert toolbar_guard_tween_factory(handler, app.registry) is handler


def test_guard_is_off_with_the_toolbar_disabled():
    app = toolbar_app(settings={'debugtoolbar.enabled': 'false'})
    handler = object()
    assert toolbar_guard_tween_factory(handler, app.registry) is handler


# -- streams pass the toolbar untouched ------------------------------------


@pytest.mark.parametrize(
    'path, content_type',
    [('/html', 'text/html'), ('/xhtml', 'application/xhtml+xml'), ('/generator', 'text/html')],
)
def test_html_stream_is_not_buffered_or_injected(path, content_type):
    app = toolbar_app()
    with open_stream(app, path, environ=LOCAL) as response:
        assert isinstance(response.app_iter, tgstream.StreamIterator)
        assert response.headers['Content-Type'] == content_type + '; charset=UTF-8'
        assert 'Content-Length' not in response.headers
        # the toolbar has not read the body: only the first item exists
        assert response.next_chunk() == b'<html><body>'
        body = response.read()
    assert body.endswith(b'<p>item 4</p></body></html>')
    assert MARKUP not in body
    assert len(records(app, path)) == 1  # and the toolbar did monitor it


def test_normal_html_page_still_gets_the_toolbar():
    testapp = webtest.TestApp(toolbar_app(), extra_environ=LOCAL)
    assert MARKUP in testapp.get('/page').body
    assert MARKUP not in testapp.get('/html').body


def test_toolbar_pages_still_work():
    app = toolbar_app()
    testapp = webtest.TestApp(app, extra_environ=LOCAL)
    testapp.get('/html')
    (record,) = records(app, '/html')
    page = testapp.get('/_debug_toolbar/%s' % record.request.pdtb_id)
    assert page.status_int == 200 and b'/html' in page.body
    assert testapp.get('/_debug_toolbar/').status_int == 200


def test_setting_turns_the_guard_off():
    # proves the guard is what keeps the toolbar away: without it the
    # toolbar reads the whole stream and injects itself
    app = toolbar_app(settings={'tgstream.toolbar': 'false'})
    body = webtest.TestApp(app, extra_environ=LOCAL).get('/html').body
    assert MARKUP in body


def test_the_toolbar_record_of_a_stream_claims_no_body():
    app = toolbar_app()
    testapp = webtest.TestApp(app, extra_environ=LOCAL)
    testapp.get('/html')
    (record,) = records(app, '/html')
    headers = dict(record.panels[[p.name for p in record.panels].index('headers')].data['response_headers'])
    assert headers['Content-Type'] == 'text/html; charset=UTF-8'
    assert 'Content-Length' not in headers  # it never saw the body
    page = testapp.get('/_debug_toolbar/%s' % record.request.pdtb_id).text
    assert HIDDEN_CONTENT_TYPE not in page and 'item 4' not in page
    assert record.json['status_code'] == 200


# -- what is hidden, from whom ---------------------------------------------


def test_client_and_pyramid_tm_see_the_real_type_outer_tweens_the_placeholder():
    seen_by_tm = []
    seen_by_callbacks = []

    def remember(request, response):
        seen_by_callbacks.append(response.headers['Content-Type'])

    def html(request):
        request.add_response_callback(remember)
        yield '<html><body>page</body></html>'

    def setup(config):
        config.add_route('callback', '/callback')
        config.add_view(html, route_name='callback', stream=True, stream_content_type='text/html')
        config.include('pyramid_tm')
        config.add_settings({'tm.commit_veto': 'tests.test_toolbar.record_veto'})
        config.registry['veto_seen'] = seen_by_tm
        add_observer(config)

    app = toolbar_app(setup=setup)
    response = webtest.TestApp(app, extra_environ=LOCAL).get('/callback')
    assert response.headers['Content-Type'] == 'text/html; charset=UTF-8'
    assert MARKUP not in response.body
    assert seen_by_tm == seen_by_callbacks == ['text/html; charset=UTF-8']
    # the documented trade-off: a tween over the toolbar sees the placeholder
    assert app.registry['seen'] == [(HIDDEN_CONTENT_TYPE, 200)]


def record_veto(request, response):
    request.registry['veto_seen'].append(response.headers['Content-Type'])
    return False


@pytest.mark.parametrize(
    'environ',
    [{'REMOTE_ADDR': '10.1.2.3'}, {'REMOTE_ADDR': '127.0.0.1', 'wsgi.multiprocess': True}],
    ids=['host not allowed', 'multiprocess'],
)
def test_requests_the_toolbar_ignores_are_not_touched(environ):
    app = toolbar_app(setup=add_observer)
    expect_warning = environ.get('wsgi.multiprocess')
    with pytest.warns(UserWarning) if expect_warning else contextlib.nullcontext():
        response = webtest.TestApp(app, extra_environ=environ).get('/html')
    assert MARKUP not in response.body
    assert app.registry['seen'] == [('text/html; charset=UTF-8', 200)]
    assert records(app, '/html') == []


def test_non_html_stream_is_not_touched():
    app = toolbar_app(setup=add_observer)
    response = webtest.TestApp(app, extra_environ=LOCAL).get('/json')
    assert response.json == [{'n': n} for n in range(5)]
    assert app.registry['seen'] == [('application/json', 200)]


@pytest.mark.parametrize('intercept', [True, False])
def test_redirect_stream_is_not_rewritten(intercept):
    app = toolbar_app(
        settings={'debugtoolbar.intercept_redirects': str(intercept).lower()},
        setup=add_observer,
    )
    testapp = webtest.TestApp(app, extra_environ=LOCAL)
    response = testapp.get('/moved', status=302)
    assert response.headers['Location'] == 'http://localhost/page'
    assert response.body == b'<html><body>moved</body></html>'
    (record,) = records(app, '/moved')
    assert record.json['status_code'] == 302  # the toolbar's list is right
    # outer tweens see the placeholder only when the toolbar would rewrite
    assert app.registry['seen'] == [(HIDDEN_CONTENT_TYPE, 399 if intercept else 302)]


def test_a_normal_redirect_is_still_intercepted():
    def plain(request):
        return Response(status=302, location='/page')

    def setup(config):
        config.add_route('plain', '/plain')
        config.add_view(plain, route_name='plain')

    app = toolbar_app(settings={'debugtoolbar.intercept_redirects': 'true'}, setup=setup)
    response = webtest.TestApp(app, extra_environ=LOCAL).get('/plain')
    assert response.status_int == 200 and b'/page' in response.body


# -- errors ------------------------------------------------------------------


def test_error_before_the_first_item_gets_the_toolbar_traceback_page():
    app = toolbar_app()
    response = webtest.TestApp(app, extra_environ=LOCAL).get('/early', status=500)
    assert MARKUP in response.body  # the toolbar's own exception handling
    (record,) = records(app, '/early')
    assert record.traceback is not None


def test_error_after_the_first_item_is_raised_from_the_stream(tgstream_log):
    app = toolbar_app()
    with open_stream(app, '/boom', environ=LOCAL) as response:
        assert response.status_code == 200
        assert response.next_chunk() == b'<html><body><p>partial</p>'
        with pytest.raises(RuntimeError, match='secret detail'):
            response.read()
    assert any('/boom' in r.getMessage() for r in tgstream_log.records)


# -- SQL and transaction under the toolbar -----------------------------------


def db_stream_views(config):
    def notes(request):
        count = request.dbsession.query(User).count()  # before the first item

        def body():
            yield '<html><body><p>%d users</p>' % count
            for user in request.dbsession.query(User).order_by(User.id):
                yield tgstream.flush
                yield '<p>%s</p>' % user.name
            request.dbsession.add(Note(user_id=1, text='written while streaming'))
            yield '</body></html>'

        return body()

    config.add_route('notes', '/notes')
    config.add_view(notes, route_name='notes', stream=True, stream_content_type='text/html')


def seed(engine):
    from sqlalchemy.orm import Session

    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all([User(id=1, name='ann'), User(id=2, name='bob')])
        session.commit()


def stored_notes(engine):
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return [n.text for n in session.query(Note)]


@pytest.mark.parametrize('tgstream_first', [True, False])
def test_db_stream_under_the_toolbar_keeps_its_transaction_and_sql(any_engine, tgstream_first):
    seed(any_engine)
    app = build_db_app(
        any_engine, db_stream_views, includes=('tgstream', 'pyramid_debugtoolbar'),
        tgstream_first=tgstream_first,
    )
    body = webtest.TestApp(app, extra_environ=LOCAL).get('/notes').body
    assert body == b'<html><body><p>2 users</p><p>ann</p><p>bob</p></body></html>'
    assert stored_notes(any_engine) == ['written while streaming']
    (record,) = records(app, '/notes')
    (panel,) = [p for p in record.panels if p.name == 'sqlalchemy']
    statements = [q['raw_sql'].lower() for q in panel.data['queries']]
    assert any('count' in s for s in statements)  # before the first item
    assert any('insert into notes' in s for s in statements)  # while streaming
    assert statements[-1] == '-- [event] commit'  # the stream's commit
