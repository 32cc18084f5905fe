"""Streamed Jinja2 templates (pyramid_jinja2) with ``stream=True``.

Views and templates live in ``tests/pkgs/templatesapp``; DB views are added
here with asset-spec renderer names.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.response import Response
from pyramid.threadlocal import get_current_request
from sqlalchemy import func, select

from tests.dbapp import Base, Note, User, build_db_app
from tgstream.events import StreamFinished
from tgstream.testing import open_stream

APP = 'tests.pkgs.templatesapp'
TEMPLATES = APP + ':templates/'
INCLUDE_ORDERS = [
    ('tgstream', 'pyramid_jinja2', APP),
    ('pyramid_jinja2', 'tgstream', APP),
    ('pyramid_jinja2', APP, 'tgstream'),
]


def error_view(exc, request):
    return Response('error view: %s' % type(exc).__name__, status=500)


def app_setup(extra=None):
    def setup(config):
        config.add_view(error_view, context=Exception)
        if extra is not None:
            extra(config)

    return setup


@pytest.fixture
def app(make_app):
    return make_app(app_setup(), includes=INCLUDE_ORDERS[0])


@pytest.fixture
def testapp(app):
    return webtest.TestApp(app)


def finished_events(config, events):
    config.add_subscriber(events.append, StreamFinished)


# -- output and globals ------------------------------------------------------

@pytest.mark.parametrize('includes', INCLUDE_ORDERS)
def test_streamed_output_equals_the_plain_render(make_testapp, includes):
    testapp = make_testapp(app_setup(), includes=includes)
    streamed = testapp.get('/rows?n=500')
    plain = testapp.get('/rows?n=500&plain')
    buffered = testapp.get('/rows?n=500&buffer')
    assert streamed.text == plain.text == buffered.text
    assert streamed.text.count('<tr>') == 500
    assert 'row &lt;500&gt; &amp; co' in streamed.text  # autoescaped as usual
    assert streamed.headers['Content-Type'] == 'text/html; charset=utf-8'
    # an extension added with config.add_jinja2_renderer('.html') streams too
    page = testapp.get('/page')
    assert page.text == testapp.get('/page?plain').text
    assert '<p>hello from .html</p>' in page.text


def test_renderer_globals_and_before_render_subscribers(testapp):
    text = testapp.get('/rows?n=2').text
    for expected in (
        '<dt>path</dt><dd>/rows</dd>',
        '<dt>req</dt><dd>True</dd>',
        '<dt>renderer_name</dt><dd>templates/rows.jinja2</dd>',
        '<dt>renderer_type</dt><dd>.jinja2</dd>',
        '<dt>context</dt><dd>DefaultRootFactory</dd>',
        '<dt>view</dt><dd>rows</dd>',
        # the subscriber saw the view's 3 values (rendering_val)
        '<dt>subscriber</dt><dd>subscriber saw 3 values</dd>',
        '<dt>csrf</dt><dd>True</dd>',
        '<dt>route_url</dt><dd>http://localhost/rows</dd>',
    ):
        assert expected in text
    # a class view: ``view`` is its instance, as in Pyramid's renderers
    assert '<dt>view</dt><dd>Klass</dd>' in testapp.get('/klass').text


def test_view_values_win_over_subscriber_values(make_testapp):
    def view(request):
        return {'greeting': 'from view', 'numbers': []}

    def subscriber(event):
        event['greeting'] = 'from subscriber'
        event['extra'] = 'added'

    def extra(config):
        from pyramid.events import BeforeRender

        config.add_subscriber(subscriber, BeforeRender)
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer=TEMPLATES + 'page.html', stream=True)
        config.add_view(view, route_name='v', renderer=TEMPLATES + 'page.html',
                        request_param='plain')

    testapp = make_testapp(app_setup(extra), includes=INCLUDE_ORDERS[1])
    assert '<p>from view from .html</p>' in testapp.get('/v').text
    assert testapp.get('/v').text == testapp.get('/v?plain').text


def counted_rows_app(make_app, count, settings=None, includes=('tgstream', 'pyramid_jinja2')):
    """An app streaming ``rows.jinja2`` at ``/v`` over ``count`` generated
    rows; returns ``(app, produced)``, ``produced`` growing as rows are."""
    produced = []

    def view(request):
        def rows():
            for n in range(1, count + 1):
                produced.append(n)
                yield {'n': n, 'name': 'r%d' % n}

        return {'title': 't', 'rows': rows(), 'rows_total': count}

    def setup(config):
        config.add_route('rows', '/v')  # rows.jinja2 links to 'rows'
        config.add_view(view, route_name='rows', renderer=TEMPLATES + 'rows.jinja2', stream=True)

    return make_app(setup, settings, includes), produced


def test_the_page_streams_while_rows_are_produced(make_app):
    app, produced = counted_rows_app(make_app, 10000, {'tgstream.chunk_size': '4096'})
    with open_stream(app, '/v') as response:
        first = response.next_chunk()
        assert first.startswith(b'<!doctype html>')
        # the first write went out long before the rows ran out
        assert len(produced) < 1000
        rest = response.read()
    assert len(produced) == 10000
    assert (first + rest).count(b'<tr>') == 10000


def test_buffer_option_groups_template_events(make_app):
    events = []
    app = webtest.TestApp(make_app(app_setup(lambda c: finished_events(c, events)),
                                   includes=INCLUDE_ORDERS[0]))
    body = app.get('/rows?n=200').body
    assert app.get('/rows?n=200&buffer').body == body
    unbuffered, buffered = events
    assert unbuffered.bytes == buffered.bytes == len(body)
    # Jinja2 enable_buffering(5): one str per 5 template events
    assert buffered.items * 4 < unbuffered.items
    assert unbuffered.outcome == buffered.outcome == 'completed'


def test_the_response_charset_encodes_the_page(make_testapp):
    def view(request):
        request.response.charset = 'iso-8859-1'
        return {'greeting': 'h\xe9llo', 'numbers': []}

    def extra(config):
        config.add_route('v', '/v')
        for options in ({'stream': True}, {'request_param': 'plain'}):
            config.add_view(view, route_name='v', renderer=TEMPLATES + 'page.html', **options)

    testapp = make_testapp(app_setup(extra), includes=INCLUDE_ORDERS[0])
    streamed = testapp.get('/v')
    assert streamed.headers['Content-Type'] == 'text/html; charset=iso-8859-1'
    assert b'<p>h\xe9llo from .html</p>' in streamed.body
    assert streamed.body == testapp.get('/v?plain').body


def test_an_async_environment_is_an_error_not_a_buffered_page(make_testapp):
    def make_async(config):
        def action():
            config.get_jinja2_environment().is_async = True

        config.action(None, action, order=999)

    testapp = make_testapp(make_async, includes=INCLUDE_ORDERS[1])
    assert 'Rows' in testapp.get('/rows?n=1&plain').text
    with pytest.raises(RuntimeError, match=r"view tests.pkgs.templatesapp.rows .*cannot stream: "
                                           r"its Jinja2 environment is async"):
        testapp.get('/rows?n=1')


# -- configuration errors ------------------------------------------------------

def configure(renderer, includes=('tgstream', 'pyramid_jinja2'), **options):
    def view(request):
        return {}

    with Configurator() as config:
        for name in includes:
            config.include(name)
        config.add_route('r', '/r')
        config.add_view(view, route_name='r', renderer=renderer, stream=True, **options)
        return config.make_wsgi_app()


@pytest.mark.parametrize(
    'options, message',
    [
        ({'buffer': 1}, r'view .*view.*buffer=1 is not valid.*int >= 2'),
        ({'buffer': '5'}, r"buffer='5' is not valid"),
        ({'buffer': True}, r'buffer=True is not valid'),
        ({'chunk': 5}, r"stream_options chunk: unknown stream option for renderer .*takes: buffer"),
    ],
)
def test_bad_stream_options(options, message):
    with pytest.raises(ConfigurationError, match=message):
        configure(TEMPLATES + 'rows.jinja2', stream_options=options)


@pytest.mark.parametrize('renderer', ['templates/x.mak', 'templates/x.pt'])
def test_renderers_that_cannot_stream_are_configuration_errors(renderer):
    with pytest.raises(ConfigurationError, match=r"renderer %r cannot stream" % renderer):
        configure(renderer, includes=('tgstream', 'pyramid_jinja2', 'pyramid_mako'))


def test_jinja2_without_pyramid_jinja2_included():
    with pytest.raises(ConfigurationError,
                       match=r"renderer 'x.jinja2' .*config.include\(\"pyramid_jinja2\"\)"):
        configure('x.jinja2', includes=('tgstream',))


def test_a_jinja2_renderer_not_from_pyramid_jinja2():
    def setup_other(config):
        config.add_renderer('.jinja2', lambda info: lambda value, system: 'x')

    with pytest.raises(ConfigurationError, match=r"not pyramid_jinja2's"):
        with Configurator() as config:
            config.include('tgstream')
            setup_other(config)
            config.add_route('r', '/r')
            config.add_view(lambda r: {}, route_name='r', renderer='x.jinja2', stream=True)


def test_extension_added_after_a_commit_needs_add_stream_renderer():
    def build(register):
        with Configurator() as config:
            config.include('tgstream')
            config.include('pyramid_jinja2')
            config.commit()
            config.add_jinja2_renderer('.tmpl')
            if register:
                config.add_stream_renderer('.tmpl', 'tgstream.renderers.templates.jinja2_stream_renderer')
            config.add_route('r', '/r')
            config.add_view(lambda r: {'greeting': 'late', 'numbers': [1]}, route_name='r',
                            renderer=TEMPLATES + 'late.tmpl', stream=True)
            return config.make_wsgi_app()

    with pytest.raises(ConfigurationError, match=r"'.*late.tmpl' cannot stream"):
        build(register=False)
    assert webtest.TestApp(build(register=True)).get('/r').text == 'late: 1'


def test_works_without_pyramid_jinja2_installed():
    # A fresh interpreter where ``import pyramid_jinja2`` fails.
    code = textwrap.dedent('''
        import sys
        sys.modules['pyramid_jinja2'] = None
        import webtest
        from pyramid.config import Configurator
        from pyramid.exceptions import ConfigurationError

        def raw(request):
            yield 'raw ok'

        with Configurator() as config:
            config.include('tgstream')
            config.add_route('r', '/r')
            config.add_view(raw, route_name='r', stream=True)
            app = config.make_wsgi_app()
        print(webtest.TestApp(app).get('/r').text)
        try:
            with Configurator() as config:
                config.include('tgstream')
                config.add_route('r', '/r')
                config.add_view(lambda r: {}, route_name='r', renderer='x.jinja2', stream=True)
        except ConfigurationError as exc:
            print(exc)
    ''')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('raw ok\n')
    assert 'needs pyramid_jinja2 (the "jinja2" extra' in result.stdout


# -- errors --------------------------------------------------------------------

@pytest.mark.parametrize(
    'path, error',
    [
        ('/syntax_error', 'TemplateSyntaxError'),
        ('/early_error', 'LookupError'),        # raised before the first chunk
        ('/not_a_dict', 'TypeError'),
    ],
)
def test_errors_before_the_first_chunk_are_normal_error_responses(testapp, path, error):
    response = testapp.get(path, status=500)
    assert response.text == 'error view: %s' % error


def test_not_a_dict_names_the_view(make_app):
    with pytest.raises(TypeError, match=r'view tests.pkgs.templatesapp.not_a_dict .*returned '
                                        r"list; a view streaming template .* must return a dict"):
        webtest.TestApp(make_app(None, includes=INCLUDE_ORDERS[0])).get('/not_a_dict')


@pytest.mark.parametrize(
    'path, error',
    [
        ('/rows?n=3000&fail_at=2500', "RuntimeError('row 2500 exploded')"),
        ('/filter_error?fail_at=50', "TemplateRuntimeError(\"No filter named 'no_such_filter' found.\")"),
    ],
)
def test_error_mid_render_cuts_the_stream(make_app, tgstream_log, path, error):
    events = []
    app = make_app(app_setup(lambda c: finished_events(c, events)), {'tgstream.chunk_size': '1024'},
                   INCLUDE_ORDERS[0])
    response = open_stream(app, path)
    assert response.status_code == 200
    assert response.next_chunk()
    with pytest.raises(Exception) as raised:
        response.read()
    response.close()
    assert repr(raised.value) == error
    assert events[0].outcome == 'error'
    assert any(path.split('?')[0] in r.getMessage() for r in tgstream_log.records)


def test_closing_early_closes_generator_values_inside_the_request(make_app):
    seen = []

    def view(request):
        def rows():
            try:
                for n in range(100000):
                    yield {'n': n, 'name': 'x'}
            finally:
                seen.append(get_current_request() is request)

        return {'title': 't', 'rows': rows(), 'rows_total': 0}

    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer=TEMPLATES + 'rows.jinja2', stream=True)

    app = make_app(setup, {'tgstream.chunk_size': '1024'}, INCLUDE_ORDERS[0])
    with open_stream(app, '/v') as response:
        response.read(40)  # (the first pieces go out one by one)
        assert seen == []
    assert seen == [True]


# -- the transaction spans the render -----------------------------------------

@pytest.fixture
def engine(any_engine):
    Base.metadata.create_all(any_engine)
    with any_engine.begin() as conn:
        conn.execute(User.__table__.insert(), [{'id': n, 'name': 'user%d' % n} for n in range(1, 4)])
        conn.execute(Note.__table__.insert(), [{'user_id': 1, 'text': 'hello'},
                                               {'user_id': 1, 'text': 'world'}])
    return any_engine


def count_users(engine):
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(User))


def db_app(engine, view, template='users.jinja2'):
    def setup(config):
        config.add_view(error_view, context=Exception)
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer=TEMPLATES + template, stream=True)

    return build_db_app(engine, setup, includes=('tgstream', 'pyramid_jinja2'))


def test_queries_in_the_template_generator_use_the_request_session(engine):
    def view(request):
        def users():
            # runs while the template renders, after the view returned
            yield from request.dbsession.scalars(select(User).order_by(User.id))

        def count():
            return request.dbsession.scalar(select(func.count()).select_from(User))

        return {'users': users(), 'count': count}

    text = webtest.TestApp(db_app(engine, view)).get('/v').text
    assert text == ('<ul>\n<li>user1: hello,world</li>\n<li>user2: </li>\n'
                    '<li>user3: </li>\n</ul>\n<p>3</p>')
    assert engine.pool.checkedout() == 0


def test_view_and_template_writes_commit_together_at_the_end(engine):
    seen_during = []

    def view(request):
        request.dbsession.add(User(id=10, name='from view'))

        def users():
            request.dbsession.add(User(id=11, name='from template'))
            request.dbsession.flush()
            seen_during.append(count_users(engine))
            yield from request.dbsession.scalars(select(User).where(User.id >= 10).order_by(User.id))

        return {'users': users(), 'count': lambda: 'done'}

    text = webtest.TestApp(db_app(engine, view)).get('/v').text
    assert '<li>from view: </li>\n<li>from template: </li>' in text
    assert count_users(engine) == 5
    if engine.dialect.name == 'postgresql':
        assert seen_during == [3]   # not visible to others before the end
    assert engine.pool.checkedout() == 0


def test_error_mid_render_aborts_the_transaction(engine, tgstream_log):
    def view(request):
        request.dbsession.add(User(id=10, name='from view'))

        def users():
            yield from request.dbsession.scalars(select(User).order_by(User.id))
            request.dbsession.add(User(id=11, name='from template'))
            request.dbsession.flush()
            raise RuntimeError('after the rows')

        return {'users': users(), 'count': lambda: 0}

    response = open_stream(db_app(engine, view), '/v')
    assert response.next_chunk().startswith(b'<ul>')
    with pytest.raises(RuntimeError, match='after the rows'):
        response.read()
    response.close()
    assert count_users(engine) == 3
    assert engine.pool.checkedout() == 0


def test_template_error_before_the_first_chunk_aborts_too(engine):
    def view(request):
        request.dbsession.add(User(id=10, name='from view'))
        request.dbsession.flush()

        def explode():
            raise LookupError('before any output')

        return {'explode': explode}

    response = webtest.TestApp(db_app(engine, view, 'early_error.jinja2')).get('/v', status=500)
    assert response.text == 'error view: LookupError'
    assert count_users(engine) == 3
    assert engine.pool.checkedout() == 0


# -- pyramid_debugtoolbar -------------------------------------------------------

def test_the_toolbar_leaves_template_streams_alone(make_app):
    app, produced = counted_rows_app(
        make_app, 3000, {'debugtoolbar.hosts': '127.0.0.1', 'tgstream.chunk_size': '1024'},
        ('pyramid_debugtoolbar', 'tgstream', 'pyramid_jinja2'),
    )
    with open_stream(app, '/v', environ={'REMOTE_ADDR': '127.0.0.1'}) as response:
        assert response.headers['Content-Type'] == 'text/html; charset=utf-8'
        assert response.next_chunk().startswith(b'<!doctype html>')
        assert len(produced) < 3000   # not read whole by the toolbar
        body = response.body + response.read()
    assert body.count(b'<tr>') == 3000
    assert b'pDebug' not in body
