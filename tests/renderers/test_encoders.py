"""``tgstream.renderers.encoders``: the Encoder protocol, its defaults
(BaseEncoder) and the raw encoder of streams without a renderer."""
from __future__ import annotations

import pytest
from pyramid.response import Response

import tgstream
from tgstream.renderers import JSONRulesRenderer, StreamRenderer
from tgstream.renderers.csv import CSVEncoder
from tgstream.renderers.encoders import BaseEncoder, Encoder, RawEncoder
from tgstream.renderers.json import JSONArrayEncoder, NDJSONEncoder
from tgstream.renderers.sse import SSEEncoder
from tgstream.testing import open_stream


class Upper(BaseEncoder):
    def encode(self, item):
        return item.upper().encode()

    def end(self):
        return b'.'


def test_base_encoder_defaults():
    encoder = Upper()
    assert encoder.flush_each is False
    assert encoder.encode_batch(['a', 'b']) == b'AB' == b''.join(map(encoder.encode, 'ab'))
    assert encoder.encode_batch([]) == b''
    assert encoder.error() is None


@pytest.mark.parametrize('cls', [RawEncoder, CSVEncoder, JSONArrayEncoder, NDJSONEncoder,
                                 SSEEncoder])
def test_builtin_encoders_have_every_protocol_member(cls):
    assert issubclass(cls, BaseEncoder)
    for member in ('encode', 'end', 'encode_batch', 'error', 'flush_each'):
        assert hasattr(cls, member), member
    assert set(Encoder.__annotations__) == {'flush_each'}


class Minimal:
    """An encoder with only the required members (no encode_batch, no error)."""

    flush_each = False

    def encode(self, item):
        if item == 'bad':
            raise ValueError('cannot encode')
        return ('<%s>' % item).encode()

    def end(self):
        return b'!'


class MinimalRenderer:
    content_type = 'text/x-minimal'

    def __init__(self, info):
        pass

    def __call__(self, value, request):
        return value, Minimal()


def _app(make_app, items):
    def setup(config):
        config.add_stream_renderer('minimal', MinimalRenderer)
        config.add_route('v', '/v')
        config.add_view(lambda request: iter(items), route_name='v',
                        renderer='minimal', stream=True)

    return make_app(setup)


def test_an_encoder_without_the_optional_members_gets_their_defaults(make_app):
    app = _app(make_app, ['a', tgstream.Batch(['b', 'c']), 'd'])
    with open_stream(app, '/v') as response:
        assert response.read() == b'<a><b><c><d>!'


def test_an_encoder_without_error_sends_no_marker(make_app, tgstream_log):
    app = _app(make_app, ['a', tgstream.flush, tgstream.Batch(['b', 'bad'])])
    with open_stream(app, '/v') as response:
        assert response.next_chunk() == b'<a>'
        with pytest.raises(tgstream.StreamEncodeError, match='item 2'):
            response.read()
    assert response.body == b'<a>'


def test_raw_encoder_charset_bytes_and_errors():
    response = Response(charset='latin-1')
    encoder = RawEncoder(response=response)
    assert encoder.encode('é') == 'é'.encode('latin-1')
    response.charset = 'utf-8'  # the charset is taken once, at the first str
    assert encoder.encode('é') == 'é'.encode('latin-1')
    assert RawEncoder().encode('é') == 'é'.encode()
    assert RawEncoder(charset='utf-16-le').encode('a') == b'a\x00'
    assert encoder.encode(bytearray(b'x')) == b'x' and encoder.encode(memoryview(b'y')) == b'y'
    with pytest.raises(TypeError, match='must yield str or bytes, not int'):
        encoder.encode(1)
    assert encoder.end() == b''


def test_renderer_base_classes_are_exported_by_the_package():
    assert issubclass(JSONRulesRenderer, StreamRenderer)
