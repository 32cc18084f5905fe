"""The README's reverse-proxy recipe, proven with a real nginx in front of
waitress: streams arrive progressively, a failed stream arrives cut; and over
HTTP/1.0 (nginx's default upstream protocol) a cut cannot be seen."""
from __future__ import annotations

import contextlib
import logging
import os
import threading

import httpx
import pytest

import tgstream
from tests.recipes import documented_nginx_recipe
from tgstream.testing.servers import nginx_binary, serve_nginx

pytestmark = pytest.mark.live


# the recipe exactly as docs/production.rst gives it
RECIPE = '\n'.join(documented_nginx_recipe())


@contextlib.contextmanager
def nginx(upstream_url: str, recipe: str):
    """nginx (tgstream.testing.serve_nginx) proxying to ``upstream_url``
    with the directives ``recipe``; yields its URL."""
    if nginx_binary() is None:
        if os.environ.get('TGSTREAM_REQUIRE_NGINX'):
            pytest.fail('nginx is required (TGSTREAM_REQUIRE_NGINX, set by .ci/run) '
                        'but is not installed: apt-get install nginx')
        pytest.skip('nginx is not installed (Debian: apt-get install nginx); '
                    '.ci/run installs it')
    with serve_nginx('proxy_pass %s;\n%s' % (upstream_url, recipe)) as server:
        yield server.url


def app(make_app, released):
    def paced(request):
        yield 'first\n'
        assert released.wait(10), 'the client never saw the first line'
        yield 'second\n'

    def failing(request):
        yield 'x' * 1000 + '\n'
        yield tgstream.flush
        raise RuntimeError('commit failed')

    def setup(config):
        for name, view in (('paced', paced), ('failing', failing)):
            config.add_route(name, '/' + name)
            config.add_view(view, route_name=name, stream=True)

    return make_app(setup)


def read(url):
    body, complete = b'', True
    with httpx.Client(timeout=10) as client:
        with client.stream('GET', url) as response:
            try:
                for data in response.iter_raw():
                    body += data
            except httpx.RemoteProtocolError:
                complete = False
    return response, body, complete


@pytest.mark.parametrize('buffering', ['off', 'on'])
def test_the_recipe_streams_progressively_and_shows_a_cut(make_app, live, tgstream_log,
                                                          buffering):
    # (with proxy_buffering on, nginx still passes on what it has whenever
    # the upstream pauses: paced lines arrive progressively all the same)
    released = threading.Event()
    upstream = live(app(make_app, released))
    with nginx(upstream, RECIPE.replace('proxy_buffering off', 'proxy_buffering ' + buffering)) as url:
        with httpx.Client(timeout=10) as client:
            with client.stream('GET', url + '/paced') as response:
                chunks = response.iter_raw()
                seen = b''
                while b'first\n' not in seen:
                    seen += next(chunks)
                released.set()  # produced only after the first line arrived
                seen += b''.join(chunks)
        assert seen == b'first\nsecond\n'
        response, body, complete = read(url + '/failing')
        assert response.status_code == 200 and body.startswith(b'x')
        assert not complete, 'nginx made a failed stream look complete'


def test_nginx_default_http_1_0_upstream_hides_the_cut(make_app, live, caplog):
    caplog.set_level(logging.WARNING, logger='tgstream')
    upstream = live(app(make_app, threading.Event()))
    with nginx(upstream, 'proxy_buffering off;') as url:
        response, body, complete = read(url + '/failing')
    assert body.startswith(b'x') and complete, 'HTTP/1.0 upstream: the cut is invisible'
    assert any(r.levelname == 'WARNING' and 'close-delimited' in r.getMessage()
               for r in caplog.records)
