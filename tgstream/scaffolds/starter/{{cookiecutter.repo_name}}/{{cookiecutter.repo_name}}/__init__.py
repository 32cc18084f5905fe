"""{{ cookiecutter.project_name }}."""
from pyramid.config import Configurator


def main(global_config, **settings):
    """Return the Pyramid WSGI application (``pserve development.ini``)."""
    with Configurator(settings=settings) as config:
        config.include('pyramid_jinja2')
        config.include('tgstream')
        config.include('.routes')
        config.include('.models')
        config.scan()
    return config.make_wsgi_app()
