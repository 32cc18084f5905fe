"""Every route of the demo, with what the index page says about it.

The index page is rendered from :data:`SECTIONS`, so a route cannot exist
without being explained and linked there.
"""
from __future__ import annotations

from typing import NamedTuple


class Endpoint(NamedTuple):
    name: str          # route name
    pattern: str
    method: str
    summary: str
    example: str = ''  # query string or curl arguments for the index

    def link(self, url: str) -> str:
        """``url`` with the example's query string."""
        return url + self.example if self.example.startswith('?') else url

    def curl(self, url: str) -> str:
        """The curl command the index shows for this endpoint at ``url``."""
        args = '' if self.example.startswith('?') else self.example
        url = self.link(url)
        return ' '.join(filter(None, [
            'curl -N', args, "'%s'" % url if '?' in url else url,
        ]))


SECTIONS: tuple[tuple[str, tuple[Endpoint, ...]], ...] = (
    ('Pages', (
        Endpoint('index', '/', 'GET', 'this page'),
        Endpoint('live', '/live', 'GET',
                 'a page that consumes streams live: the users table filling '
                 'from NDJSON with a progress bar, server-sent events, and a '
                 'CSV import showing its progress'),
    )),
    ('TurboGears 2 "Streaming Response", ported', (
        Endpoint('tg_stream_list', '/tg/stream_list', 'GET',
                 "numbers 1..10 as a JSON array, one every demo.pause seconds "
                 "(the seed's own text: '[1, 2, ' ... '10]')"),
        Endpoint('tg_stream', '/tg/stream', 'GET',
                 'request.path_info read inside the stream, no request passed in'),
        Endpoint('tg_stream_db', '/tg/stream_db', 'GET',
                 'users 1..10 read with request.dbsession while streaming '
                 '(no DBSession.remove() needed)'),
        Endpoint('tg_stream_write', '/tg/stream_write', 'POST',
                 'adds 9 permissions while streaming; committed when the stream '
                 'ends (none if it fails or the client leaves)', '-X POST'),
        Endpoint('permissions', '/permissions', 'GET',
                 'the permissions written so far (JSON array)'),
    )),
    ('CherryPy, ported', (
        Endpoint('cp_thing', '/cherrypy/thing', 'GET',
                 'sets a header and raises NotFound in a streaming handler: '
                 '404 unless ?user=alice', '?user=alice'),
        Endpoint('cp_howto', '/cherrypy/howto', 'GET',
                 'the 0.10 HowTo: a slow text page, line by line'),
    )),
    ('Flask "Streaming Contents", ported', (
        Endpoint('flask_large_csv', '/flask/large.csv', 'GET',
                 'a large generated CSV (?rows=N, default 100000) in constant memory',
                 '?rows=5'),
        Endpoint('flask_large_page', '/flask/large_page.html', 'GET',
                 'a Jinja2 template rendered piece by piece over a users query '
                 '(?limit=N, default 1000)', '?limit=3'),
        Endpoint('flask_hello', '/flask/hello', 'GET',
                 'request.params read inside the stream (stream_with_context '
                 'is not needed)', '?name=World'),
    )),
    ('Exports of the whole users table', (
        Endpoint('users_json', '/users.json', 'GET', 'one JSON array (download users.json)'),
        Endpoint('users_ndjson', '/users.ndjson', 'GET',
                 'one JSON object per line (download users.ndjson)'),
        Endpoint('users_csv', '/users.csv', 'GET',
                 'CSV with a header row, formula-guarded (download users.csv)'),
    )),
    ('Import and events', (
        Endpoint('users_import', '/users/import', 'POST',
                 'upload a CSV (columns name, email; optional fullname, joined; '
                 'id ignored): bad files get a 400 before anything is written; '
                 'progress streams as NDJSON; every row is committed at the end, '
                 'or none; existing=update updates the users an export names, '
                 'so users.csv imports back', '-F file=@users.csv -F existing=update'),
        Endpoint('events', '/events', 'GET',
                 'server-sent events: a tick every demo.pause seconds with the '
                 'user count (?count=N, default 10)', '?count=3'),
        Endpoint('users_feed', '/users/feed', 'GET',
                 'a live feed: server-sent events for every committed import '
                 'batch, in every open page and every worker process '
                 '(tgstream.listen); reset when the page should reload'),
    )),
)

ENDPOINTS: tuple[Endpoint, ...] = tuple(e for _, group in SECTIONS for e in group)


def includeme(config) -> None:
    for endpoint in ENDPOINTS:
        config.add_route(endpoint.name, endpoint.pattern)
    # what browsers ask every page for (not an endpoint of the demo)
    config.add_route('favicon', '/favicon.ico')
