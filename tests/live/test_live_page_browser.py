"""The demo's ``/live`` page in a real browser (headless Chromium).

The page consumes three streams with the browser's own APIs: ``fetch`` and a
stream reader (the NDJSON users table and its progress bar), ``EventSource``
(server-sent events) and a multipart upload whose progress streams back.
The demo is ``development.ini`` (toolbar included) on a real waitress.

Needs Playwright (the ``browser`` extra) and a Chromium: Debian's
``chromium`` package (``.ci/run`` installs it), or ``TGSTREAM_CHROMIUM``
naming an executable. Without them the test is skipped, saying so.
"""
from __future__ import annotations

import os
import shutil

import pytest
from pyramid.paster import get_app

from tgstream.testing import serve

from .test_demo_wire import copy_ini, free_port

pytestmark = [pytest.mark.live, pytest.mark.browser]

USERS = 2000
TICKS = 10  # the page asks /events?count=10


def chromium() -> str:
    for candidate in (os.environ.get('TGSTREAM_CHROMIUM'), 'chromium', 'chromium-browser',
                      'google-chrome'):
        path = candidate and shutil.which(candidate)
        if path:
            return path
    pytest.skip('no browser: install Debian\'s chromium (apt-get install chromium) or '
                'set TGSTREAM_CHROMIUM; the /live page was NOT tested in a browser')


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    ini = copy_ini(tmp_path_factory.mktemp('live'), free_port(), demo_pause='0.05',
                   demo_seed_users=str(USERS))
    app = get_app(str(ini), 'main')
    try:
        with serve(app) as server:
            yield server.url
    finally:
        app.registry['dbengine'].dispose()


@pytest.fixture
def page(demo):
    sync_api = pytest.importorskip(
        'playwright.sync_api',
        reason='no Playwright (pip install -e ".[browser]"): the /live page was NOT tested '
               'in a browser')
    executable = chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=['--no-sandbox', '--disable-gpu'])
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)
            errors = []
            page.on('pageerror', lambda error: errors.append(error))
            page.goto(demo + '/live')
            yield page
            assert not errors, errors
        finally:
            browser.close()


def lines_of(page, selector: str) -> list[str]:
    # innerText keeps the line breaks only where the box preserves them
    return [line for line in page.locator(selector).inner_text().splitlines() if line]


def test_the_users_table_fills_and_the_bar_reaches_100_percent(page):
    assert page.locator('#users-progress').get_attribute('max') == str(USERS)
    page.click('#users-start')
    page.wait_for_function(
        "document.getElementById('users-status').textContent.includes('all after')")
    value, maximum = page.eval_on_selector(
        '#users-progress', 'bar => [bar.value, bar.max]')
    assert value == maximum == USERS
    assert page.locator('#users-status').inner_text().startswith('%d rows' % USERS)
    rows = page.locator('#users-rows tr')
    assert rows.count() == 15
    assert rows.last.locator('td').first.inner_text() == str(USERS)


def test_the_event_log_shows_the_ticks_then_closes(page):
    page.click('#events-start')
    page.wait_for_function(
        "document.getElementById('events-log').textContent.includes('end: ')")
    lines = lines_of(page, '#events-log')
    assert [line.split(':')[0] for line in lines] == (
        ['tick %d' % n for n in range(1, TICKS + 1)] + ['end'])
    assert lines[-1] == 'end: {"ticks":%d}' % TICKS
    assert '(connection error)' not in lines  # closed by the page, not dropped


def test_imports_show_progress_lines_and_a_bad_file_the_400(page):
    rows = ''.join('browser%d,browser%d@example.com\n' % (n, n) for n in range(1200))
    before = int(page.inner_text('#users-count'))
    page.set_input_files('#import-file', files=[{
        'name': 'good.csv', 'mimeType': 'text/csv',
        'buffer': ('name,email\n' + rows).encode()}])
    page.click('#import-start')
    page.wait_for_function(
        "document.getElementById('import-log').textContent.includes('\"status\":\"written\"')")
    lines = lines_of(page, '#import-log')
    assert lines[0] == '{"status":"started","rows":1200,"written":0}'
    assert lines[-1].startswith('{"status":"written","rows":1200,"written":1200')
    assert len(lines) == 2 + 1200 // 500 + 1  # started, one per batch, written
    assert page.eval_on_selector('#import-progress', 'bar => [bar.value, bar.max]') == [
        1200, 1200]
    # the live feed tells the page the table grew: the users button and bar follow
    page.wait_for_function(
        "document.getElementById('users-count').textContent == '%d'" % (before + 1200))
    assert page.inner_text('#users-total') == str(before + 1200)
    assert page.eval_on_selector('#users-progress', 'bar => bar.max') == before + 1200

    page.set_input_files('#import-file', files=[{
        'name': 'bad.csv', 'mimeType': 'text/csv', 'buffer': b'name,email\n\xff,x@y\n'}])
    page.click('#import-start')
    page.wait_for_function(
        "document.getElementById('import-log').textContent.includes('400: ')")
    last = lines_of(page, '#import-log')[-1]
    assert last.startswith('400: import rejected, nothing was written: the file is not UTF-8')
    # the bar no longer shows the previous import as done
    assert page.eval_on_selector('#import-progress', 'bar => bar.value') == 0
