"""The ``sse`` stream renderer: event framing, headers, keep-alive."""
from __future__ import annotations

import json

import pytest
from pyramid.exceptions import ConfigurationError

import tgstream
from tgstream.renderers.sse import ServerSentEvent, SSEEncoder
from tgstream.testing import open_stream


def parse_events(body: bytes) -> list[dict]:
    """Parse an event stream as a browser does (WHATWG HTML, 9.2.6)."""
    events, data, fields = [], [], {}
    text = body.decode('utf-8')
    lines = text.replace('\r\n', '\n').replace('\r', '\n').split('\n')
    for line in lines:
        if line == '':
            if data or fields:
                events.append({**fields, 'data': '\n'.join(data)})
            data, fields = [], {}
            continue
        if line.startswith(':'):
            continue
        name, _, value = line.partition(':')
        value = value[1:] if value.startswith(' ') else value
        if name == 'data':
            data.append(value)
        else:
            fields[name] = value
    return events


def sse_app(make_app, view, **options):
    def setup(config):
        config.add_route('v', '/v')
        config.add_view(view, route_name='v', renderer='sse', stream=True, **options)

    return make_app(setup)


def read(app, path='/v'):
    with open_stream(app, path) as response:
        response.read()
    return response


def test_strings_values_and_events(make_app):
    def view(request):
        yield 'plain text'
        yield {'price': 42, 'name': 'é'}
        yield ServerSentEvent('hello', event='greeting', id=7, retry=3000)
        yield ServerSentEvent({'a': [1, 2]}, event='json', id='x-1')
        yield ServerSentEvent(comment='just a comment')

    response = read(sse_app(make_app, view))
    assert response.headers['Content-Type'].startswith('text/event-stream')
    assert response.headers['Cache-Control'] == 'no-cache'
    assert response.headers['X-Accel-Buffering'] == 'no'
    assert response.body.startswith(b'data: plain text\n\ndata: {"price":42')
    assert b'event: greeting\nid: 7\nretry: 3000\ndata: hello\n\n' in response.body
    assert response.body.endswith(b': just a comment\n\n')
    events = parse_events(response.body)
    assert events[0] == {'data': 'plain text'}
    assert json.loads(events[1]['data']) == {'price': 42, 'name': 'é'}
    assert events[2] == {'event': 'greeting', 'id': '7', 'retry': '3000', 'data': 'hello'}
    assert json.loads(events[3]['data']) == {'a': [1, 2]} and events[3]['id'] == 'x-1'


@pytest.mark.parametrize('text', [
    'one\ntwo', 'one\r\ntwo', 'one\rtwo', 'trailing\n', '\nleading', 'a\n\nb',
    'data: injected\n\nevent: evil', 'unicode\u2028separator\x85next',
])
def test_multi_line_data_is_split_and_parsed_back(make_app, text):
    response = read(sse_app(make_app, lambda request: iter([text, ServerSentEvent(text, event='e')])))
    events = parse_events(response.body)
    normalised = text.replace('\r\n', '\n').replace('\r', '\n')
    assert [e['data'] for e in events] == [normalised, normalised]
    assert [e.get('event') for e in events] == [None, 'e']
    for line in response.body.decode().replace('\r\n', '\n').replace('\r', '\n').split('\n'):
        assert line == '' or line.split(':', 1)[0] in ('data', 'event')


@pytest.mark.parametrize('kwargs, error, message', [
    ({'event': 'a\nb'}, ValueError, 'event=.* contains a line break or NUL'),
    ({'event': 'a\0b'}, ValueError, 'NUL'),
    ({'event': 'a\rb'}, ValueError, 'line break'),
    ({'id': 'a\r\nb'}, ValueError, 'id=.* contains a line break or NUL'),
    ({'id': 'a\0b'}, ValueError, 'NUL'),
    ({'retry': -1}, ValueError, 'retry=-1 is not a number of milliseconds'),
    ({'retry': 1.5}, ValueError, 'retry'),
    ({'retry': True}, ValueError, 'retry'),
    ({'event': 5}, TypeError, 'event=5 is not a str'),
    ({'id': 1.5}, TypeError, 'id=1.5 is not a str or int'),
])
def test_event_fields_that_could_inject_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        ServerSentEvent('data', **kwargs)


def test_every_event_is_written_at_once(make_app):
    def view(request):
        for n in range(5):
            yield {'n': n}

    app = sse_app(make_app, view)
    with open_stream(app, '/v') as response:
        chunks = [response.next_chunk() for _ in range(5)]
    assert [json.loads(parse_events(c)[0]['data']) for c in chunks] == [{'n': n} for n in range(5)]


def test_view_cache_control_is_kept(make_app):
    def view(request):
        request.response.headers['Cache-Control'] = 'private, max-age=0'
        yield 'x'

    assert read(sse_app(make_app, view)).headers['Cache-Control'] == 'private, max-age=0'


def test_idle_sends_a_keepalive_comment_only_when_silent(make_app):
    def view(request):
        yield tgstream.sse_idle          # at the start: sends the headers
        yield tgstream.sse_idle          # just sent something: nothing
        yield 'event'
        yield tgstream.sse_idle

    body = read(sse_app(make_app, view)).body
    assert body == b': keep-alive\n\ndata: event\n\n'
    assert parse_events(body) == [{'data': 'event'}]


def test_keepalive_interval_and_off_switch():
    from pyramid.testing import DummyRequest, setUp, tearDown

    setUp()
    try:
        from tgstream.renderers.jsonrules import JSONEncoding

        encoding = JSONEncoding(DummyRequest())
        every_time = SSEEncoder(encoding, keepalive=1e-9)
        assert [every_time.encode(tgstream.sse_idle) for _ in range(3)] == [b': keep-alive\n\n'] * 3
        off = SSEEncoder(encoding, keepalive=0)
        assert off.encode(tgstream.sse_idle) == b''
        default = SSEEncoder(encoding, keepalive=15)
        assert default.encode(tgstream.sse_idle) == b': keep-alive\n\n'
        assert default.encode('x') == b'data: x\n\n'
        assert default.encode(tgstream.sse_idle) == b''
    finally:
        tearDown()


def test_keepalive_setting_and_option(make_app):
    def view(request):
        yield 'x'
        yield tgstream.sse_idle

    def setup(config):
        config.add_route('setting', '/setting')
        config.add_route('option', '/option')
        config.add_view(view, route_name='setting', renderer='sse', stream=True)
        config.add_view(view, route_name='option', renderer='sse', stream=True,
                        stream_options={'keepalive': 1e-9})

    app = make_app(setup, settings={'tgstream.sse.keepalive': '0.000000001'})
    assert read(app, '/setting').body.endswith(b': keep-alive\n\n')
    assert read(app, '/option').body.endswith(b': keep-alive\n\n')
    quiet = make_app(setup, settings={'tgstream.sse.keepalive': '0'})
    assert read(quiet, '/setting').body == b'data: x\n\n'


def test_error_marker_is_fixed_text(make_app, tgstream_log):
    def view(request):
        yield 'one'
        raise RuntimeError('secret detail')

    app = sse_app(make_app, view, stream_options={'error_marker': True})
    with open_stream(app, '/v') as response:
        with pytest.raises(RuntimeError):
            response.read()
    assert response.body == b'data: one\n\nevent: error\ndata: stream failed\n\n'
    assert parse_events(response.body)[-1] == {'event': 'error', 'data': 'stream failed'}


def test_unencodable_data_aborts_the_stream(make_app, tgstream_log):
    def view(request):
        yield 'one'
        yield ServerSentEvent(object())

    with open_stream(sse_app(make_app, view), '/v') as response:
        with pytest.raises(tgstream.StreamEncodeError, match=r'item 1 \(tgstream.renderers.sse.ServerSentEvent\)'):
            response.read()
    assert response.body == b'data: one\n\n'


@pytest.mark.parametrize('options, message', [
    ({'keepalive': -1}, r'keepalive: -1 is not a number of seconds'),
    ({'keepalive': '15'}, r"keepalive: '15' is not a number"),
    ({'columns': ['a']}, r"columns: unknown stream option for renderer 'sse'"),
])
def test_bad_options(make_app, options, message):
    def events(request):
        yield 'x'

    with pytest.raises(ConfigurationError, match='view tests.renderers.test_sse.*events.*' + message):
        sse_app(make_app, events, stream_options=options)
