"""The tgstream demo app (``pserve development.ini``)."""
import time

from pyramid.config import Configurator

from tgstream import expose


def main(global_config, **settings):
    with Configurator(settings=settings) as config:
        config.include('tgstream')
        config.add_route('index', '/')
        config.add_route('count', '/count')
        config.scan('.')
        return config.make_wsgi_app()


@expose(route_name='index', renderer='string')
def index(request):
    return 'tgstream demo: try  curl -N %s' % request.route_url('count')


@expose(route_name='count', stream=True, content_type='text/plain')
def count(request):
    for n in range(1, 11):
        yield '%s\n' % n
        time.sleep(float(request.registry.settings.get('demo.pause', 1)))
