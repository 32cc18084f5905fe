"""The production files a user starts from repeat the recipes of
docs/production.rst (whose nginx recipe tests/live/test_nginx_wire.py runs)."""
from __future__ import annotations

import pytest

from tests.recipes import (
    CHECKOUT,
    documented_nginx_recipe,
    documented_waitress_settings,
    ini_settings,
    nginx_directives,
)
from tgstream.scaffold import template_path

SCAFFOLD_PRODUCTION = template_path() / '{{cookiecutter.repo_name}}' / 'production.ini'
PRODUCTION_FILES = {
    'the demo': CHECKOUT / 'production.ini',
    'the generated project': SCAFFOLD_PRODUCTION,
}


def test_the_documented_recipe_is_the_safe_one():
    recipe = documented_nginx_recipe()
    assert 'proxy_http_version 1.1;' in recipe
    assert 'proxy_buffering off;' in recipe


@pytest.mark.parametrize('name', sorted(PRODUCTION_FILES))
def test_production_ini_gives_the_documented_nginx_recipe(name):
    directives = nginx_directives(PRODUCTION_FILES[name].read_text())
    missing = [d for d in documented_nginx_recipe() if d not in directives]
    assert not missing, '%s production.ini lacks %s' % (name, missing)


@pytest.mark.parametrize('name', sorted(PRODUCTION_FILES))
def test_production_ini_has_the_documented_waitress_settings(name):
    text = PRODUCTION_FILES[name].read_text()
    # the scaffold's file is a Jinja template: its [server:main] has none
    server = ini_settings(text[text.index('[server:main]'):text.index('\n###', text.index('[server:main]'))],
                          'server:main')
    for key in ('outbuf_high_watermark', 'channel_request_lookahead'):
        assert server.get(key) == documented_waitress_settings()[key], (name, key)
