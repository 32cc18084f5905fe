"""The ``json`` and ``ndjson`` stream renderers (``tgstream.renderers.json``):
array framing, NDJSON lines, coalescing and batches, options.

Encoding rules are in test_jsonrules.py.
"""
from __future__ import annotations

import datetime
import json
import logging

import pytest
from pyramid.exceptions import ConfigurationError
from pyramid.renderers import JSON
from pyramid.testing import DummyRequest

import tgstream
from tests.renderers.test_jsonrules import add, serve_items
from tgstream.testing import open_stream

# -- JSON array framing ---------------------------------------------------------


def test_zero_items_give_an_empty_array(make_testapp, json_impl):
    response = serve_items(make_testapp, []).get('/v')
    assert response.body == b'[]'
    assert response.content_type == 'application/json'


def test_one_item(make_testapp, json_impl):
    assert json.loads(serve_items(make_testapp, [{'a': 1}]).get('/v').body) == [{'a': 1}]


def test_items_form_one_array_in_order(make_testapp, json_impl):
    items = [{'n': n, 'name': 'é ü 漢字 🎉', 'nested': {'list': [1, 2.5, None, True]}}
             for n in range(50)] + ['text', 3, None, [1, [2, [3]]]]
    body = serve_items(make_testapp, items).get('/v').body
    assert body.startswith(b'[') and body.endswith(b']')
    assert json.loads(body) == items


def test_view_may_set_another_content_type(make_testapp, json_impl):
    def view(request):
        request.response.content_type = 'application/vnd.api+json'
        yield {'a': 1}

    app = make_testapp(lambda c: add(c, 'v', view))
    assert app.get('/v').content_type == 'application/vnd.api+json'


def test_content_type_view_option(make_testapp):
    app = serve_items(make_testapp, [1], stream_content_type='application/geo+json')
    assert app.get('/v').content_type == 'application/geo+json'


# -- coalescing and batches ----------------------------------------------------------


ITEMS = [{'n': n, 'text': 'x' * (n % 17), 'when': datetime.date(2024, 1, 1 + n % 28)}
         for n in range(2000)]


def stream_body(make_app, items, renderer='json', **settings):
    app = make_app(
        lambda c: add(c, 'v', lambda request: iter(items), renderer),
        settings={'tgstream.%s' % k: v for k, v in settings.items()},
    )
    with open_stream(app, '/v') as response:
        response.read()
    return response.chunks


@pytest.mark.parametrize('renderer', ['json', 'ndjson', 'csv'])
def test_coalescing_and_batches_keep_the_output_byte_identical(
    make_app, json_impl, renderer, monkeypatch
):
    # every pull counts as fast (a loaded machine cannot end a run early)
    monkeypatch.setattr(tgstream.StreamIterator, 'fast_pull', 60.0)
    one_by_one = stream_body(make_app, ITEMS, renderer, chunk_size=1)
    coalesced = stream_body(make_app, ITEMS, renderer, flush_interval=60)
    flushed = stream_body(make_app, [x for item in ITEMS for x in (item, tgstream.flush)],
                          renderer, flush_interval=60)
    batched = stream_body(
        make_app,
        [tgstream.Batch(ITEMS[:1]), tgstream.Batch([])]
        + [tgstream.Batch(ITEMS[n:n + 300]) for n in range(1, 2000, 300)],
        renderer, flush_interval=60,
    )
    body = b''.join(one_by_one)
    assert len(one_by_one) >= 2000
    assert len(coalesced) < 20 + tgstream.StreamIterator.fast_run
    assert b''.join(coalesced) == b''.join(flushed) == b''.join(batched) == body
    if renderer == 'json':
        assert json.loads(body) == [{**item, 'when': item['when'].isoformat()} for item in ITEMS]


def test_first_item_is_written_at_once(make_app, json_impl):
    chunks = stream_body(make_app, ITEMS, flush_interval=60)
    assert json.loads(chunks[0] + b']') == [{'n': 0, 'text': '', 'when': '2024-01-01'}]


def test_batch_counts_its_items(make_app):
    events = []

    def setup(config):
        config.add_subscriber(events.append, tgstream.StreamFinished)
        add(config, 'v', lambda request: iter(
            [tgstream.Batch([1, 2, 3]), 4, tgstream.Batch(iter([5, 6]))]))

    app = make_app(setup)
    with open_stream(app, '/v') as response:
        assert json.loads(response.read()) == [1, 2, 3, 4, 5, 6]
    assert events[0].items == 6
    assert repr(tgstream.Batch([1, 2])) == '<tgstream.Batch of 2 items>'


def test_batch_without_renderer_is_joined(make_testapp):
    def view(request):
        yield tgstream.Batch(['a', b'b'])
        yield 'c'

    app = make_testapp(lambda c: add(c, 'v', view, renderer=None))
    assert app.get('/v').body == b'abc'


# -- NDJSON ------------------------------------------------------------------------


def test_ndjson_zero_items_is_an_empty_body(make_testapp):
    assert serve_items(make_testapp, [], 'ndjson').get('/v').body == b''


def test_ndjson_serializer_writing_line_breaks_is_an_error(make_app, tgstream_log):
    def setup(config):
        config.add_renderer('json', JSON(serializer=lambda v, default, **kw: '{\n}'))
        add(config, 'v', lambda request: iter([{}]), renderer='ndjson')

    with pytest.raises(tgstream.StreamEncodeError) as info:
        open_stream(make_app(setup), '/v')
    assert 'one document per line' in str(info.value.__cause__)


def test_ndjson_error_marker(make_app, tgstream_log):
    def view(request):
        yield {'n': 1}
        yield tgstream.flush
        raise RuntimeError('secret detail')

    app = make_app(lambda c: add(c, 'v', view, renderer='ndjson',
                                 stream_options={'error_marker': True}))
    with open_stream(app, '/v') as response:
        assert json.loads(response.next_chunk()) == {'n': 1}
        with pytest.raises(RuntimeError):
            response.read()
    assert response.body.endswith(b'\n{"error":"stream failed"}\n')
    assert b'secret' not in response.body


# -- configuration errors ------------------------------------------------------------


@pytest.mark.parametrize('renderer, options, message', [
    ('json', {'columns': ['a']}, r"view .*counting.*stream_options columns: unknown stream option for renderer 'json'"),
    ('ndjson', {'error_marker': 'yes'}, r"view .*counting.*error_marker: 'yes' is not True or False"),
    ('ndjson', {'indent': 2, 'x': 1}, r'stream_options indent, x: unknown stream options'),
])
def test_bad_stream_options_name_the_view_and_option(make_app, renderer, options, message):
    def counting(request):
        yield 1

    with pytest.raises(ConfigurationError, match=message):
        make_app(lambda c: add(c, 'v', counting, renderer, stream_options=options))


@pytest.mark.parametrize('renderer', ['json', 'ndjson', 'sse'])
def test_json_renderer_that_is_not_pyramids_json_is_refused(make_app, renderer):
    def counting(request):
        yield 1

    def setup(config):
        config.add_renderer('json', lambda info: lambda value, system: 'custom')
        add(config, 'v', counting, renderer)

    with pytest.raises(ConfigurationError, match=r"counting.*renderer '%s' encodes with the rules "
                       r"of the app's 'json' renderer.*not a pyramid.renderers.JSON" % renderer):
        make_app(setup)


def test_renderer_that_cannot_stream_names_view_and_renderer(make_app):
    def counting(request):
        yield 1

    with pytest.raises(ConfigurationError, match=r"counting.*renderer 'string' cannot stream.*csv, json, ndjson, sse"):
        make_app(lambda c: add(c, 'v', counting, 'string'))


def test_view_config_and_expose_work_with_stream_renderers(make_testapp):
    app = make_testapp(lambda config: config.include('tests.pkgs.renderersapp'))
    assert app.get('/view_config').body == b'1\n2\n'
    assert json.loads(app.get('/expose').body) == [{'n': 1}, {'n': 2}]
    assert app.get('/expose_csv').text == 'n\r\n1\r\n'


def test_log_names_the_failed_type_and_index(make_app, caplog):
    caplog.set_level(logging.ERROR, logger='tgstream')

    def view(request):
        yield 1
        yield tgstream.flush
        yield 2
        yield {1, 2}  # a set

    app = make_app(lambda c: add(c, 'v', view))
    with open_stream(app, '/v') as response:
        with pytest.raises(tgstream.StreamEncodeError):
            response.read()
    text = caplog.text
    assert 'item 2 (builtins.set) could not be encoded' in text


def test_the_json_plan_is_built_once_per_renderer(monkeypatch):
    # issue 24: the app's JSON rules are decided once, not per stream
    from tests.renderers.oracle import make_registry, make_renderer
    from tgstream.renderers import jsonrules

    built = []
    original = jsonrules.JSONPlan.__init__

    def spy(self, *args, **kwargs):
        built.append(kwargs.get('one_line', False))
        original(self, *args, **kwargs)

    monkeypatch.setattr(jsonrules.JSONPlan, '__init__', spy)
    registry = make_registry({datetime.datetime: lambda obj, request: obj.isoformat()})
    for name in ('json', 'ndjson'):
        renderer = make_renderer(name, {}, registry)
        bodies = set()
        for _ in range(3):
            request = DummyRequest()
            request.registry = registry
            encoder = renderer.encoder(request)
            bodies.add(encoder.encode({'at': datetime.datetime(2024, 1, 2)}))
        assert len(bodies) == 1
    assert built == [False, True]
