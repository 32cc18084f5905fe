"""Shared fixtures: apps built with real Pyramid, servers on 127.0.0.1.

``make_app(setup, settings=None, includes=('tgstream',))`` builds a WSGI app:
``setup(config)`` adds routes and views. ``testapp`` wraps such an app in
WebTest; ``live`` (from ``tgstream.testing``) serves it on waitress.
"""
from __future__ import annotations

import logging
import os

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.threadlocal import manager


def build_app(setup=None, settings=None, includes=('tgstream',)):
    with Configurator(settings=dict(settings or {})) as config:
        for name in includes:
            config.include(name)
        if setup is not None:
            setup(config)
        return config.make_wsgi_app()


@pytest.fixture
def make_app():
    return build_app


@pytest.fixture
def make_testapp():
    def make(setup=None, settings=None, includes=('tgstream',), **kw):
        return webtest.TestApp(build_app(setup, settings, includes), **kw)

    return make


@pytest.fixture(autouse=True)
def no_threadlocal_leak():
    """Every test must leave Pyramid's thread-local stack as it found it."""
    before = list(manager.stack)
    yield
    assert manager.stack == before, 'a request was left pushed on the thread'


@pytest.fixture
def tgstream_log(caplog):
    caplog.set_level(logging.ERROR, logger='tgstream')
    return caplog


PG_URL = os.environ.get(
    'TGSTREAM_TEST_PG_URL', 'postgresql+psycopg://postgres@127.0.0.1:5432/test'
)
