"""Views streaming Jinja2 templates, registered by config.scan() through expose.

Template names are relative to this package, as in a cookiecutter app.
``/rows`` and ``/page`` stream; with ``?plain`` the same view renders the
same template without ``stream=True`` (for comparisons), ``/rows?buffer``
streams with Jinja2's ``enable_buffering(5)``. Include
``pyramid_jinja2`` before this package (it calls ``add_jinja2_renderer``).
"""
from __future__ import annotations

import time

from pyramid.events import BeforeRender, subscriber
from pyramid.view import view_defaults

from tgstream import expose

ROUTES = (
    'rows', 'page', 'klass',
    'filter_error', 'syntax_error', 'early_error', 'not_a_dict',
)


def includeme(config):
    config.add_jinja2_renderer('.html')
    for name in ROUTES:
        config.add_route(name, '/' + name)
    config.scan('.')


@subscriber(BeforeRender)
def add_globals(event):
    event['from_subscriber'] = 'subscriber saw %d values' % len(event.rendering_val)


def slow_rows(count, pause=0.0, every=2000, fail_at=None, before_pause=None):
    """``count`` rows; sleeps ``pause`` s every ``every`` rows (bounded:
    ``count // every * pause`` in all), after calling ``before_pause(n)``
    if given (a test's handshake, setting ``tests.before_pause``)."""
    for n in range(1, count + 1):
        if pause and n % every == 0:
            if before_pause is not None:
                before_pause(n)
            time.sleep(pause)
        if n == fail_at:
            raise RuntimeError('row %d exploded' % n)
        yield {'n': n, 'name': 'row <%d> & co' % n}


def rows_values(request):
    params = request.params
    count = int(params.get('n', 100))
    return {
        'title': 'Rows & more',
        'rows': slow_rows(count, float(params.get('pause', 0)), fail_at=int(params.get('fail_at', 0)),
                          before_pause=request.registry.settings.get('tests.before_pause')),
        'rows_total': count,
    }


@expose('templates/rows.jinja2', route_name='rows', stream=True)
@expose('templates/rows.jinja2', route_name='rows', request_param='plain')
@expose('templates/rows.jinja2', route_name='rows', stream=True, request_param='buffer',
        stream_options={'buffer': 5})
def rows(request):
    return rows_values(request)


@expose('templates/page.html', route_name='page', stream=True)
@expose('templates/page.html', route_name='page', request_param='plain')
def page(request):
    return {'greeting': 'hello', 'numbers': iter(range(3))}


@view_defaults(route_name='klass')
class Klass:
    def __init__(self, request):
        self.request = request

    @expose('templates/rows.jinja2', stream=True)
    def __call__(self):
        return {'title': 'class', 'rows': [], 'rows_total': 0}


@expose('templates/filter_error.jinja2', route_name='filter_error', stream=True)
def filter_error(request):
    return {'rows': slow_rows(100), 'fail_at': int(request.params.get('fail_at', 50))}


@expose('templates/syntax_error.jinja2', route_name='syntax_error', stream=True)
def syntax_error(request):
    return {}


def explode():
    raise LookupError('exploded before the first chunk')


@expose('templates/early_error.jinja2', route_name='early_error', stream=True)
def early_error(request):
    return {'explode': explode}


@expose('templates/rows.jinja2', route_name='not_a_dict', stream=True)
def not_a_dict(request):
    return [('title', 'x')]
