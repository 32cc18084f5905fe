"""A request that does not stream is the same with and without tgstream.

The same app -- cookiecutter wiring (pyramid_tm, explicit manager,
pyramid_retry, ``request.dbsession``), a commit veto, exception views,
callbacks -- is built twice, with and without ``config.include('tgstream')``,
each on a database of its own. Every request must give byte-for-byte the
same status, headers and body, leave the same rows behind and run the app's
callbacks at the same moments; pyramid_debugtoolbar pages and redirects too.
"""
from __future__ import annotations

import os

import pytest
import transaction
from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.response import FileResponse, Response
from sqlalchemy import func, select

from tests.compare import exchange, without_toolbar_ids
from tests.dbapp import User, build_db_app, make_engine, seed_users

SETTINGS = {
    'tm.commit_veto': 'pyramid_tm.default_commit_veto',
    'retry.attempts': '3',
}


def add(config, name, view, **options):
    config.add_route(name, '/' + name)
    config.add_view(view, route_name=name, **options)


def setup_views(config, events, tmp_path):
    def note(what):
        return lambda request, *args: events.append(what)

    def json_view(request):
        return {'users': request.dbsession.scalar(select(func.count()).select_from(User))}

    def write(request):
        request.dbsession.add(User(id=int(request.params['id']), name='w' + request.params['id']))
        return 'written'

    def vetoed(request):
        request.dbsession.add(User(id=100, name='vetoed'))
        request.response.status = 409
        return 'conflict'

    def doomed(request):
        request.dbsession.add(User(id=101, name='doomed'))
        request.tm.doom()
        return 'doomed'

    def not_found(request):
        raise HTTPNotFound('no such thing')

    def failing(request):
        request.dbsession.add(User(id=102, name='failing'))
        request.dbsession.flush()
        raise ValueError('handled by an exception view')

    def uncaught(request):
        request.dbsession.add(User(id=103, name='uncaught'))
        raise KeyError('nobody handles this')

    def redirect(request):
        raise HTTPFound(location=request.route_url('json'))

    def retried(request):
        attempt = request.environ.get('retry.attempt', 0)
        request.dbsession.add(User(id=110 + attempt, name='attempt%d' % attempt))
        request.dbsession.flush()
        if attempt < 1:
            raise transaction.interfaces.TransientError('try again')
        return 'attempt %d' % attempt

    def callbacks(request):
        events.append('view')
        request.add_response_callback(note('response callback'))
        request.add_finished_callback(note('finished callback'))
        return Response(b'callbacks', headers={'X-Custom': 'yes'}, content_type='text/plain')

    def plain_response(request):
        response = Response(body=b'<p>plain</p>', content_type='text/html', charset='utf-8')
        response.set_cookie('k', 'v', max_age=60)
        return response

    def file_response(request):
        path = tmp_path / 'file.txt'
        path.write_bytes(b'file body\n')
        # a fixed mtime: Last-Modified and the ETag do not tick between the
        # two apps' requests
        os.utime(path, (1_700_000_000, 1_700_000_000))
        return FileResponse(str(path), request=request, content_type='text/plain')

    def html(request):
        request.response.text = '<html><body><p>page</p></body></html>'
        return request.response

    def error_view(exc, request):
        request.response.status = 500
        return 'error: %s' % exc

    def not_found_view(request):
        request.response.status = 404
        return 'not found: %s' % request.path_info

    add(config, 'json', json_view, renderer='json')
    add(config, 'write', write, renderer='string', request_method='POST')
    add(config, 'vetoed', vetoed, renderer='string')
    add(config, 'doomed', doomed, renderer='string')
    add(config, 'not_found', not_found)
    add(config, 'failing', failing)
    add(config, 'uncaught', uncaught)
    add(config, 'redirect', redirect)
    add(config, 'retried', retried, renderer='string')
    add(config, 'callbacks', callbacks)
    add(config, 'plain_response', plain_response)
    add(config, 'file_response', file_response)
    add(config, 'html', html)
    config.add_view(error_view, context=ValueError, renderer='string')
    config.add_notfound_view(not_found_view, renderer='string')


REQUESTS = {
    'json': ('GET', '/json', {}),
    'json HEAD': ('HEAD', '/json', {}),
    'write commits': ('POST', '/write', {'POST': {'id': '50'}}),
    'write with the wrong method': ('GET', '/write', {}),
    'commit veto aborts': ('GET', '/vetoed', {}),
    'doom aborts': ('GET', '/doomed', {}),
    'HTTPNotFound raised': ('GET', '/not_found', {}),
    'no route': ('GET', '/nowhere', {}),
    'exception view': ('GET', '/failing', {}),
    'uncaught exception': ('GET', '/uncaught', {}),
    'redirect': ('GET', '/redirect', {}),
    'pyramid_retry': ('GET', '/retried', {}),
    'callbacks': ('GET', '/callbacks', {}),
    'plain response with a cookie': ('GET', '/plain_response', {}),
    'file response': ('GET', '/file_response', {}),
    'file response, conditional': (
        'GET', '/file_response', {'headers': {'If-None-Match': '"nothing"'}}),
    'html': ('GET', '/html', {}),
}


def rows(engine):
    with engine.connect() as conn:
        return sorted(conn.execute(select(User.id, User.name)).all())


def build_pair(tmp_path, settings=None, includes=(), extra_setup=None):
    """(app, engine, events) without and with tgstream."""
    pair = []
    for name, tgstream in (('without', ()), ('with', ('tgstream',))):
        engine = make_engine('sqlite:///%s' % (tmp_path / ('%s.sqlite' % name)))
        seed_users(engine)
        events: list = []

        def setup(config, events=events):
            for include in includes:
                config.include(include)
            setup_views(config, events, tmp_path)
            if extra_setup is not None:
                extra_setup(config)

        app = build_db_app(engine, setup, {**SETTINGS, **(settings or {})}, includes=tgstream)
        pair.append((app, engine, events))
    return pair


@pytest.fixture
def pair(tmp_path):
    made = build_pair(tmp_path)
    yield made
    for _, engine, _ in made:
        engine.dispose()


@pytest.mark.parametrize('name', list(REQUESTS))
def test_non_stream_request_is_identical(pair, name):
    method, path, args = REQUESTS[name]
    results = []
    for app, engine, events in pair:
        response = exchange(app, method, path, events=events, **args)
        results.append((response, rows(engine), list(events), engine.pool.checkedout()))
    without, with_ = results
    assert with_[0] == without[0], 'response'
    assert with_[1] == without[1], 'rows left in the database'
    assert with_[2] == without[2], 'order of callbacks and WSGI events'
    assert with_[3] == without[3] == 0, 'connections checked out'


def test_the_comparison_sees_outcomes(pair):
    # the suite compares things that differ between requests: not vacuous
    (app, engine, events), _ = pair
    assert exchange(app, 'POST', '/write', POST={'id': '51'})[0] == '200 OK'
    assert (51, 'w51') in rows(engine)
    exchange(app, 'GET', '/vetoed')
    assert 100 not in [id for id, _ in rows(engine)]
    assert exchange(app, 'GET', '/retried')[2] == b'attempt 1'
    assert [id for id, _ in rows(engine) if id >= 110] == [111]
    exchange(app, 'GET', '/callbacks', events=events)
    assert events == ['view', 'response callback', 'finished callback',
                      'returned', 'read', 'closed']
    assert exchange(app, 'GET', '/uncaught')[:2] == ('raised', KeyError)


# -- pyramid_debugtoolbar -----------------------------------------------------

LOCAL = {'REMOTE_ADDR': '127.0.0.1'}


@pytest.mark.parametrize('intercept', [False, True])
@pytest.mark.parametrize('name', ['html', 'redirect', 'json', 'exception view'])
def test_toolbar_pages_and_redirects_are_identical(tmp_path, name, intercept):
    settings = {'debugtoolbar.hosts': '127.0.0.1',
                'debugtoolbar.intercept_redirects': str(intercept).lower()}
    pair = build_pair(tmp_path, settings, includes=('pyramid_debugtoolbar',))
    path = {'html': '/html', 'redirect': '/redirect', 'json': '/json',
            'exception view': '/failing'}[name]
    results = [
        exchange(app, 'GET', path, environ=LOCAL, normalize=without_toolbar_ids)
        for app, _, _ in pair
    ]
    assert results[1] == results[0]
    if name == 'html':
        assert b'pDebugToolbarHandle' in results[0][2]  # the toolbar was there
    if name == 'redirect' and intercept:
        assert results[0][0] == '200 OK'  # the toolbar's redirect page
    for _, engine, _ in pair:
        engine.dispose()


# -- internal details -----------------------------------------------------------


def test_request_tm_is_the_apps_own_manager(tmp_path):
    seen = []

    def setup(config):
        def view(request):
            seen.append(request.tm)
            return 'ok'

        add(config, 'tm', view, renderer='string')

    (_, _, _), (app, engine, _) = build_pair(tmp_path, extra_setup=setup)
    exchange(app, 'GET', '/tm')
    assert type(seen[0]) is transaction.TransactionManager and seen[0].explicit
    engine.dispose()


def test_manager_hook_setting_is_left_alone_without_pyramid_tm(make_app):
    app = make_app(settings={'tm.manager_hook': 'pyramid_tm.explicit_manager'})
    assert app.registry.settings['tm.manager_hook'] == 'pyramid_tm.explicit_manager'
    assert 'tm.manager_hook' not in make_app().registry.settings
