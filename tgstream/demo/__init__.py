"""The tgstream demo: ``pserve development.ini`` serves it on port 6543.

Built the way the Pyramid cookiecutter builds apps (pyramid_tm,
pyramid_retry, zope.sqlalchemy, ``request.dbsession``, pyramid_jinja2,
waitress), plus ``config.include('tgstream')``. On first start it creates
its schema and seeds ``demo.seed_users`` users (see :mod:`.seed`); the index
page explains and links every endpoint (see :mod:`.routes`).
"""
from __future__ import annotations

from pyramid.config import Configurator

from .seed import setup_database
from .settings import parse_demo_settings


def main(global_config, **settings):
    """The demo's WSGI app (``use = egg:tgstream#demo``)."""
    demo = parse_demo_settings(settings)
    with Configurator(settings=settings) as config:
        config.registry['demo.settings'] = demo
        if demo.otel_console:
            from .otel import print_spans

            print_spans(config)
        config.include('pyramid_jinja2')
        config.include('tgstream')
        config.include('.models')
        config.include('.routes')
        config.scan('.views')
        app = config.make_wsgi_app()
    setup_database(config.registry['dbengine'], demo.seed_users)
    if demo.otel_console:
        from .otel import instrument_engine

        instrument_engine(config.registry['dbengine'])
    return app
