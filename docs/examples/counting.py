"""The quick start's app: one streaming view, ``/count``.

Run it with ``python counting.py`` (waitress, http://localhost:6543).
"""
import os
import time

from pyramid.config import Configurator

from tgstream import expose

#: seconds between two lines (the documentation's tests set 0)
PAUSE = 1.0


@expose(route_name='count', stream=True, content_type='text/plain')
def count(request):
    for n in range(1, 11):
        yield '%s\n' % n
        time.sleep(PAUSE)


def main(global_config=None, **settings):
    with Configurator(settings=settings) as config:
        config.include('tgstream')          # or: pyramid.includes = tgstream
        config.add_route('count', '/count')
        config.scan(__name__)    # this module's @expose views
        return config.make_wsgi_app()


if __name__ == '__main__':
    from waitress import serve

    serve(main(), listen='localhost:%s' % os.environ.get('PORT', '6543'))
