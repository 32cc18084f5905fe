"""``tgstream.serverlog``: opt-in, and ``config.include('tgstream')`` leaves
every logger it did not create alone."""
from __future__ import annotations

import logging
import logging.config

import pytest

from tests.conftest import build_app
from tgstream.serverlog import SERVER_LOGGERS, ServerLogFilter


def logger_state() -> dict:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return {
        logger.name: (list(logger.filters), list(logger.handlers), logger.level,
                      logger.propagate, logger.disabled)
        for logger in loggers
    }


@pytest.fixture
def server_loggers():
    loggers = [logging.getLogger(name) for name in SERVER_LOGGERS]
    before = [list(logger.filters) for logger in loggers]
    yield loggers
    for logger, filters in zip(loggers, before):
        logger.filters[:] = filters


def view(request):
    yield 'a'


def setup(config):
    config.add_route('v', '/v')
    config.add_view(view, route_name='v', stream=True)


def test_include_leaves_other_loggers_alone(server_loggers):
    for logger in server_loggers:   # the servers' loggers exist before the app
        logger.filters[:] = [f for f in logger.filters if not isinstance(f, ServerLogFilter)]
    before = logger_state()
    build_app(setup, {'tgstream.toolbar': 'true'}, includes=('tgstream', 'pyramid_tm'))
    after = logger_state()
    assert {name: state for name, state in after.items() if name in before} == before
    for logger in server_loggers:
        assert not any(isinstance(f, ServerLogFilter) for f in logger.filters)


def test_the_setting_adds_the_filter_to_the_server_loggers_once(server_loggers):
    for _ in range(2):
        build_app(setup, {'tgstream.shorten_server_log': 'true'})
    for logger in server_loggers:
        assert [f for f in logger.filters if isinstance(f, ServerLogFilter)] != []
        assert len([f for f in logger.filters if isinstance(f, ServerLogFilter)]) == 1


def test_a_bad_value_names_the_setting():
    from pyramid.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match='tgstream.shorten_server_log'):
        build_app(setup, {'tgstream.shorten_server_log': 'maybe'})


def test_the_filter_can_be_named_in_a_dict_config():
    name = 'tests.serverlog.dictconfig'
    logging.config.dictConfig({
        'version': 1,
        'disable_existing_loggers': False,
        'filters': {'tgstream': {'()': 'tgstream.serverlog.ServerLogFilter'}},
        'loggers': {name: {'filters': ['tgstream']}},
    })
    logger = logging.getLogger(name)
    try:
        assert any(isinstance(f, ServerLogFilter) for f in logger.filters)
    finally:
        logger.filters.clear()
