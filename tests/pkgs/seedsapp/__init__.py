"""The seed documents' examples that need no database, ported to tgstream.

Each view keeps the shape of the original (CherryPy, TurboGears 2, Flask);
``PAUSE`` replaces their one- and two-second sleeps.
"""
import time

from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response

import tgstream
from tgstream import expose

PAUSE = 0.0


def includeme(config):
    for name in ('thing', 'howto', 'stream_list', 'stream', 'large.csv', 'hello'):
        config.add_route(name, '/' + name)
    config.scan('.')


def authorized(request):
    return request.params.get('user') == 'alice'


# CherryPy "Streaming the response body": headers set and NotFound raised in
# the handler -- which CherryPy cannot do in a streaming generator.
@expose(route_name='thing', stream=True)
def thing(request):
    request.response.headers['Content-Type'] = 'text/plain'
    if not authorized(request):
        raise HTTPNotFound()
    yield 'Hello, '
    yield 'world'


# CherryPy 0.10 HowTo: a slow text page written line by line.
@expose(route_name='howto', stream=True, content_type='text/plain')
def howto(request):
    yield 'First line. Sleeping 2 seconds ...\n'
    time.sleep(PAUSE)
    yield 'Second line. Sleeping 2 seconds ...\n'
    time.sleep(PAUSE)
    yield 'Third and last line'


class Root:
    """TurboGears 2 "Streaming Response" controller methods."""

    def __init__(self, request):
        self.request = request

    @expose(route_name='stream_list', stream=True, content_type='application/json')
    def stream_list(self):
        def output_pause():
            num = 0
            yield '['
            while num < 9:
                num += 1
                yield '%s, ' % num
                time.sleep(PAUSE)
            yield '10]'

        return output_pause()

    @expose(route_name='stream', stream=True, content_type='text/css')
    def stream(self):
        def output_pause(req):
            num = 0
            while num < 10:
                num += 1
                yield '%s/%s\n' % (req.path_info, num)
                time.sleep(PAUSE)

        return output_pause(tgstream.request._current_obj())


def iter_all_rows():
    for n in range(1000):
        yield [str(n), 'name %d' % n, 'x' * (n % 7)]


# Flask "Streaming Contents": a large CSV from a generator ...
@expose(route_name='large.csv')
def generate_large_csv(request):
    def generate():
        for row in iter_all_rows():
            yield ','.join(row) + '\n'

    return Response(app_iter=(line.encode() for line in generate()), content_type='text/csv')


# ... and "Streaming with Context": no stream_with_context() needed.
@expose(route_name='hello', stream=True)
def streamed_response(request):
    def generate():
        yield 'Hello '
        yield tgstream.request.params['name']
        yield '!'

    return generate()
