"""The demo's live feed: an import in one tab appears in every open tab."""
from __future__ import annotations

import json

import httpx
import pytest
import webtest

from tests.liveapp import SSEClient
from tgstream.demo import main
from tgstream.live import get_hub, stop_hub

pytestmark = pytest.mark.live


@pytest.fixture
def demo(tmp_path):
    app = main({}, **{
        'sqlalchemy.url': 'sqlite:///%s' % (tmp_path / 'demo.sqlite'),
        'demo.seed_users': '5', 'demo.pause': '0', 'demo.import.batch': '50',
        'tgstream.sse.keepalive': '0.5',
    })
    yield app
    stop_hub(app.registry)
    app.registry['dbengine'].dispose()


def csv_of(names):
    return 'name,email\n' + ''.join('%s,%s@example.com\n' % (n, n) for n in names)


def post_import(url, names):
    response = httpx.post(url + '/users/import', content=csv_of(names),
                          headers={'Content-Type': 'text/csv'}, timeout=30)
    return [json.loads(line) for line in response.text.splitlines()]


def test_imports_appear_in_every_open_feed(demo, live):
    url = live(demo, threads=8)
    tabs = [SSEClient(url + '/users/feed') for _ in range(2)]
    try:
        for tab in tabs:
            tab.read_until(lambda events: events)
        # a failing import (a name that exists) sends nothing
        lines = post_import(url, ['new%d' % n for n in range(60)] + ['user000001'])
        assert lines[-1]['status'] == 'aborted'
        names = ['imp%d' % n for n in range(60)]
        assert post_import(url, names)[-1]['status'] == 'written'
        for tab in tabs:
            tab.read_until(lambda events: len([e for e in events if 'data' in e]) >= 2)
            batches = [json.loads(e['data']) for e in tab.data_events()]
            assert [len(b['users']) + b['more'] for b in batches] == [50, 10]
            assert [u['name'] for u in batches[0]['users']] == names[:20]
            assert [u['name'] for u in batches[1]['users']] == names[50:]
    finally:
        for tab in tabs:
            tab.close()


def test_live_page_listens_to_the_feed(demo):
    text = webtest.TestApp(demo).get('/live').text
    assert "new EventSource('/users/feed')" in text and "'reset'" in text
    assert get_hub(demo.registry).stream_count() == 0
