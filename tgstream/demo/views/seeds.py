"""The seed documents' examples, ported to tgstream.

Each keeps the shape of its original (TurboGears 2 "Streaming Response",
CherryPy "Streaming the response body" and its 0.10 HowTo, Flask
"Streaming Contents"); the differences are the point: no request passed
into generators, no ``DBSession.remove()``, no manual ``transaction.commit()``,
no ``stream_with_context``. ``demo.pause`` replaces their sleeps.
"""
from __future__ import annotations

import time

from pyramid.httpexceptions import HTTPNotFound
from sqlalchemy import select

import tgstream
from tgstream import expose, stream_query

from ..models import Permission, User
from ..settings import demo_settings
from .params import int_param

# -- TurboGears 2 ------------------------------------------------------------

@expose(route_name='tg_stream_list', stream=True, content_type='application/json')
def stream_list(request):
    """TG's ``stream_list``: numbers 1..10 as a JSON array, slowly -- the
    seed's own text, ``[1, 2, ...`` with its spaces, piece by piece."""
    pause = demo_settings(request).pause

    def output_pause():
        num = 0
        yield '['
        while num < 9:
            num += 1
            yield '%s, ' % num
            time.sleep(pause)
        yield '10]'

    return output_pause()


@expose(route_name='tg_stream', stream=True, content_type='text/plain')
def stream(request):
    """TG's "Accessing Request": ``tgstream.request`` works in the generator,
    where TG had to pass ``request._current_obj()`` in."""
    pause = demo_settings(request).pause

    def output_pause():
        num = 0
        while num < 10:
            num += 1
            yield '%s/%s\n' % (tgstream.request.path_info, num)
            time.sleep(pause)

    return output_pause()


@expose('json', route_name='tg_stream_db', stream=True)
def stream_db(request):
    """TG's "Reading from Database": users 1..10 (the seed starts at
    user 0, which no seeded table has, and ends with ``null``), read while
    streaming; the json renderer does the framing."""
    pause = demo_settings(request).pause
    for num in range(1, 11):
        user = request.dbsession.get(User, num)
        yield user.name if user else None
        time.sleep(pause)


@expose(route_name='tg_stream_write', request_method='POST', stream=True,
        content_type='text/plain')
def stream_write(request):
    """TG's "Writing to Database": no manual flush/commit/remove. The
    permissions are committed when the stream is exhausted, before its last
    bytes are sent; a failure or a client that leaves rolls them back."""
    pause = demo_settings(request).pause
    num = 0
    while num < 9:
        request.dbsession.add(Permission(name='perm_%s' % num))
        yield 'added perm_%s\n' % num
        num += 1
        time.sleep(pause)
    request.dbsession.flush()
    yield 'flushed 9 permissions; committed when this response ends\n'


@expose('json', route_name='permissions', stream=True)
def permissions(request):
    return stream_query(request.dbsession, select(Permission).order_by(Permission.id))


# -- CherryPy ----------------------------------------------------------------

@expose(route_name='cp_thing', stream=True)
def thing(request):
    """CherryPy's ``thing``: headers set and NotFound raised by the streaming
    handler itself (CherryPy needed a separate inner generator)."""
    request.response.headers['Content-Type'] = 'text/plain'
    if request.params.get('user') != 'alice':
        raise HTTPNotFound('no thing for you (try ?user=alice)')
    yield 'Hello, '
    yield 'world'


@expose(route_name='cp_howto', stream=True, content_type='text/plain')
def howto(request):
    """CherryPy 0.10's HowTo: a slow page, without writing to the socket."""
    pause = demo_settings(request).pause
    yield 'First line. Sleeping %g seconds ...\n' % pause
    time.sleep(pause)
    yield 'Second line. Sleeping %g seconds ...\n' % pause
    time.sleep(pause)
    yield 'Third and last line\n'


# -- Flask -------------------------------------------------------------------

def iter_all_rows(count: int):
    for n in range(1, count + 1):
        yield (n, 'row %d' % n, n * n)


@expose('csv', route_name='flask_large_csv', stream=True, filename='large.csv')
def generate_large_csv(request):
    """Flask's ``generate_large_csv``: the csv renderer quotes what
    ``','.join`` would not."""
    count = int_param(request, 'rows', 100_000, 0, 10_000_000)
    yield ('n', 'label', 'square')
    yield from iter_all_rows(count)


@expose('tgstream.demo:templates/large_page.jinja2', route_name='flask_large_page',
        stream=True)
def render_large_template(request):
    """Flask's ``render_large_template``: a template rendered as the users
    query yields rows."""
    limit = int_param(request, 'limit', 1000, 0, 1_000_000)
    query = select(User).order_by(User.id).limit(limit)
    return {'users': stream_query(request.dbsession, query)}


@expose(route_name='flask_hello', stream=True)
def streamed_response(request):
    """Flask's "Streaming with Context", without ``stream_with_context``."""
    def generate():
        yield 'Hello '
        yield tgstream.request.params.get('name', 'World')
        yield '!\n'

    return generate()
