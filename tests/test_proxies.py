"""``tgstream.request``."""
from __future__ import annotations

import pytest
from pyramid import testing

import tgstream


def test_outside_a_request_is_a_clear_error():
    with pytest.raises(RuntimeError, match='tgstream.request is used outside of a request'):
        tgstream.request.path_info
    with pytest.raises(RuntimeError):
        tgstream.request._current_obj()
    assert not tgstream.request
    assert 'no current request' in repr(tgstream.request)


def test_resolves_to_the_current_request():
    request = testing.DummyRequest(path='/here')
    config = testing.setUp(request=request)
    try:
        assert tgstream.request._current_obj() is request
        assert tgstream.request.path == '/here'
        tgstream.request.marker = 1
        assert request.marker == 1
        del tgstream.request.marker
        assert not hasattr(request, 'marker')
        assert tgstream.request
        assert 'path' in dir(tgstream.request)
    finally:
        testing.tearDown()
    assert config is not None
